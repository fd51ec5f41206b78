//! A connected SCTP association (ours, over dcSCTP) with a data channel
//! open, fed arbitrary SCTP packets as if DTLS had decrypted them, and the
//! DCEP parser fed the same bytes; nothing may panic, and an association
//! that is still up still takes a proper message.
//! Input: a sequence of (u16 big-endian length, bytes) packets.
#![no_main]
use std::cell::RefCell;
use std::time::{Duration, Instant};

use libfuzzer_sys::fuzz_target;
use sfu_core::proto::dcep::{self, ChannelParams, Reliability};
use sfu_core::proto::sctp::{DataEvent, SctpAssociation, SctpConfig};

struct Pair {
    now: Instant,
    client: SctpAssociation,
    server: SctpAssociation,
    stream: u16,
}

impl Pair {
    fn pump(&mut self) {
        for _ in 0..50 {
            let mut moved = false;
            while let Some(p) = self.client.poll_packet() {
                self.server.handle_packet(self.now, &p);
                moved = true;
            }
            while let Some(p) = self.server.poll_packet() {
                self.client.handle_packet(self.now, &p);
                moved = true;
            }
            if !moved {
                break;
            }
        }
        self.now += Duration::from_millis(5);
        self.client.handle_timeout(self.now);
        self.server.handle_timeout(self.now);
    }

    fn new() -> Self {
        let now = Instant::now();
        let mut p = Self {
            now,
            client: SctpAssociation::new(now, true, 0, SctpConfig::default()),
            server: SctpAssociation::new(now, false, 0, SctpConfig::default()),
            stream: 0,
        };
        for _ in 0..10 {
            p.pump();
        }
        let params = ChannelParams {
            label: "chat".into(),
            protocol: String::new(),
            ordered: true,
            reliability: Reliability::Reliable,
            priority: 256,
        };
        p.stream = p.client.open(p.now, params).expect("opens");
        p.pump();
        while p.server.poll_event().is_some() {}
        p
    }
}

thread_local! {
    static PAIR: RefCell<Option<Pair>> = const { RefCell::new(None) };
}

fuzz_target!(|data: &[u8]| PAIR.with_borrow_mut(|slot| {
    let pair = slot.get_or_insert_with(Pair::new);
    let mut rest = data;
    while rest.len() >= 2 {
        let len = usize::from(u16::from_be_bytes([rest[0], rest[1]])).min(rest.len() - 2);
        let (pkt, r) = rest[2..].split_at(len);
        rest = r;
        let _ = dcep::parse(pkt, 1024);
        pair.server.handle_packet(pair.now, pkt);
        while pair.server.poll_packet().is_some() {}
    }
    while pair.server.poll_event().is_some() {}
    pair.pump();
    if !pair.server.is_connected() || !pair.client.is_connected() {
        *slot = None;
        return;
    }
    // Still up: a proper message gets through.
    let now = pair.now;
    if pair.client.send(now, pair.stream, 51, b"still here".to_vec()).is_ok() {
        for _ in 0..3 {
            pair.pump();
        }
        let got = std::iter::from_fn(|| pair.server.poll_event())
            .any(|e| matches!(e, DataEvent::Message { ref data, .. } if data == b"still here"));
        if !got {
            // The garbage may have been a valid-looking stream reset or a
            // gap the association still waits on: start over.
            *slot = None;
        }
    }
}));
