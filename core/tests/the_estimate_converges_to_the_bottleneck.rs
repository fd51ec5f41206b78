//! Our send-side estimate for a subscriber (transport-wide cc feedback,
//! GCC's delay-based and loss-based controllers) finds the subscriber's
//! bottleneck: through the in-memory network, a publisher that follows our
//! REMB caps (as Chromium does) sends into a subscriber link limited to
//! 300 kbit/s, or to 2 Mbit/s, with a drop-tail queue, delay and jitter.
//! Within 10 s of virtual time the estimate stays within ±20 % of the
//! limit; once the limit is lifted, the publisher climbs back to its full
//! rate.
#![allow(clippy::expect_used)]

mod common;

use std::time::Duration;

use common::{Net, rtp};
use sfu_core::proto::rtcp::{self, RtcpIter};
use sfu_core::router::MediaKind;

const VIDEO: u32 = 900;
/// The subscriber's transport-wide sequence number extension id.
const SUB_TWCC: u8 = 5;
const PAYLOAD: usize = 1150;

struct Run {
    net: Net,
    sub: usize,
    /// What the publisher would send uncapped, bit/s.
    source_bps: u64,
    /// The last REMB it got, bit/s.
    remb: Option<u64>,
    credit: f64,
    seq: u16,
    /// (seconds, our estimate for the subscriber, publisher's rate)
    samples: Vec<(f64, u64, u64)>,
    /// (delay-based, loss-based, acknowledged) at each sample, for the log.
    parts: Vec<(Option<u64>, u64, Option<u64>)>,
    t: f64,
}

impl Run {
    fn new(bottleneck_bps: u64, source_bps: u64) -> Self {
        let mut net = Net::new();
        net.subscriber_twcc_ext_id = Some(SUB_TWCC);
        let (publisher, sub) = (net.add_peer(), net.add_peer());
        net.connect_all();
        let prod = net.produce(publisher, MediaKind::Video, VIDEO, 96);
        net.consume(sub, prod, 1001, (96, 96));
        net.send_twcc_feedback(sub, SUB_TWCC);
        let down = &mut net.peers[sub].down;
        down.rate_bps = Some(bottleneck_bps);
        down.queue_limit = Duration::from_millis(400);
        down.delay = Duration::from_millis(20);
        down.jitter = Duration::from_millis(3);
        net.step();
        Self {
            net,
            sub,
            source_bps,
            remb: None,
            credit: 0.0,
            seq: 0,
            samples: Vec::new(),
            parts: Vec::new(),
            t: 0.0,
        }
    }

    /// The publisher's rate: its source, capped by our last REMB.
    fn rate(&self) -> u64 {
        self.remb
            .map_or(self.source_bps, |r| r.min(self.source_bps))
    }

    /// Runs `secs` of virtual time in 10 ms ticks, sampling every 100 ms.
    fn run(&mut self, secs: f64) {
        let ticks = (secs * 100.0).round() as usize;
        for k in 0..ticks {
            self.credit += self.rate() as f64 * 0.01 / 8.0;
            while self.credit >= PAYLOAD as f64 {
                self.credit -= PAYLOAD as f64;
                self.seq = self.seq.wrapping_add(1);
                let ts = (self.t * 90_000.0) as u32;
                let pkt = rtp(96, self.seq, ts, VIDEO, &[7; PAYLOAD]);
                assert!(self.net.peers[0].client.send_rtp(&pkt));
            }
            self.net.advance(Duration::from_millis(10));
            self.t += 0.01;
            for c in std::mem::take(&mut self.net.peers[0].rtcp) {
                for p in RtcpIter::new(&c) {
                    if let Some((bps, _)) = rtcp::parse_remb(&p) {
                        self.remb = Some(bps);
                    }
                }
            }
            self.net.peers[self.sub].rtp.clear();
            if k % 10 == 9 {
                let tid = self.net.peers[self.sub].transport;
                let bwe = self.net.router.transport_bwe(tid).expect("transport");
                self.samples.push((self.t, bwe.bps(), self.rate()));
                self.parts
                    .push((bwe.delay_based_bps(), bwe.loss_based_bps(), bwe.acked_bps()));
            }
        }
    }

    fn print(&self) {
        for ((t, est, rate), (d, l, a)) in self.samples.iter().zip(&self.parts).step_by(5) {
            eprintln!(
                "{t:5.1} s  estimate {est:>9}  publisher {rate:>9}  (delay {d:?} loss {l} acked {a:?})"
            );
        }
    }
}

fn converges_within_10_s(bottleneck: u64, source: u64) -> Run {
    let mut r = Run::new(bottleneck, source);
    r.run(20.0);
    r.print();
    let (lo, hi) = (bottleneck * 8 / 10, bottleneck * 12 / 10);
    for &(t, est, _) in r.samples.iter().filter(|(t, _, _)| *t > 10.0) {
        assert!(
            (lo..=hi).contains(&est),
            "at {t:.1} s the estimate is {est}, not within ±20 % of {bottleneck}"
        );
    }
    r
}

#[test]
fn converges_to_300_kbit_s_and_recovers_after_the_limit_is_lifted() {
    let mut r = converges_within_10_s(300_000, 1_500_000);
    // The limit is lifted: the publisher climbs back to its full rate
    // (8 %/s, as GCC does without probing).
    let drops = r.net.peers[r.sub].down.queue_drops;
    let lifted_at = r.t;
    r.net.peers[r.sub].down.rate_bps = None;
    r.samples.clear();
    r.parts.clear();
    r.run(40.0);
    r.print();
    let back = r
        .samples
        .iter()
        .find(|(_, _, rate)| *rate >= r.source_bps * 8 / 10)
        .map(|(t, _, _)| *t - lifted_at);
    assert!(
        back.is_some_and(|t| t < 30.0),
        "publisher back at ≥ 80 % of its rate {back:?} s after the lift"
    );
    assert_eq!(
        r.net.peers[r.sub].down.queue_drops, drops,
        "no queue any more"
    );
}

#[test]
fn converges_to_2_mbit_s() {
    let r = converges_within_10_s(2_000_000, 3_000_000);
    // /metrics: one subscriber with an estimate, capping its publisher, and
    // the loss it reported.
    let c = r.net.counters();
    assert_eq!((c.estimates.get(), c.capped_subscribers.get()), (1, 1));
    let est = c.estimate_bps_sum.get();
    assert!((1_600_000..=2_400_000).contains(&est), "{est}");
    assert!(c.packets_reported_out.get() > 1000);
    assert!(c.packets_lost_out.get() <= c.packets_reported_out.get() / 10);
}
