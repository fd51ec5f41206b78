use super::*;

/// Two associations wired back to back on a virtual clock: the DTLS
/// client's (a browser, say) and the DTLS server's (us).
struct Pair {
    now: Instant,
    client: SctpAssociation,
    server: SctpAssociation,
}

impl Pair {
    fn new(client_max: usize) -> Self {
        let now = Instant::now();
        let mut p = Self {
            now,
            client: SctpAssociation::new(now, true, 0, SctpConfig::default()),
            server: SctpAssociation::new(now, false, client_max, SctpConfig::default()),
        };
        p.run(Duration::from_millis(50));
        assert!(p.client.is_connected() && p.server.is_connected());
        assert_eq!(p.server.poll_event(), Some(DataEvent::Connected));
        assert_eq!(p.client.poll_event(), Some(DataEvent::Connected));
        p
    }

    /// Moves packets both ways and time forward in 1 ms steps.
    fn run(&mut self, d: Duration) {
        let end = self.now + d;
        while self.now < end {
            for _ in 0..100 {
                let mut moved = false;
                while let Some(pkt) = self.client.poll_packet() {
                    self.server.handle_packet(self.now, &pkt);
                    moved = true;
                }
                while let Some(pkt) = self.server.poll_packet() {
                    self.client.handle_packet(self.now, &pkt);
                    moved = true;
                }
                if !moved {
                    break;
                }
            }
            self.now += Duration::from_millis(1);
            self.client.handle_timeout(self.now);
            self.server.handle_timeout(self.now);
        }
    }

    fn server_events(&mut self) -> Vec<DataEvent> {
        std::iter::from_fn(|| self.server.poll_event()).collect()
    }

    fn client_events(&mut self) -> Vec<DataEvent> {
        std::iter::from_fn(|| self.client.poll_event()).collect()
    }
}

fn chat() -> ChannelParams {
    ChannelParams {
        label: "chat".into(),
        protocol: String::new(),
        ordered: true,
        reliability: Reliability::Reliable,
        priority: 256,
    }
}

#[test]
fn a_channel_the_peer_opens_carries_its_messages_in_order() {
    let mut p = Pair::new(0);
    // The client opens an even stream as a browser does.
    let s = p.client.open(p.now, chat()).expect("opens");
    assert_eq!(s % 2, 0, "the DTLS client opens even streams");
    for i in 0..50u32 {
        // The client's own channel is one it opened: it sends on it.
        p.client
            .send(p.now, s, 51, format!("m{i}").into_bytes())
            .expect("sent");
    }
    p.run(Duration::from_millis(50));
    let ev = p.server_events();
    assert_eq!(
        ev[0],
        DataEvent::Opened {
            stream: s,
            params: chat()
        }
    );
    let got: Vec<String> = ev[1..]
        .iter()
        .map(|e| match e {
            DataEvent::Message { stream, ppid, data } => {
                assert_eq!((*stream, *ppid), (s, 51));
                String::from_utf8(data.clone()).expect("utf-8")
            }
            other => panic!("unexpected {other:?}"),
        })
        .collect();
    let want: Vec<String> = (0..50).map(|i| format!("m{i}")).collect();
    assert_eq!(got, want);
}

#[test]
fn a_channel_we_open_reaches_the_peer_with_its_settings_and_a_big_message() {
    let mut p = Pair::new(0);
    let params = ChannelParams {
        ordered: false,
        reliability: Reliability::MaxRetransmits(0),
        ..chat()
    };
    let s = p.server.open(p.now, params.clone()).expect("opens");
    assert_eq!(s % 2, 1, "the DTLS server opens odd streams");
    let big: Vec<u8> = (0..200 * 1024).map(|i| (i % 251) as u8).collect();
    p.server.send(p.now, s, 53, big.clone()).expect("queued");
    p.run(Duration::from_millis(200));
    let ev = p.client_events();
    assert_eq!(ev[0], DataEvent::Opened { stream: s, params });
    assert_eq!(
        ev[1],
        DataEvent::Message {
            stream: s,
            ppid: 53,
            data: big
        }
    );
}

#[test]
fn a_message_over_the_peers_maximum_is_refused_before_it_is_queued() {
    let mut p = Pair::new(64 * 1024);
    let s = p.server.open(p.now, chat()).expect("opens");
    assert_eq!(
        p.server.send(p.now, s, 53, vec![1; 64 * 1024 + 1]),
        Err(DataSendError::TooBig)
    );
    assert_eq!(p.server.send(p.now, s, 53, vec![1; 64 * 1024]), Ok(()));
    assert_eq!(
        p.server.send(p.now, s + 2, 53, vec![1]),
        Err(DataSendError::NoChannel),
        "not a channel of ours"
    );
}

#[test]
fn a_full_send_queue_refuses_instead_of_growing() {
    let now = Instant::now();
    let config = SctpConfig {
        send_buffer: 4096,
        ..SctpConfig::default()
    };
    let mut client = SctpAssociation::new(now, true, 0, SctpConfig::default());
    let mut server = SctpAssociation::new(now, false, 0, config);
    for _ in 0..10 {
        while let Some(pkt) = client.poll_packet() {
            server.handle_packet(now, &pkt);
        }
        while let Some(pkt) = server.poll_packet() {
            client.handle_packet(now, &pkt);
        }
    }
    let s = server.open(now, chat()).expect("opens");
    // The client reads nothing more: the queue fills.
    let mut results = Vec::new();
    for _ in 0..20 {
        results.push(server.send(now, s, 53, vec![7; 1000]));
    }
    assert!(
        results.contains(&Err(DataSendError::QueueFull)),
        "{results:?}"
    );
}

#[test]
fn closing_resets_the_stream_both_ways_and_frees_the_id() {
    let mut p = Pair::new(0);
    let s = p.client.open(p.now, chat()).expect("opens");
    p.run(Duration::from_millis(20));
    p.server_events();
    p.client.close(p.now, s);
    p.run(Duration::from_millis(50));
    assert_eq!(p.server_events(), vec![DataEvent::Closed { stream: s }]);
    // Ours: opened, closed by us, and the id comes back.
    let ours = p.server.open(p.now, chat()).expect("opens");
    p.server.close(p.now, ours);
    p.run(Duration::from_millis(50));
    assert_eq!(p.server.open(p.now, chat()), Ok(ours), "the id is reused");
}

#[test]
fn garbage_and_bad_dcep_are_dropped_and_counted_and_the_association_lives() {
    let mut p = Pair::new(0);
    p.server.handle_packet(p.now, &[0xde, 0xad, 0xbe, 0xef]);
    p.server.handle_packet(p.now, &[0u8; 300]);
    // A DATA_CHANNEL_OPEN with a 60,000-byte label.
    let mut huge = vec![0x03, 0, 0, 0, 0, 0, 0, 0];
    huge.extend_from_slice(&60_000u16.to_be_bytes());
    huge.extend_from_slice(&[0, 0]);
    huge.resize(12 + 60_000, b'x');
    let s = 2;
    p.client.channels.insert(
        s,
        Channel {
            params: chat(),
            by_peer: false,
        },
    );
    p.client
        .socket
        .send(
            Message::new(StreamId(s), PpId(PPID_DCEP), huge),
            &SendOptions::default(),
        )
        .expect("queued");
    p.client.drain();
    p.run(Duration::from_millis(100));
    let ev = p.server_events();
    assert!(
        ev.contains(&DataEvent::Dropped(DataDropReason::BadDcep)),
        "{ev:?}"
    );
    assert!(!ev.iter().any(|e| matches!(e, DataEvent::Opened { .. })));
    // Still up: a proper channel opens.
    let s = p.client.open(p.now, chat()).expect("opens");
    p.run(Duration::from_millis(20));
    assert!(p.server_events().contains(&DataEvent::Opened {
        stream: s,
        params: chat()
    }));
}

#[test]
fn opening_every_stream_stops_at_the_limit() {
    let mut p = Pair::new(0);
    let mut opened = 0;
    for _ in 0..u16::MAX {
        match p.client.open(p.now, chat()) {
            Ok(_) => opened += 1,
            Err(_) => break,
        }
        if opened % 64 == 0 {
            p.run(Duration::from_millis(2));
        }
    }
    p.run(Duration::from_millis(200));
    assert_eq!(opened, usize::from(MAX_STREAMS) / 2, "even ids only");
    let ev = p.server_events();
    let n = ev
        .iter()
        .filter(|e| matches!(e, DataEvent::Opened { .. }))
        .count();
    assert_eq!(n, opened);
    assert!(p.server.channels.len() <= usize::from(MAX_STREAMS));
}

#[test]
fn messages_sent_together_share_packets_and_keep_their_order_per_channel() {
    let mut p = Pair::new(0);
    let a = p.server.open(p.now, chat()).expect("opens");
    let b = p.server.open(p.now, chat()).expect("opens");
    p.run(Duration::from_millis(20));
    p.client_events();
    while p.server.poll_packet().is_some() {}
    // 20 short messages on two channels of the same delivery, at once.
    let msgs: Vec<(u16, u32, Vec<u8>)> = (0..20u8)
        .map(|i| (if i % 2 == 0 { a } else { b }, 51, vec![i; 30]))
        .collect();
    let results = p.server.send_many(p.now, msgs);
    assert!(results.iter().all(Result::is_ok), "{results:?}");
    let mut packets = 0;
    while let Some(pkt) = p.server.poll_packet() {
        packets += 1;
        p.client.handle_packet(p.now, &pkt);
    }
    assert!(packets <= 2, "20 messages bundled into {packets} packets");
    p.run(Duration::from_millis(20));
    let got: Vec<(u16, Vec<u8>)> = p
        .client_events()
        .into_iter()
        .filter_map(|e| match e {
            DataEvent::Message { stream, data, .. } => Some((stream, data)),
            _ => None,
        })
        .collect();
    assert_eq!(got.len(), 20);
    for s in [a, b] {
        let firsts: Vec<u8> = got
            .iter()
            .filter(|(x, _)| *x == s)
            .map(|(_, d)| d[0])
            .collect();
        let mut sorted = firsts.clone();
        sorted.sort_unstable();
        assert_eq!(firsts, sorted, "in order on channel {s}");
    }
    // Errors are per message: a channel that is not ours, one too big.
    let r = p.server.send_many(
        p.now,
        vec![
            (a, 51, vec![1]),
            (999, 51, vec![1]),
            (b, 53, vec![0; MAX_MESSAGE_SIZE + 1]),
        ],
    );
    assert_eq!(
        r,
        vec![
            Ok(()),
            Err(DataSendError::NoChannel),
            Err(DataSendError::TooBig)
        ]
    );
}
