//! A subscriber whose reports show congestion (loss above 10 %) caps what
//! the publisher sends, through REMB (draft-alvestrand-rmcat-remb), at what
//! it can take; a healthy subscriber caps nothing, random loss of 5 % is not
//! congestion, and once the congestion is over the cap grows back gradually
//! and is then lifted.
#![allow(clippy::expect_used)]

mod common;

use std::collections::HashMap;
use std::time::Duration;

use common::{Net, rtp};
use sfu_core::Ssrc;
use sfu_core::proto::rtcp::{self, ReportBlock, RtcpIter};
use sfu_core::router::MediaKind;

const VIDEO: u32 = 900;

/// The REMB bitrates the publisher received since the last call.
fn rembs(net: &mut Net, publisher: usize) -> Vec<u64> {
    let mut out = Vec::new();
    for c in std::mem::take(&mut net.peers[publisher].rtcp) {
        for p in RtcpIter::new(&c) {
            if let Some((bps, ssrcs)) = rtcp::parse_remb(&p) {
                assert!(ssrcs.contains(&Ssrc(VIDEO)));
                out.push(bps);
            }
        }
    }
    out
}

/// What a subscriber has reported so far: (extended highest, cumulative lost).
type Reported = HashMap<usize, (u32, i32)>;

/// A receiver report on the last 50 packets, `fraction_lost`/256 of them lost.
fn report(net: &mut Net, reported: &mut Reported, peer: usize, about: u32, fraction_lost: u8) {
    let (hi, cum) = reported.entry(peer).or_insert((1000, 0));
    *hi += 50;
    *cum += (50 * i32::from(fraction_lost)) / 256;
    let mut rr = Vec::new();
    rtcp::write_rr(
        Ssrc(40 + peer as u32),
        &[ReportBlock {
            ssrc: Ssrc(about),
            fraction_lost,
            cumulative_lost: *cum,
            ext_highest_seq: *hi,
            jitter: 0,
            lsr: 0,
            dlsr: 0,
        }],
        &mut rr,
    );
    assert!(net.peers[peer].client.send_rtcp(&rr));
}

/// One second of the publisher's 100 packets of 1,000 B (about 830 kbit/s
/// on the wire), calling `every_500_ms` twice.
fn second_with(net: &mut Net, tick: &mut u32, mut every_500_ms: impl FnMut(&mut Net)) {
    for k in 0..100 {
        let pkt = rtp(96, *tick as u16, *tick * 900, VIDEO, &[5; 1000]);
        assert!(net.peers[0].client.send_rtp(&pkt));
        *tick += 1;
        net.advance(Duration::from_millis(10));
        if k % 50 == 49 {
            every_500_ms(net);
        }
    }
}

/// One second, with the subscribers' reports every 500 ms.
fn second(net: &mut Net, rep: &mut Reported, tick: &mut u32, reports: &[(usize, u32, u8)]) {
    second_with(net, tick, |net| {
        for &(peer, about, loss) in reports {
            report(net, rep, peer, about, loss);
        }
    });
}

#[test]
fn heavy_loss_caps_the_publisher_and_the_cap_lifts_afterwards() {
    let mut net = Net::new();
    let (publisher, congested, healthy) = (net.add_peer(), net.add_peer(), net.add_peer());
    net.connect_all();
    let prod = net.produce(publisher, MediaKind::Video, VIDEO, 96);
    net.consume(congested, prod, 1001, (96, 96));
    net.consume(healthy, prod, 1002, (96, 96));
    net.step();
    let (mut tick, mut rep) = (0, Reported::new());
    second(&mut net, &mut rep, &mut tick, &[(healthy, 1002, 0)]);
    assert!(
        rembs(&mut net, publisher).is_empty(),
        "nobody congested: no REMB"
    );
    let mut caps = Vec::new();
    for _ in 0..4 {
        second(
            &mut net,
            &mut rep,
            &mut tick,
            &[(congested, 1001, 128), (healthy, 1002, 0)],
        );
        caps.extend(rembs(&mut net, publisher));
    }
    eprintln!("caps while congested: {caps:?}");
    assert!(caps.len() >= 3, "one REMB a second: {caps:?}");
    assert!(caps[0] < 830_000, "below what was sent: {caps:?}");
    assert!(
        caps.windows(2).all(|w| w[1] <= w[0]),
        "decreasing under 50 % loss: {caps:?}"
    );
    // The congestion ends: the cap grows back gradually (8 %/s, and 2 % of
    // the capacity found per second near it, so the publisher climbs
    // instead of jumping into the link that just dropped its packets), and
    // is lifted (3 REMBs) once it has quadrupled.
    let mut after = Vec::new();
    for _ in 0..45 {
        second(
            &mut net,
            &mut rep,
            &mut tick,
            &[(congested, 1001, 0), (healthy, 1002, 0)],
        );
        after.extend(rembs(&mut net, publisher));
    }
    eprintln!("caps afterwards: {after:?}");
    let max = sfu_core::bwe::MAX_BPS;
    // REMB's 18-bit mantissa: "no limit" arrives as just under MAX_BPS.
    let lifted = |b: &u64| *b >= max / 2;
    let rising: Vec<u64> = after.iter().copied().take_while(|b| !lifted(b)).collect();
    assert!(rising.len() >= 15, "{after:?}");
    assert!(
        rising
            .windows(2)
            .all(|w| w[1] >= w[0] && w[1] <= w[0] * 110 / 100),
        "never more than 10 % a second: {after:?}"
    );
    let low = rising.first().copied().unwrap_or(0);
    assert!(
        rising.last().is_some_and(|b| *b >= low * 7 / 2),
        "{after:?}"
    );
    assert_eq!(after.iter().filter(|b| lifted(b)).count(), 3, "{after:?}");
    assert!(after.last().is_some_and(lifted));
}

/// A room where peer 0 publishes video and peer 1 consumes it as SSRC 1001.
fn publisher_and_subscriber() -> (Net, usize, usize) {
    let mut net = Net::new();
    let (publisher, sub) = (net.add_peer(), net.add_peer());
    net.connect_all();
    let prod = net.produce(publisher, MediaKind::Video, VIDEO, 96);
    net.consume(sub, prod, 1001, (96, 96));
    net.step();
    (net, publisher, sub)
}

#[test]
fn five_percent_loss_is_not_congestion() {
    let (mut net, publisher, sub) = publisher_and_subscriber();
    let (mut tick, mut rep) = (0, Reported::new());
    for _ in 0..5 {
        second(&mut net, &mut rep, &mut tick, &[(sub, 1001, 13)]);
    }
    assert!(rembs(&mut net, publisher).is_empty());
}

/// One second, with subscriber `sub` sending REMBs (about `consumer`) of
/// `bps` every 500 ms.
fn second_with_remb(net: &mut Net, tick: &mut u32, sub: usize, consumer: u32, bps: u64) {
    second_with(net, tick, |net| {
        let mut remb = Vec::new();
        rtcp::write_empty_rr(Ssrc(77), &mut remb);
        rtcp::write_remb(Ssrc(77), bps, &[Ssrc(consumer)], &mut remb);
        assert!(net.peers[sub].client.send_rtcp(&remb));
    });
}

#[test]
fn a_subscriber_that_sends_remb_instead_of_feedback_caps_when_it_takes_less_than_sent() {
    let (mut net, publisher, sub) = publisher_and_subscriber();
    let mut tick = 0;
    // Its estimator's warm-up: low REMBs are ignored.
    for _ in 0..3 {
        second_with_remb(&mut net, &mut tick, sub, 1001, 200_000);
    }
    // It can take more than the ~830 kbit/s we send; then one low REMB
    // alone (a blip) is not congestion.
    for _ in 0..4 {
        second_with_remb(&mut net, &mut tick, sub, 1001, 2_000_000);
    }
    let mut blip = Vec::new();
    rtcp::write_remb(Ssrc(77), 100_000, &[Ssrc(1001)], &mut blip);
    assert!(net.peers[sub].client.send_rtcp(&blip));
    second_with_remb(&mut net, &mut tick, sub, 1001, 2_000_000);
    assert!(
        rembs(&mut net, publisher).is_empty(),
        "no cap from warm-up REMBs, high ones or a blip"
    );
    // Now it says 250 kbit/s for 3 s: the publisher is capped at its share.
    for _ in 0..3 {
        second_with_remb(&mut net, &mut tick, sub, 1001, 250_000);
    }
    let caps = rembs(&mut net, publisher);
    eprintln!("caps: {caps:?}");
    assert!(!caps.is_empty());
    assert!(
        caps.iter().all(|c| (200_000..=250_000).contains(c)),
        "95 % of what the subscriber takes: {caps:?}"
    );
    assert_eq!(net.counters().capped_subscribers.get(), 1);
}
