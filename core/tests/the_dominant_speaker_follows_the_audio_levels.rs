//! The room's dominant speaker follows the audio levels its publishers send
//! (RFC 6464), with hysteresis: the first to speak becomes it at once, a
//! louder one takes over after leading for two 300 ms intervals, a short
//! interjection does not, and silence keeps the last speaker.

mod common;

use std::time::Duration;

use common::{AUDIO_LEVEL_EXT_ID, Net};
use sfu_core::ProducerId;
use sfu_core::router::{MediaKind, RouterEvent};

/// An Opus packet with audio level `level` (−dBov: 0 loud, 127 silent).
fn audio(ssrc: u32, seq: u16, level: u8) -> Vec<u8> {
    let mut p = vec![0x90, 111];
    p.extend_from_slice(&seq.to_be_bytes());
    p.extend_from_slice(&(u32::from(seq) * 960).to_be_bytes());
    p.extend_from_slice(&ssrc.to_be_bytes());
    p.extend_from_slice(&[0xBE, 0xDE, 0, 1, AUDIO_LEVEL_EXT_ID << 4, level, 0, 0]);
    p.extend_from_slice(b"opus");
    p
}

/// `ms` of 20 ms packets from peers 0, 1, 2 at the given levels; returns
/// the router's events, with when (ms from the start of this call).
fn talk_events(net: &mut Net, seq: &mut u16, levels: [u8; 3], ms: u32) -> Vec<(u32, RouterEvent)> {
    let mut out = Vec::new();
    for t in (0..ms).step_by(20) {
        for (peer, level) in levels.iter().enumerate() {
            let pkt = audio(100 + peer as u32, *seq, *level);
            assert!(net.peers[peer].client.send_rtp(&pkt));
        }
        *seq = seq.wrapping_add(1);
        net.advance(Duration::from_millis(20));
        while let Some(ev) = net.router.poll_event() {
            out.push((t, ev));
        }
    }
    out
}

/// The speaker events of [`talk_events`].
fn talk(net: &mut Net, seq: &mut u16, levels: [u8; 3], ms: u32) -> Vec<(u32, ProducerId)> {
    talk_events(net, seq, levels, ms)
        .into_iter()
        .filter_map(|(t, ev)| match ev {
            RouterEvent::DominantSpeaker(p) => Some((t, p)),
            _ => None,
        })
        .collect()
}

/// The level reports of [`talk_events`].
fn levels_seen(
    net: &mut Net,
    seq: &mut u16,
    levels: [u8; 3],
    ms: u32,
) -> Vec<Vec<(ProducerId, u8)>> {
    talk_events(net, seq, levels, ms)
        .into_iter()
        .filter_map(|(_, ev)| match ev {
            RouterEvent::AudioLevels(l) => Some(l),
            _ => None,
        })
        .collect()
}

/// A router with three connected peers, each publishing audio with levels
/// (SSRC 100 + peer); its events so far drained.
fn three_publishers() -> (Net, Vec<ProducerId>) {
    let mut net = Net::new();
    let peers = [net.add_peer(), net.add_peer(), net.add_peer()];
    net.connect_all();
    let prods: Vec<ProducerId> = peers
        .iter()
        .map(|&p| net.produce(p, MediaKind::Audio, 100 + p as u32, 111))
        .collect();
    while net.router.poll_event().is_some() {}
    (net, prods)
}

#[test]
fn the_speaker_follows_who_talks_with_hysteresis() {
    let (mut net, prods) = three_publishers();
    let mut seq = 0;
    // Silence: nobody.
    assert!(talk(&mut net, &mut seq, [127, 127, 127], 1000).is_empty());
    // Peer 0 talks: it is the speaker within one interval.
    let ev = talk(&mut net, &mut seq, [30, 127, 127], 1000);
    assert_eq!(ev.len(), 1, "{ev:?}");
    assert_eq!(ev[0].1, prods[0]);
    assert!(ev[0].0 <= 320, "{ev:?}");
    // Peer 1 interjects for 200 ms: no change.
    assert!(talk(&mut net, &mut seq, [40, 20, 127], 200).is_empty());
    assert!(talk(&mut net, &mut seq, [30, 127, 127], 1000).is_empty());
    // Peer 1 takes over (peer 0 stops): within 2 intervals and a bit.
    let ev = talk(&mut net, &mut seq, [127, 25, 127], 1500);
    assert_eq!(ev.len(), 1, "{ev:?}");
    assert_eq!(ev[0].1, prods[1]);
    assert!(ev[0].0 <= 700, "{ev:?}");
    // Everyone silent: the speaker stays.
    assert!(talk(&mut net, &mut seq, [127, 127, 127], 2000).is_empty());
}

#[test]
fn each_publishers_loudest_level_is_reported_every_interval_while_anyone_talks() {
    let (mut net, prods) = three_publishers();
    let mut seq = 0;
    assert!(
        levels_seen(&mut net, &mut seq, [127, 127, 127], 1000).is_empty(),
        "silence is not reported"
    );
    let talk = levels_seen(&mut net, &mut seq, [30, 50, 127], 1200);
    assert!((3..=5).contains(&talk.len()), "one per 300 ms: {talk:?}");
    let last = talk.last().expect("a report");
    assert_eq!(
        last,
        &[(prods[0], 30), (prods[1], 50)],
        "the silent one left out"
    );
    // Silence again: the interval that still had talk, one empty report,
    // then none.
    let quiet = levels_seen(&mut net, &mut seq, [127, 127, 127], 1200);
    assert!((1..=2).contains(&quiet.len()), "{quiet:?}");
    assert!(quiet.last().expect("a report").is_empty(), "{quiet:?}");
    assert!(levels_seen(&mut net, &mut seq, [127, 127, 127], 1000).is_empty());
}
