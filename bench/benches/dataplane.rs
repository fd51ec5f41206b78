//! Criterion benches of the per-packet work of the data plane.
//!
//! `cargo bench -p sfu-bench` — see bench/README.md for the latest medians.
#![allow(clippy::expect_used, missing_docs)]

use std::hint::black_box;
use std::net::SocketAddr;
use std::time::Duration;

use criterion::{BatchSize, Criterion, Throughput, criterion_group, criterion_main};
use sfu_core::proto::demux::classify;
use sfu_core::proto::rtp::{Rewrite, RtpHeader, write_forwarded};
use sfu_core::proto::srtp::{SrtpBackend, SrtpProfile, SrtpSession};
use sfu_core::proto::stun;
use sfu_core::router::MediaKind;
use sfu_core::testing::{
    AV1_DD_EXT_ID, Av1L3t3Play, MID_EXT_ID, Net, RID_EXT_ID, av1_rtp, rtp, rtp_with_ext,
};
use sfu_core::{Mid, Pt, Ssrc};

const PWD: &str = "serverpassword-0123456789";

/// A Chromium-shaped RTP packet: one-byte extensions (abs-send-time,
/// transport-cc, mid) and a payload so the whole packet is `len` bytes.
fn chromium_rtp(len: usize, seq: u16) -> Vec<u8> {
    let mut p = vec![0x90, 96];
    p.extend_from_slice(&seq.to_be_bytes());
    p.extend_from_slice(&123_456u32.to_be_bytes());
    p.extend_from_slice(&0x1111_2222u32.to_be_bytes());
    p.extend_from_slice(&[
        0xBE, 0xDE, 0, 3, 0x22, 1, 2, 3, 0x31, 0, 7, 0x40, b'1', 0, 0, 0,
    ]);
    p.resize(len, 0xab);
    p
}

fn bench_demux(c: &mut Criterion) {
    let mut g = c.benchmark_group("demux");
    let pkts = [
        vec![0u8, 1, 0, 0],
        vec![22u8, 0xfe, 0xfd],
        chromium_rtp(1200, 1),
        vec![0x80, 200, 0, 6],
    ];
    g.throughput(Throughput::Elements(pkts.len() as u64));
    g.bench_function("classify_4_classes", |b| {
        b.iter(|| {
            for p in &pkts {
                black_box(classify(black_box(p)));
            }
        })
    });
    g.finish();
}

fn bench_stun(c: &mut Criterion) {
    let mut g = c.benchmark_group("stun");
    g.throughput(Throughput::Elements(1));
    let mut buf = [0u8; 256];
    let n = stun::encode_binding_request([7; 12], "srvufrag", "cliu", PWD, true, &mut buf)
        .expect("encode");
    let req = buf[..n].to_vec();
    g.bench_function("binding_request_decode_and_verify", |b| {
        b.iter(|| stun::verify_binding_request(black_box(&req), "srvufrag", PWD).expect("valid"))
    });
    let from: SocketAddr = "127.0.0.1:50000".parse().expect("addr");
    g.bench_function("binding_success_encode", |b| {
        let mut out = [0u8; 128];
        b.iter(|| {
            stun::encode_binding_success(black_box([7; 12]), from, PWD, &mut out).expect("encode")
        })
    });
    g.finish();
}

fn bench_rtp(c: &mut Criterion) {
    let mut g = c.benchmark_group("rtp");
    g.throughput(Throughput::Elements(1));
    let pkt = chromium_rtp(1200, 100);
    g.bench_function("header_parse", |b| {
        b.iter(|| RtpHeader::parse(black_box(&pkt)).expect("valid"))
    });
    let hdr = RtpHeader::parse(&pkt).expect("valid");
    let rw = Rewrite {
        ssrc: Ssrc(5),
        pt: Pt(100),
        seq: 7,
        timestamp: 9,
        mid: Some((4, Mid::new("s12").expect("mid"))),
        // As Chromium subscribers get it: our transport-wide number too.
        twcc: Some((3, 1234)),
        audio_level: None,
        abs_send_time: None,
        dependency_descriptor: None,
        osn: None,
    };
    let mut out = Vec::with_capacity(1500);
    g.bench_function("consumer_rewrite_1200B", |b| {
        b.iter(|| write_forwarded(black_box(&pkt), &hdr, black_box(&rw), &mut out))
    });
    g.finish();
}

fn bench_srtp(c: &mut Criterion) {
    for (backend, profile) in [SrtpBackend::Native, SrtpBackend::WebrtcSrtp]
        .into_iter()
        .flat_map(|b| {
            [
                SrtpProfile::Aes128CmSha1_80,
                SrtpProfile::AeadAes128Gcm,
                SrtpProfile::AeadAes256Gcm,
            ]
            .map(|p| (b, p))
        })
    {
        let mut g = c.benchmark_group(format!("srtp/{backend:?}/{profile:?}"));
        let km: Vec<u8> = (0..profile.keying_material_len())
            .map(|i| i as u8)
            .collect();
        for size in [200usize, 1200] {
            g.throughput(Throughput::Elements(1));
            let mut tx = SrtpSession::with_backend(backend, profile, &km, true).expect("session");
            let mut seq = 0u16;
            g.bench_function(format!("protect_{size}B"), |b| {
                b.iter_batched_ref(
                    || {
                        seq = seq.wrapping_add(1);
                        chromium_rtp(size, seq)
                    },
                    |p| tx.protect_rtp(p).expect("protect"),
                    BatchSize::SmallInput,
                )
            });
            let mut tx = SrtpSession::with_backend(backend, profile, &km, true).expect("session");
            let mut rx = SrtpSession::with_backend(backend, profile, &km, false).expect("session");
            let mut seq = 0u16;
            g.bench_function(format!("unprotect_{size}B"), |b| {
                b.iter_batched_ref(
                    || {
                        seq = seq.wrapping_add(1);
                        tx.protect_rtp(&chromium_rtp(size, seq)).expect("protect")
                    },
                    |p| rx.unprotect_rtp(p).expect("unprotect"),
                    BatchSize::SmallInput,
                )
            });
        }
        g.finish();
    }
}

/// 1 producer -> N consumers through a Router in memory: decrypt once,
/// rewrite + encrypt N times, queue N datagrams. No sockets.
fn bench_fanout(c: &mut Criterion) {
    let mut g = c.benchmark_group("router_fanout_1200B");
    g.sample_size(30);
    for n in [1usize, 10, 100] {
        let mut net = Net::new();
        let publisher = net.add_peer();
        let subs: Vec<usize> = (0..n).map(|_| net.add_peer()).collect();
        net.connect_all();
        let producer = net.produce(publisher, MediaKind::Video, 1111, 96);
        for (i, s) in subs.iter().enumerate() {
            net.consume(*s, producer, 5000 + i as u32, (96, 96));
        }
        net.step();
        let mut count = 0u32;
        g.throughput(Throughput::Elements(n as u64));
        g.bench_function(format!("1_to_{n}"), |b| {
            fan_out(b, &mut net, publisher, n, &mut count, |seq, k| {
                rtp(96, seq, k.wrapping_mul(3000), 1111, &[0xab; 1188])
            });
        });
    }
    g.finish();
}

/// Times one packet from `publisher` through `net`'s Router: `packet`
/// makes the plain RTP of each from a count that goes on across calls
/// from `count` (its sequence number is the count's low 16 bits, its
/// timestamp may go on past their wrap), the publisher protects it outside
/// the timing, and each of the `n` consumers must get a copy.
fn fan_out(
    b: &mut criterion::Bencher<'_>,
    net: &mut Net,
    publisher: usize,
    n: usize,
    count: &mut u32,
    mut packet: impl FnMut(u16, u32) -> Vec<u8>,
) {
    let from = net.peers[publisher].addr;
    b.iter_batched(
        || {
            *count = count.wrapping_add(1);
            let p = packet(*count as u16, *count);
            assert!(net.peers[publisher].client.send_rtp(&p));
            // As the driver's receive buffer: decrypted in place.
            net.peers[publisher]
                .client
                .poll_transmit()
                .expect("srtp")
                .to_vec()
        },
        |mut pkt: Vec<u8>| {
            let now = net.now;
            net.router.handle_datagram(now, from, &mut pkt);
            let mut sent = 0;
            while net.router.poll_transmit().is_some() {
                sent += 1;
            }
            assert_eq!(sent, n);
        },
        BatchSize::SmallInput,
    )
}

/// A VP8 packet of a simulcast layer with temporal layers (L1T3, as the
/// page sends it), each packet a frame of TID 0, 2, 1, 2 in turn: the
/// descriptor with picture ID, TL0PICIDX and TID/Y, then 1,180 bytes.
fn vp8_l1t3(seq: u16, f: u32, ssrc: u32, tagged: bool) -> Vec<u8> {
    let (tid, y) = [(0u8, 0u8), (2, 0x20), (1, 0x20), (2, 0)][(f % 4) as usize];
    let [p0, p1] = ((seq & 0x7fff) | 0x8000).to_be_bytes();
    let mut payload = vec![0x90, 0xe0, p0, p1, (f / 4) as u8, (tid << 6) | y];
    // The frame tag: a keyframe (P clear) every 10 frames while the
    // consumers start, deltas after.
    payload.push(if f <= 40 && f % 10 == 1 { 0x10 } else { 0x11 });
    payload.extend_from_slice(&[0x02, 0x00, 0x9d, 0x01, 0x2a, 0x80, 0x02, 0xe0, 0x01]);
    payload.resize(1188, 0xab);
    let exts: Vec<(u8, &[u8])> = if tagged {
        vec![(MID_EXT_ID, b"0"), (RID_EXT_ID, b"q")]
    } else {
        vec![]
    };
    rtp_with_ext(96, seq, f.wrapping_mul(3000), ssrc, true, &exts, &payload)
}

/// The consumers' side of simulcast with temporal layers: 1 producer -> 10
/// consumers as [`bench_fanout`], the packets VP8 L1T3 of a simulcast
/// layer, so each is parsed for its layer switch and each copy passes the
/// consumer's temporal-layer check and picture ID rewrite.
fn bench_fanout_l1t3(c: &mut Criterion) {
    let mut g = c.benchmark_group("rtp");
    g.sample_size(30);
    let n = 10;
    let mut net = Net::new();
    let publisher = net.add_peer();
    let subs: Vec<usize> = (0..n).map(|_| net.add_peer()).collect();
    net.connect_all();
    let producer = net.produce_simulcast(publisher, &["q", "f"], 97);
    for (i, s) in subs.iter().enumerate() {
        net.consume(*s, producer, 5000 + i as u32, (96, 96));
    }
    // Layer q only: the layer pass makes it every consumer's target, and
    // its keyframes (one every 10 packets for a start) start them.
    let mut seq = 0u16;
    for _ in 0..40 {
        seq = seq.wrapping_add(1);
        let p = vp8_l1t3(seq, u32::from(seq), 4444, seq < 20);
        assert!(net.peers[publisher].client.send_rtp(&p));
        net.advance(Duration::from_millis(50));
    }
    // Nothing else in flight: each timed datagram is the packet.
    net.step();
    g.throughput(Throughput::Elements(n as u64));
    let mut count = u32::from(seq);
    g.bench_function(format!("consumer_rewrite_vp8_l1t3_1_to_{n}"), |b| {
        fan_out(b, &mut net, publisher, n, &mut count, |seq, k| {
            vp8_l1t3(seq, k, 4444, false)
        });
    });
    g.finish();
}

/// The consumers' side of AV1 SVC: 1 producer -> 10 consumers as
/// [`bench_fanout`], the packets Chromium's AV1 L3T3 (`testdata/rtp`: its
/// dependency descriptors played over and over, frame numbers going on)
/// with 200 bytes of payload, so each is decoded against the template
/// structure and followed through the chains, and each copy passes the
/// consumer's spatial and temporal check.
fn bench_fanout_av1_l3t3(c: &mut Criterion) {
    let mut g = c.benchmark_group("rtp");
    g.sample_size(30);
    let n = 10;
    let mut net = Net::new();
    net.dependency_descriptor_ext_ids = Some((AV1_DD_EXT_ID, 9));
    let publisher = net.add_peer();
    let subs: Vec<usize> = (0..n).map(|_| net.add_peer()).collect();
    net.connect_all();
    let producer = net.produce(publisher, MediaKind::Video, 4444, 45);
    for (i, s) in subs.iter().enumerate() {
        net.consume(*s, producer, 5000 + i as u32, (45, 45));
    }
    let play = Av1L3t3Play::load();
    let warm_up = 2 * play.round_len() as u32;
    // Packet k of the endless play.
    let packet = move |k: u32| {
        let (_, picture, marker, dd) = play.packet(k as usize);
        av1_rtp(
            k as u16,
            picture.wrapping_mul(4500),
            marker,
            (4444, 45),
            &dd,
            &[0; 200],
        )
    };
    // Two plays at about 20 pictures/s: the layer passes give every
    // consumer every layer.
    let mut count = 0u32;
    for _ in 0..warm_up {
        count += 1;
        assert!(net.peers[publisher].client.send_rtp(&packet(count)));
        net.advance(Duration::from_millis(7));
    }
    net.step();
    g.throughput(Throughput::Elements(n as u64));
    g.bench_function(format!("consumer_rewrite_av1_l3t3_1_to_{n}"), |b| {
        fan_out(b, &mut net, publisher, n, &mut count, |_, k| packet(k));
    });
    g.finish();
}

criterion_group!(
    benches,
    bench_demux,
    bench_stun,
    bench_rtp,
    bench_srtp,
    bench_fanout,
    bench_fanout_l1t3,
    bench_fanout_av1_l3t3
);
criterion_main!(benches);
