//! Data channels on mediasoup's DataProducer/DataConsumer model (RFC 8831,
//! DCEP RFC 8832): a channel one peer opens reaches every other peer of
//! the room, and a peer that comes later, on a stream of the Router's own
//! with the same label and delivery; messages keep their order and PPID;
//! limits drop for the one who broke them.

mod common;

use std::time::Duration;

use common::Net;
use sfu_core::proto::dcep::{ChannelParams, PPID_BINARY, PPID_STRING, Reliability};
use sfu_core::proto::sctp::{DataEvent, SctpConfig};
use sfu_core::router::{DataChannelConfig, RouterConfig, RouterEvent};
use sfu_core::stats::DataDropReason;

fn chat() -> ChannelParams {
    ChannelParams {
        label: "chat".into(),
        protocol: "v1".into(),
        ordered: true,
        reliability: Reliability::Reliable,
        priority: 256,
    }
}

fn connected(net: &mut Net) {
    net.connect_all();
    for _ in 0..100 {
        if net.peers.iter().all(|p| p.client.data_connected()) {
            return;
        }
        net.advance(Duration::from_millis(10));
    }
    panic!("SCTP did not come up");
}

/// Peer `i` opens a `chat` channel; returns its stream.
fn open_chat(net: &mut Net, i: usize) -> u16 {
    let now = net.now;
    let s = net.peers[i]
        .client
        .open_data_channel(now, chat())
        .expect("opens");
    net.advance(Duration::from_millis(50));
    s
}

/// Peer `i` sends `data` on its channel `s` (PPID `ppid`).
fn send(net: &mut Net, i: usize, s: u16, ppid: u32, data: Vec<u8>) {
    let now = net.now;
    net.peers[i]
        .client
        .send_data(now, s, ppid, data)
        .expect("sent");
}

/// Every data event peer `i` has, in order.
fn events(net: &mut Net, i: usize) -> Vec<DataEvent> {
    std::iter::from_fn(|| net.peers[i].client.poll_data_event()).collect()
}

/// The messages in `ev`, as (stream, ppid, text).
fn messages(ev: &[DataEvent]) -> Vec<(u16, u32, Vec<u8>)> {
    ev.iter()
        .filter_map(|e| match e {
            DataEvent::Message { stream, ppid, data } => Some((*stream, *ppid, data.clone())),
            _ => None,
        })
        .collect()
}

fn opened(ev: &[DataEvent]) -> Vec<(u16, ChannelParams)> {
    ev.iter()
        .filter_map(|e| match e {
            DataEvent::Opened { stream, params } => Some((*stream, params.clone())),
            _ => None,
        })
        .collect()
}

#[test]
fn a_channel_reaches_the_others_and_a_late_joiner_with_its_label_in_order() {
    let mut net = Net::new();
    net.data_channels = true;
    let (ann, bob) = (net.add_peer(), net.add_peer());
    connected(&mut net);
    let s = open_chat(&mut net, ann);
    for i in 0..300 {
        send(
            &mut net,
            ann,
            s,
            PPID_STRING,
            format!("hello {i}").into_bytes(),
        );
        if i % 50 == 0 {
            net.advance(Duration::from_millis(100));
        }
    }
    net.advance(Duration::from_millis(500));
    let ev = events(&mut net, bob);
    let bob_opened = opened(&ev);
    assert_eq!(bob_opened.len(), 1, "{ev:?}");
    let (relayed, params) = &bob_opened[0];
    assert_eq!(params, &chat(), "label, protocol and delivery kept");
    assert_eq!(relayed % 2, 1, "the Router's own (odd) stream");
    let got = messages(&ev);
    assert_eq!(got.len(), 300);
    for (i, (stream, ppid, text)) in got.iter().enumerate() {
        assert_eq!((*stream, *ppid), (*relayed, PPID_STRING));
        assert_eq!(text, format!("hello {i}").as_bytes(), "in order");
    }
    let own = events(&mut net, ann);
    assert!(
        messages(&own).is_empty() && opened(&own).is_empty(),
        "not echoed to the sender"
    );
    let opened_events: Vec<RouterEvent> = std::iter::from_fn(|| net.router.poll_event())
        .filter(|e| matches!(e, RouterEvent::DataConsumerOpened { .. }))
        .collect();
    assert_eq!(
        opened_events,
        vec![RouterEvent::DataConsumerOpened {
            transport: net.peers[bob].transport,
            stream: *relayed,
            from: net.peers[ann].transport,
        }]
    );

    // Cat comes later: she gets the open channel and what is sent after.
    let cat = net.add_peer();
    connected(&mut net);
    send(&mut net, ann, s, PPID_BINARY, vec![0xab; 200 * 1024]);
    net.advance(Duration::from_millis(500));
    let ev = events(&mut net, cat);
    assert_eq!(opened(&ev).len(), 1);
    assert_eq!(opened(&ev)[0].1.label, "chat");
    let got = messages(&ev);
    assert_eq!(got.len(), 1);
    assert_eq!(got[0].2, vec![0xab; 200 * 1024], "200 KiB intact");

    // Ann sends a last message and closes her channel at once: the
    // message arrives, then the copies close.
    send(&mut net, ann, s, PPID_STRING, b"bye".to_vec());
    let now = net.now;
    net.peers[ann].client.close_data_channel(now, s);
    net.advance(Duration::from_millis(200));
    for who in [bob, cat] {
        let ev = events(&mut net, who);
        assert_eq!(
            messages(&ev).last().map(|m| m.2.clone()),
            Some(b"bye".to_vec()),
            "the last message before the close"
        );
        assert!(
            ev.iter().any(|e| matches!(e, DataEvent::Closed { .. })),
            "{ev:?}"
        );
    }
    assert_eq!(net.router.data_producer_count(), 0);
}

#[test]
fn over_the_rate_limit_is_dropped_counted_and_reported_once() {
    let mut net = Net::with_config(RouterConfig {
        data: DataChannelConfig {
            max_messages_per_sec: 50,
            ..DataChannelConfig::default()
        },
        ..RouterConfig::default()
    });
    net.data_channels = true;
    let (ann, bob) = (net.add_peer(), net.add_peer());
    connected(&mut net);
    let s = open_chat(&mut net, ann);
    // A flood: 500 messages at once, twice the SCTP queue would take.
    for i in 0..500 {
        let now = net.now;
        let _ = net.peers[ann]
            .client
            .send_data(now, s, PPID_STRING, format!("{i}").into_bytes());
        if i % 100 == 0 {
            net.advance(Duration::from_millis(10));
        }
    }
    net.advance(Duration::from_millis(500));
    let got = messages(&events(&mut net, bob)).len();
    assert!(
        (50..=60).contains(&got),
        "one second's burst (50) went through, got {got}"
    );
    let dropped = net.counters().data_drops(DataDropReason::RateLimited);
    assert_eq!(dropped as usize + got, 500);
    let notices = std::iter::from_fn(|| net.router.poll_event())
        .filter(|e| matches!(e, RouterEvent::DataRateLimited(_)))
        .count();
    assert_eq!(notices, 1, "told once");
    // A second later the sender is within its limit again.
    net.advance(Duration::from_secs(1));
    send(&mut net, ann, s, PPID_STRING, b"again".to_vec());
    net.advance(Duration::from_millis(200));
    assert_eq!(messages(&events(&mut net, bob)).len(), 1);
}

#[test]
fn a_message_over_a_receivers_maximum_is_not_sent_to_it_and_is_counted() {
    let mut net = Net::new();
    net.data_channels = true;
    // Ann's client would send up to 1 MiB.
    net.client_sctp = SctpConfig {
        max_message_size: 1 << 20,
        receive_window: 2 << 20,
        ..SctpConfig::default()
    };
    let ann = net.add_peer();
    net.client_sctp = SctpConfig::default();
    // Bob's SDP says a=max-message-size:65536; cat's says nothing bigger
    // than ours.
    net.remote_max_message = 64 * 1024;
    let bob = net.add_peer();
    net.remote_max_message = 0;
    let cat = net.add_peer();
    connected(&mut net);
    let s = open_chat(&mut net, ann);
    send(&mut net, ann, s, PPID_BINARY, vec![1; 100 * 1024]);
    net.advance(Duration::from_millis(500));
    assert!(
        messages(&events(&mut net, bob)).is_empty(),
        "over bob's 64 KiB"
    );
    assert_eq!(messages(&events(&mut net, cat)).len(), 1, "cat takes it");
    assert_eq!(net.counters().data_drops(DataDropReason::TooBig), 1);
    // Over our own 256 KiB: dropped on the way in, for everyone.
    send(&mut net, ann, s, PPID_BINARY, vec![1; 300 * 1024]);
    net.advance(Duration::from_millis(500));
    assert!(messages(&events(&mut net, cat)).is_empty());
    assert_eq!(net.counters().data_drops(DataDropReason::TooBig), 2);
    // Ann's channel goes on.
    send(&mut net, ann, s, PPID_STRING, b"small".to_vec());
    net.advance(Duration::from_millis(300));
    assert_eq!(messages(&events(&mut net, bob)).len(), 1);
}

#[test]
fn garbage_sctp_and_bad_dcep_are_dropped_and_the_room_goes_on() {
    let mut net = Net::new();
    net.data_channels = true;
    let (ann, bob) = (net.add_peer(), net.add_peer());
    connected(&mut net);
    for junk in [&[0u8; 4][..], &[0xff; 1200], b"not sctp at all, just text"] {
        net.peers[ann].client.send_raw_sctp(junk);
    }
    net.advance(Duration::from_millis(100));
    let s = open_chat(&mut net, ann);
    send(&mut net, ann, s, PPID_STRING, b"still here".to_vec());
    net.advance(Duration::from_millis(200));
    let got = messages(&events(&mut net, bob));
    assert_eq!(got.len(), 1);
    assert!(net.counters().data_drops(DataDropReason::BadSctp) >= 1);
}
