//! Criterion benches of the per-packet work of the data plane.
//!
//! `cargo bench -p sfu-bench` — see bench/README.md for the latest medians.
#![allow(clippy::expect_used, missing_docs)]

use std::hint::black_box;
use std::net::SocketAddr;

use criterion::{BatchSize, Criterion, Throughput, criterion_group, criterion_main};
use sfu_core::proto::demux::classify;
use sfu_core::proto::rtp::{Rewrite, RtpHeader, write_forwarded};
use sfu_core::proto::srtp::{SrtpBackend, SrtpProfile, SrtpSession};
use sfu_core::proto::stun;
use sfu_core::router::MediaKind;
use sfu_core::testing::{Net, rtp};
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
        let mut seq = 0u16;
        let from = net.peers[publisher].addr;
        g.throughput(Throughput::Elements(n as u64));
        g.bench_function(format!("1_to_{n}"), |b| {
            b.iter_batched(
                || {
                    seq = seq.wrapping_add(1);
                    let plain = rtp(96, seq, seq as u32 * 3000, 1111, &[0xab; 1188]);
                    assert!(net.peers[publisher].client.send_rtp(&plain));
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
        });
    }
    g.finish();
}

criterion_group!(
    benches,
    bench_demux,
    bench_stun,
    bench_rtp,
    bench_srtp,
    bench_fanout
);
criterion_main!(benches);
