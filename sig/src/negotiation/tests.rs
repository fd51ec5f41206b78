//! Tests of the negotiation state: tables of steps, and client offers.

use super::*;
use sfu_core::proto::rtp::{Extension, ExtensionMap};

const OFFER: &str = include_str!("../../../testdata/sdp/offer-audio-video-sendrecv.sdp");
const RECVONLY_AUDIO: &str = "v=0\r\no=- 1 2 IN IP4 127.0.0.1\r\ns=-\r\nt=0 0\r\n\
    a=group:BUNDLE 0\r\na=fingerprint:sha-256 \
    7B:31:07:E0:64:2F:6A:98:4D:EA:21:A6:76:D7:40:85:03:64:F1:3A:5F:8C:B5:1B:48:0D:37:DA:EC:E2:27:BC\r\n\
    m=audio 9 UDP/TLS/RTP/SAVPF 111\r\nc=IN IP4 0.0.0.0\r\na=mid:0\r\na=ice-ufrag:abcd\r\n\
    a=ice-pwd:0123456789012345678901\r\na=setup:actpass\r\na=recvonly\r\n\
    a=extmap:4 urn:ietf:params:rtp-hdrext:sdes:mid\r\na=rtpmap:111 opus/48000/2\r\n";

fn vp8(pt: u8) -> Codec {
    Codec {
        pt,
        name: "VP8".into(),
        clock_rate: 90000,
        channels: None,
        fmtp: None,
    }
}

fn opus() -> Codec {
    Codec {
        pt: 111,
        name: "opus".into(),
        clock_rate: 48000,
        channels: Some(2),
        fmtp: Some("minptime=10;useinbandfec=1".into()),
    }
}

fn own(n: usize) -> Vec<LocalMedia> {
    (0..n)
        .map(|i| LocalMedia {
            direction: Direction::RecvOnly,
            codec: Some(opus()),
            extensions: ExtensionMap::EMPTY.with(Extension::Mid, Some(4)),
            rejected: false,
            ..LocalMedia::closed(&i.to_string(), Some(MediaKind::Audio))
        })
        .collect()
}

fn neg(offer: &str, own_sections: usize) -> Negotiation {
    Negotiation::new(own(own_sections), &crate::sdp::parse(offer).expect("offer"))
}

/// An answer to `offer` that accepts every sendonly section whose mid is
/// not in `refuse` (those get port 0), and keeps closed ones closed.
fn answer(offer: &[LocalMedia], refuse: &[&str]) -> Vec<MediaSection> {
    offer
        .iter()
        .map(|m| {
            let refused = refuse.contains(&m.mid.as_str()) || m.rejected;
            MediaSection {
                mid: m.mid.clone(),
                kind: m.kind,
                rejected: refused,
                direction: match m.direction {
                    Direction::SendOnly => Direction::RecvOnly,
                    Direction::RecvOnly => Direction::SendOnly,
                    d => d,
                },
                codecs: m.codec.iter().chain(&m.rtx).cloned().collect(),
                ssrc: None,
                rtx_ssrc: None,
                extensions: m.extensions.without(Extension::DependencyDescriptor),
                ext_ids: 0,
                send_rids: vec![],
                sctp: None,
            }
        })
        .collect()
}

fn track(n: u64, publisher: u64, kind: MediaKind) -> OutTrack {
    OutTrack {
        producer: ProducerId(n),
        consumer: ConsumerId(100 + n),
        publisher,
        kind,
        codec: if kind == MediaKind::Audio {
            opus()
        } else {
            vp8(96)
        },
        ssrc: 1000 + n as u32,
        rtx: None,
        screen: false,
    }
}

/// One step of a table test and what must hold after it.
enum Step {
    /// Add track n of publisher p.
    Add(u64, u64, MediaKind),
    /// Publisher p leaves.
    Leave(u64),
    /// Make an offer; its slot sections must read like this
    /// (`mid=send`, `mid=closed`).
    Offer(&'static str),
    /// Answer, refusing these mids; resumed consumers and refused producers.
    Answer(&'static [&'static str], &'static [u64], &'static [u64]),
    /// The update failed (timeout or update-failed).
    Fail(AfterFailure),
    /// No offer is due.
    Quiet,
}

fn shape(offer: &[LocalMedia], own: usize) -> String {
    offer[own..]
        .iter()
        .map(|m| format!("{}={}", m.mid, if m.rejected { "closed" } else { "send" }))
        .collect::<Vec<_>>()
        .join(" ")
}

fn run(name: &str, steps: &[Step]) {
    use MediaKind::{Audio, Video};
    let _ = (Audio, Video);
    let mut n = neg(OFFER, 2);
    let t0 = Instant::now();
    let mut last: Vec<LocalMedia> = Vec::new();
    for (i, step) in steps.iter().enumerate() {
        let at = format!("{name}, step {i}");
        match step {
            Step::Add(t, p, kind) => {
                let mid = n.allocate_mid();
                n.add(mid, track(*t, *p, *kind));
            }
            Step::Leave(p) => {
                n.remove_publisher(*p);
            }
            Step::Offer(want) => {
                assert!(n.needs_offer(), "{at}: an offer is due");
                last = n.make_offer(t0, Duration::from_secs(10));
                assert_eq!(shape(&last, 2), *want, "{at}");
                assert!(!n.needs_offer(), "{at}: one update at a time");
            }
            Step::Answer(refuse, resumed, refused) => {
                let out = n.on_answer(&answer(&last, refuse)).expect(&at);
                let r: Vec<u64> = out.resume.iter().map(|c| c.0 - 100).collect();
                let x: Vec<u64> = out.rejected.iter().map(|t| t.producer.0).collect();
                assert_eq!((&r[..], &x[..]), (*resumed, *refused), "{at}");
            }
            Step::Fail(want) => assert_eq!(n.on_failure(), *want, "{at}"),
            Step::Quiet => assert!(!n.needs_offer(), "{at}: nothing to offer"),
        }
    }
}

#[test]
fn an_answer_without_rtx_or_an_extension_narrows_that_consumer() {
    let setup = || {
        let mut n = neg(OFFER, 2);
        let mut video = track(1, 7, MediaKind::Video);
        video.rtx = Some((
            Codec {
                pt: 97,
                name: "rtx".into(),
                clock_rate: 90000,
                channels: None,
                fmtp: Some("apt=96".into()),
            },
            4242,
        ));
        for t in [video, track(2, 7, MediaKind::Audio)] {
            let mid = n.allocate_mid();
            n.add(mid, t);
        }
        let offer = n.make_offer(Instant::now(), Duration::from_secs(10));
        (n, offer)
    };
    let (mut full, offer) = setup();
    let (v, a) = (&offer[2], &offer[3]);
    assert_eq!(
        (
            v.extensions.get(Extension::TransportWideCc),
            v.extensions.get(Extension::AbsSendTime),
            v.extensions.get(Extension::AudioLevel)
        ),
        (Some(3), Some(2), None),
        "Chromium's ids; no audio level on video"
    );
    assert_eq!(a.extensions.get(Extension::AudioLevel), Some(1));
    // A full echo narrows nothing.
    let out = full.on_answer(&answer(&offer, &[])).expect("answer");
    assert_eq!(out.resume.len(), 2);
    assert!(out.narrowed.is_empty(), "{:?}", out.narrowed);
    // Video without its RTX codec, audio without transport-cc.
    let (mut n, offer) = setup();
    let mut ans = answer(&offer, &[]);
    ans[2].codecs.retain(|c| c.name != "rtx");
    ans[3].extensions.set(Extension::TransportWideCc, None);
    let out = n.on_answer(&ans).expect("answer");
    assert_eq!(out.resume.len(), 2);
    assert_eq!(
        out.narrowed,
        vec![
            (
                ConsumerId(101),
                Answered {
                    rtx: false,
                    extensions: ExtensionMap::EMPTY
                        .with(Extension::Mid, Some(4))
                        .with(Extension::TransportWideCc, Some(3))
                        .with(Extension::AbsSendTime, Some(2)),
                }
            ),
            (
                ConsumerId(102),
                Answered {
                    rtx: false,
                    extensions: ExtensionMap::EMPTY
                        .with(Extension::Mid, Some(4))
                        .with(Extension::AudioLevel, Some(1))
                        .with(Extension::AbsSendTime, Some(2)),
                }
            ),
        ]
    );
}

#[test]
fn negotiation_table() {
    use MediaKind::{Audio, Video};
    use Step::*;
    let cases: &[(&str, &[Step])] = &[
        (
            "a publisher joins: both tracks offered, accepted, resumed",
            &[
                Add(1, 7, Audio),
                Add(2, 7, Video),
                Offer("s1=send s2=send"),
                Answer(&[], &[1, 2], &[]),
                Quiet,
            ],
        ),
        (
            "changes during an update wait for its answer",
            &[
                Add(1, 7, Audio),
                Offer("s1=send"),
                Add(2, 8, Audio),
                Quiet,
                Answer(&[], &[1], &[]),
                Offer("s1=send s2=send"),
                Answer(&[], &[2], &[]),
            ],
        ),
        (
            "a publisher leaves: its sections close, then are recycled under new mids",
            &[
                Add(1, 7, Audio),
                Add(2, 7, Video),
                Offer("s1=send s2=send"),
                Answer(&[], &[1, 2], &[]),
                Leave(7),
                Offer("s1=closed s2=closed"),
                Answer(&[], &[], &[]),
                Add(3, 8, Video),
                Add(4, 8, Audio),
                Offer("s4=send s3=send"),
                Answer(&[], &[4, 3], &[]),
            ],
        ),
        (
            "a free slot is reused only by the same kind",
            &[
                Add(1, 7, Audio),
                Offer("s1=send"),
                Answer(&[], &[1], &[]),
                Leave(7),
                Offer("s1=closed"),
                Answer(&[], &[], &[]),
                Add(2, 8, Video),
                Offer("s1=closed s2=send"),
            ],
        ),
        (
            "a section still closing is not reused before the answer",
            &[
                Add(1, 7, Audio),
                Offer("s1=send"),
                Answer(&[], &[1], &[]),
                Leave(7),
                Offer("s1=closed"),
                Add(2, 8, Audio),
                Answer(&[], &[], &[]),
                Offer("s1=closed s2=send"),
            ],
        ),
        (
            "a track that leaves before it was offered never reaches the SDP",
            &[Add(1, 7, Audio), Leave(7), Quiet],
        ),
        (
            "a track that leaves while offered is closed in the next update",
            &[
                Add(1, 7, Video),
                Offer("s1=send"),
                Leave(7),
                Answer(&[], &[], &[]),
                Offer("s1=closed"),
            ],
        ),
        (
            "a refused track is reported, its section freed, and not offered again",
            &[
                Add(1, 7, Audio),
                Add(2, 7, Video),
                Offer("s1=send s2=send"),
                Answer(&["s2"], &[1], &[2]),
                Quiet,
                Add(3, 8, Video),
                Offer("s1=send s3=send"),
            ],
        ),
        (
            "a failed update is offered again, and the third failure gives up",
            &[
                Add(1, 7, Audio),
                Offer("s1=send"),
                Fail(AfterFailure::Retry),
                Offer("s1=send"),
                Fail(AfterFailure::Retry),
                Offer("s1=send"),
                Fail(AfterFailure::GiveUp),
            ],
        ),
        (
            "an answer resets the failure count",
            &[
                Add(1, 7, Audio),
                Offer("s1=send"),
                Fail(AfterFailure::Retry),
                Offer("s1=send"),
                Fail(AfterFailure::Retry),
                Offer("s1=send"),
                Answer(&[], &[1], &[]),
                Add(2, 8, Audio),
                Offer("s1=send s2=send"),
                Fail(AfterFailure::Retry),
            ],
        ),
    ];
    for (name, steps) in cases {
        run(name, steps);
    }
}

#[test]
fn unexpected_and_stale_answers_change_nothing() {
    let mut n = neg(OFFER, 2);
    assert_eq!(n.on_answer(&[]), Err(AnswerError::NotWaiting));
    let mid = n.allocate_mid();
    n.add(mid, track(1, 7, MediaKind::Audio));
    let offer = n.make_offer(Instant::now(), Duration::from_secs(1));
    let short = answer(&offer[..2], &[]);
    assert_eq!(
        n.on_answer(&short),
        Err(AnswerError::Mismatch { got: 2, want: 3 })
    );
    assert!(n.waiting(), "still waiting for the real answer");
    assert_eq!(
        n.on_answer(&answer(&offer, &[])).map(|o| o.resume),
        Ok(vec![ConsumerId(101)])
    );
}

/// A client offer: the join offer's session with these m-sections.
fn client_offer(media: Vec<MediaSection>) -> PeerSdp {
    let mut o = crate::sdp::parse(OFFER).expect("offer");
    o.media = media;
    o
}

/// A new sendonly video m-section under `mid` (a screen share).
fn screen_section(mid: &str) -> MediaSection {
    MediaSection {
        mid: mid.into(),
        kind: Some(MediaKind::Video),
        rejected: false,
        direction: Direction::SendOnly,
        codecs: vec![vp8(96)],
        ssrc: Some(4242),
        rtx_ssrc: None,
        extensions: ExtensionMap::EMPTY.with(Extension::Mid, Some(4)),
        ext_ids: 1 << 4,
        send_rids: vec![],
        sctp: None,
    }
}

/// What the room answers for a published section.
fn published_media(mid: &str) -> LocalMedia {
    LocalMedia {
        direction: Direction::RecvOnly,
        codec: Some(vp8(96)),
        extensions: ExtensionMap::EMPTY.with(Extension::Mid, Some(4)),
        rejected: false,
        ..LocalMedia::closed(mid, Some(MediaKind::Video))
    }
}

/// A session with one received video track (producer 1 of publisher
/// 7) live, and the client's m-sections as it has them.
fn with_live_video() -> (Negotiation, Vec<MediaSection>, Instant, Duration) {
    let t0 = Instant::now();
    let timeout = Duration::from_secs(10);
    let mut n = neg(OFFER, 2);
    let mid = n.allocate_mid();
    n.add(mid, track(1, 7, MediaKind::Video));
    let offer = n.make_offer(t0, timeout);
    let seen = answer(&offer, &[]);
    n.on_answer(&seen).expect("answer");
    (n, seen, t0, timeout)
}

#[test]
fn a_request_to_offer_waits_for_the_outstanding_update_and_holds_ours_back() {
    let t0 = Instant::now();
    let timeout = Duration::from_secs(10);
    let mut n = neg(OFFER, 2);
    let mid = n.allocate_mid();
    n.add(mid, track(1, 7, MediaKind::Audio));
    let offer = n.make_offer(t0, timeout);
    assert!(!n.request_offer(t0, timeout), "an update is out: not yet");
    assert!(!n.granted());
    n.on_answer(&answer(&offer, &[])).expect("answer");
    assert!(
        n.take_pending_grant(t0, timeout),
        "granted after the answer"
    );
    assert!(!n.take_pending_grant(t0, timeout), "once");
    let mid = n.allocate_mid();
    n.add(mid, track(2, 8, MediaKind::Audio));
    assert!(!n.needs_offer(), "no update while the client may offer");
    assert_eq!(n.poll_timeout(), Some(t0 + timeout));
    assert!(!n.grant_expired(t0 + timeout / 2));
    assert!(n.grant_expired(t0 + timeout));
    n.end_grant();
    assert!(
        n.needs_offer(),
        "the held-back update goes out after the grant"
    );
    // Without an update out, a request is granted at once.
    let offer = n.make_offer(t0, timeout);
    n.on_answer(&answer(&offer, &[])).expect("answer");
    assert!(n.request_offer(t0, timeout));
}

#[test]
fn a_client_offer_adds_a_section_and_unseen_tracks_move_after_it() {
    let (mut n, mut seen, t0, timeout) = with_live_video();
    let no_grant = client_offer(seen.clone());
    assert_eq!(n.check_client_offer(&no_grant), Err(OfferError::NotGranted));
    assert!(n.request_offer(t0, timeout));
    // A track added after the grant has not been seen by the client.
    let mid = n.allocate_mid();
    n.add(mid, track(2, 8, MediaKind::Audio));
    seen.push(screen_section("3"));
    let o = client_offer(seen.clone());
    assert_eq!(n.check_client_offer(&o), Ok(vec![3]));
    let out = n.apply_client_offer(&o, vec![(3, published_media("3"), Some(ProducerId(50)))]);
    let mids: Vec<_> = out.answer.iter().map(|m| m.mid.as_str()).collect();
    assert_eq!(mids, ["0", "1", "s1", "3"]);
    assert_eq!(
        out.answer[2].direction,
        Direction::SendOnly,
        "s1 still sent"
    );
    assert_eq!(
        out.answer[3].direction,
        Direction::RecvOnly,
        "we receive the share"
    );
    assert!(out.ended.is_empty() && out.rejected.is_empty());
    assert!(!n.granted(), "the grant is used up");
    // The held-back track goes out after the client's section.
    assert!(n.needs_offer());
    let next = n.make_offer(t0, timeout);
    assert_eq!(shape(&next, 2), "s1=send 3=send s2=send");
    assert_eq!(next[3].direction, Direction::RecvOnly);
    n.on_answer(&answer(&next, &[])).expect("answer");
    // The client stops sharing (port 0): the producer ends, the slot is free.
    assert!(n.request_offer(t0, timeout));
    let mut again = answer(&next, &[]);
    again[3].rejected = true;
    let o = client_offer(again);
    assert_eq!(n.check_client_offer(&o), Ok(vec![]));
    let out = n.apply_client_offer(&o, vec![]);
    assert_eq!(out.ended, vec![ProducerId(50)]);
    assert!(out.answer[3].rejected);
    assert_eq!(
        n.slots()[1],
        ("3".to_string(), SlotState::Free),
        "recyclable by either side"
    );
}

/// Firefox's own offer lists only the extensions it kept for a section
/// it receives on; our answer names no others (Firefox refuses an answer
/// with an extension its offer lacks), and the consumer is narrowed.
#[test]
fn an_answer_to_a_client_offer_names_only_what_the_offer_has() {
    let (mut n, mut seen, t0, timeout) = with_live_video();
    assert_eq!(
        seen[2].extensions.get(Extension::AbsSendTime),
        Some(2),
        "accepted before"
    );
    assert!(n.request_offer(t0, timeout));
    seen[2].extensions.set(Extension::AbsSendTime, None);
    let o = client_offer(seen);
    assert_eq!(n.check_client_offer(&o), Ok(vec![]));
    let out = n.apply_client_offer(&o, vec![]);
    let video = &out.answer[2];
    assert_eq!(video.direction, Direction::SendOnly);
    assert_eq!(video.extensions.get(Extension::AbsSendTime), None);
    assert_eq!(
        (
            video.extensions.get(Extension::TransportWideCc),
            video.extensions.get(Extension::Mid)
        ),
        (Some(3), Some(4))
    );
    assert_eq!(
        out.narrowed,
        vec![(
            ConsumerId(101),
            Answered {
                rtx: false,
                extensions: ExtensionMap::EMPTY
                    .with(Extension::Mid, Some(4))
                    .with(Extension::TransportWideCc, Some(3)),
            }
        )]
    );
}

#[test]
fn a_client_may_recycle_a_closed_section_and_our_track_there_moves() {
    let (mut n, _, t0, timeout) = with_live_video();
    n.remove_publisher(7);
    let offer = n.make_offer(t0, timeout);
    let seen = answer(&offer, &[]);
    n.on_answer(&seen).expect("answer");
    // We put a new video track in the free slot, but the client's
    // offer recycles that m-section for its screen share.
    let mid = n.allocate_mid();
    n.add(mid, track(2, 8, MediaKind::Video));
    assert!(n.request_offer(t0, timeout));
    let mut media = seen.clone();
    media[2] = screen_section("2");
    let o = client_offer(media);
    assert_eq!(n.check_client_offer(&o), Ok(vec![2]));
    let out = n.apply_client_offer(&o, vec![(2, published_media("2"), Some(ProducerId(60)))]);
    assert_eq!(out.answer.len(), 3);
    let next = n.make_offer(t0, timeout);
    assert_eq!(shape(&next, 2), "2=send s2=send");
}

#[test]
fn a_client_offer_that_moves_renames_or_restarts_is_refused() {
    let (mut n, seen, t0, timeout) = with_live_video();
    assert!(n.request_offer(t0, timeout));
    let o = client_offer(seen[..2].to_vec());
    assert_eq!(
        n.check_client_offer(&o),
        Err(OfferError::Missing { got: 2, want: 3 })
    );
    let mut renamed = seen.clone();
    renamed[2].mid = "x".into();
    assert!(matches!(
        n.check_client_offer(&client_offer(renamed)),
        Err(OfferError::Mismatch { index: 2, .. })
    ));
    let mut taken = seen.clone();
    taken.push(screen_section("s1"));
    assert_eq!(
        n.check_client_offer(&client_offer(taken)),
        Err(OfferError::MidTaken("s1".into()))
    );
    let mut restart = client_offer(seen.clone());
    restart.ice_ufrag = "other".into();
    assert_eq!(n.check_client_offer(&restart), Err(OfferError::Restart));
    assert!(n.granted(), "checking changes nothing");
}

#[test]
fn an_unanswered_update_times_out_at_its_deadline() {
    let mut n = neg(OFFER, 2);
    let mid = n.allocate_mid();
    n.add(mid, track(1, 7, MediaKind::Audio));
    let t0 = Instant::now();
    n.make_offer(t0, Duration::from_secs(10));
    assert_eq!(n.poll_timeout(), Some(t0 + Duration::from_secs(10)));
    assert!(!n.handle_timeout(t0 + Duration::from_secs(9)));
    assert!(n.handle_timeout(t0 + Duration::from_secs(10)));
}

#[test]
fn sections_stay_bounded_by_live_tracks_over_many_joins_and_leaves() {
    let mut n = neg(OFFER, 2);
    let t0 = Instant::now();
    let mut max_sections = 0;
    for p in 0..300u64 {
        for (k, kind) in [MediaKind::Audio, MediaKind::Video].into_iter().enumerate() {
            let mid = n.allocate_mid();
            n.add(mid, track(2 * p + k as u64, p, kind));
        }
        let offer = n.make_offer(t0, Duration::from_secs(10));
        n.on_answer(&answer(&offer, &[])).expect("answer");
        n.remove_publisher(p);
        let offer = n.make_offer(t0, Duration::from_secs(10));
        n.on_answer(&answer(&offer, &[])).expect("answer");
        max_sections = max_sections.max(n.section_count());
    }
    assert_eq!(
        max_sections,
        2 + 2,
        "the client's own two plus one per live track"
    );
}

#[test]
fn codecs_keep_the_clients_payload_types_and_never_collide() {
    // A client that offered VP8 as 96 gets VP8 as 96, whatever the publisher used.
    let mut n = neg(OFFER, 2);
    let c = n.codec_for(&vp8(100));
    assert_eq!((c.name.as_str(), c.pt), ("VP8", 96));
    // A receive-only audio client never offered VP8: the publisher's PT is
    // used, unless it already names another codec of the session.
    let mut n = neg(RECVONLY_AUDIO, 1);
    assert_eq!(n.codec_for(&vp8(96)).pt, 96);
    let taken = n.codec_for(&vp8(111));
    assert_ne!(taken.pt, 111, "111 is the client's opus");
    assert_eq!(n.codec_for(&vp8(taken.pt)).pt, taken.pt, "stable");
}
