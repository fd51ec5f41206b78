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
/// the speaker events seen, with when (ms from the start of this call).
fn talk(net: &mut Net, seq: &mut u16, levels: [u8; 3], ms: u32) -> Vec<(u32, ProducerId)> {
    let mut out = Vec::new();
    for t in (0..ms).step_by(20) {
        for (peer, level) in levels.iter().enumerate() {
            let pkt = audio(100 + peer as u32, *seq, *level);
            assert!(net.peers[peer].client.send_rtp(&pkt));
        }
        *seq = seq.wrapping_add(1);
        net.advance(Duration::from_millis(20));
        while let Some(ev) = net.router.poll_event() {
            if let RouterEvent::DominantSpeaker(p) = ev {
                out.push((t, p));
            }
        }
    }
    out
}

#[test]
fn the_speaker_follows_who_talks_with_hysteresis() {
    let mut net = Net::new();
    let peers = [net.add_peer(), net.add_peer(), net.add_peer()];
    net.connect_all();
    let prods: Vec<ProducerId> = peers
        .iter()
        .map(|&p| net.produce(p, MediaKind::Audio, 100 + p as u32, 111))
        .collect();
    while net.router.poll_event().is_some() {}
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
