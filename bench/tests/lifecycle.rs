//! Lifecycle against the real server in-process, with real clients
//! (signaling, ICE, DTLS, SRTP from sfu-core's client peer):
//! - a participant that vanishes (UDP and WebSocket just stop) is removed
//!   within the consent timeout and the others are told;
//! - garbage on a room's UDP port changes nothing for the call and shows in
//!   the drop counters.
//!
//! Every wait is bounded.

mod common;

use std::net::{SocketAddr, UdpSocket};
use std::time::{Duration, Instant};

use common::*;
use sfu_bench::load::{Args, run};
use sfu_core::proto::dtls::Certificate;
use sfu_sig::config::Flags;

#[test]
fn vanished_participant_is_removed_within_the_consent_timeout() {
    let srv = server(
        "49100-49199",
        Flags {
            consent_timeout: Some("5".into()),
            ..Flags::default()
        },
    );
    let addr = srv.addr;
    let cert = Certificate::generate().expect("cert");
    block_on(Duration::from_secs(60), async {
        let mut stays = Client::connect(addr, 1, "v", &cert, true).await;
        let mut vanishes = Client::connect(addr, 2, "v", &cert, true).await;
        // Let both negotiate and exchange a little media.
        for seq in 0..50u16 {
            stays.send_rtp(seq);
            vanishes.send_rtp(seq);
            let _ = stays.signaling(Duration::from_millis(20)).await;
            let _ = vanishes.signaling(Duration::from_millis(20)).await;
            stays.pump();
            vanishes.pump();
        }
        assert!(
            stays.rtp_received > 0 && vanishes.rtp_received > 0,
            "media flowed both ways"
        );
        // `vanishes` stops sending anything on UDP and WebSocket, without leaving.
        let started = Instant::now();
        let mut told = false;
        while started.elapsed() < Duration::from_secs(12) {
            stays.pump();
            for v in stays.signaling(Duration::from_millis(100)).await {
                if v["type"] == "deltas"
                    && v["events"]
                        .as_array()
                        .is_some_and(|e| e.iter().any(|e| e["type"] == "participant-left"))
                {
                    told = true;
                }
            }
            if told {
                break;
            }
        }
        let took = started.elapsed();
        assert!(told, "the others were told within 12 s");
        // Consent runs out 5 s after the last valid check, and the client checks
        // every 2.5 s: so no sooner than 2.5 s after it went silent.
        assert!(
            took >= Duration::from_millis(2400),
            "not before the consent timeout: {took:?}"
        );
        assert_eq!(
            metric(addr, "sfu_participants "),
            1,
            "the one that stayed is still in"
        );
        drop(vanishes);
    });
    srv.stop().expect("clean stop");
}

#[test]
fn garbage_on_the_room_port_changes_nothing_for_the_call() {
    let srv = server("49200-49299", Flags::default());
    let addr = srv.addr;
    // A 1 publisher -> 2 subscriber call through sfu-load, in a thread.
    let load = std::thread::spawn(move || {
        run(Args {
            subscribers: 2,
            video_kbps: 500,
            packet_size: 1000,
            audio: true,
            duration: 6.0,
            ramp: 0.5,
            cpu: Some(-1),
            verify_every: 1,
            ..Args::against(&format!("ws://{addr}/ws"))
        })
    });
    // Find the room's port once it exists, then spray it for ~3 s.
    let end = Instant::now() + Duration::from_secs(5);
    let port = loop {
        assert!(Instant::now() < end, "room opened");
        if metric(addr, "sfu_rooms ") == 1 {
            break 49200u16;
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    std::thread::sleep(Duration::from_millis(2000));
    let room: SocketAddr = format!("127.0.0.1:{port}").parse().expect("addr");
    let stranger = UdpSocket::bind("127.0.0.1:0").expect("bind");
    let fixtures = concat!(env!("CARGO_MANIFEST_DIR"), "/../testdata/packets");
    let mut samples: Vec<Vec<u8>> = std::fs::read_dir(fixtures)
        .unwrap_or_else(|e| panic!("{fixtures}: {e}"))
        .flatten()
        .map(|e| std::fs::read(e.path()).expect("a captured datagram"))
        .collect();
    assert!(
        samples.len() >= 30,
        "testdata/packets holds the captured datagrams"
    );
    let mut seed = 99u32;
    let mut rnd = || {
        seed = seed.wrapping_mul(1_103_515_245).wrapping_add(12_345);
        (seed >> 16) as u8
    };
    for first in [0u8, 1, 22, 0x80, 0x90, 200, 255] {
        let mut d: Vec<u8> = (0..200).map(|_| rnd()).collect();
        d[0] = first;
        samples.push(d);
    }
    let spray_end = Instant::now() + Duration::from_secs(3);
    let mut sent = 0u64;
    while Instant::now() < spray_end && sent < 20_000 {
        let s = &samples[(sent as usize) % samples.len()];
        let cut = (rnd() as usize) % (s.len() + 1);
        let _ = stranger.send_to(&s[..cut.max(1)], room);
        sent += 1;
        if sent.is_multiple_of(200) {
            std::thread::sleep(Duration::from_millis(10));
        }
    }
    let summary = load.join().expect("load thread").expect("load run");
    assert_eq!(summary.joined, 3, "{:?}", summary.join_failures);
    assert!(summary.loss_ratio < 0.02, "the call went on: {summary:?}");
    assert_eq!(summary.verify_failures, 0);
    let drops = metric(addr, "sfu_worker_drops_total");
    assert!(
        drops > sent / 2,
        "garbage shows in the drop counters: {drops} of {sent}"
    );
    srv.stop().expect("clean stop");
}
