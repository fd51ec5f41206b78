//! One client's signaling: join with an SDP offer over the server's
//! WebSocket, read the answer, answer every `update` offer, leave at the end.

use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use sfu_core::client::ClientParams;
use sfu_core::proto::rtp::{Extension, ExtensionMap};
use sfu_core::router::MediaKind;
use sfu_sig::sdp::{self, Codec, Direction, LocalMedia, LocalParams};
use tokio::sync::watch;
use tokio_tungstenite::tungstenite::Message;

/// What a client sends, fixed before it joins.
#[derive(Debug, Clone)]
pub struct ClientSpec {
    /// Index of the client in the run.
    pub idx: usize,
    /// Display name (`pub-3`, `sub-17`).
    pub name: String,
    /// Room name.
    pub room: String,
    /// Whether it publishes (publishers also receive the other publishers).
    pub publisher: bool,
    /// Joins as a viewer (`role: "viewer"`; receive-only).
    pub viewer: bool,
    /// Publish audio too.
    pub audio: bool,
    /// Our ICE ufrag and password.
    pub ufrag: String,
    /// Our ICE password.
    pub pwd: String,
    /// Our certificate fingerprint (`AB:CD:…`).
    pub fingerprint: String,
    /// Our UDP socket's address (the host candidate).
    pub local: SocketAddr,
    /// SSRC of our video.
    pub video_ssrc: u32,
    /// SSRC of our audio.
    pub audio_ssrc: u32,
    /// Negotiate data channels (an `m=application` section).
    pub data_channels: bool,
}

/// What the signaling side measured, shared by every client of a run.
#[derive(Debug, Default)]
pub struct SignalStats {
    /// Each answered join: (when the answer came, ms from connect to it).
    pub joins: std::sync::Mutex<Vec<(std::time::Instant, f64)>>,
    /// The largest text message received, bytes.
    pub largest_message: std::sync::atomic::AtomicUsize,
}

/// What signaling tells the media side.
#[derive(Debug)]
pub enum SignalEvent {
    /// The answer arrived: start ICE/DTLS with these parameters.
    Ready {
        /// Client index.
        idx: usize,
        /// Server ICE/DTLS parameters and candidate.
        params: ClientParams,
    },
    /// Joining failed.
    Failed {
        /// Client index.
        idx: usize,
        /// Why.
        reason: String,
    },
}

const OPUS: (u8, &str, u32, Option<u8>) = (111, "opus", 48000, Some(2));
const VP8: (u8, &str, u32, Option<u8>) = (96, "VP8", 90000, None);
const MID_EXT: u8 = 4;

fn codec(c: (u8, &str, u32, Option<u8>)) -> Codec {
    Codec {
        pt: c.0,
        name: c.1.into(),
        clock_rate: c.2,
        channels: c.3,
        fmtp: None,
    }
}

fn local_params(spec: &ClientSpec, version: u64) -> LocalParams {
    LocalParams {
        ice_ufrag: spec.ufrag.clone(),
        ice_pwd: spec.pwd.clone(),
        fingerprint: spec.fingerprint.clone(),
        ip: spec.local.ip(),
        port: spec.local.port(),
        tcp_port: None,
        session_id: spec.idx as u64 + 1,
        session_version: version,
        ice_lite: false,
    }
}

fn own_sections(spec: &ClientSpec) -> Vec<LocalMedia> {
    let section = |mid: &str, kind: MediaKind, c, sends: bool, ssrc: u32| LocalMedia {
        mid: mid.into(),
        kind: Some(kind),
        media_token: kind.as_str().into(),
        direction: if sends {
            Direction::SendOnly
        } else {
            Direction::RecvOnly
        },
        codec: Some(codec(c)),
        extensions: ExtensionMap::EMPTY.with(Extension::Mid, Some(MID_EXT)),
        // The load generator neither sends nor asks for retransmissions.
        rtx: None,
        rtx_ssrc: None,
        send: sends.then(|| {
            (
                ssrc,
                spec.name.clone(),
                spec.name.clone(),
                format!("{}-{}", spec.name, kind.as_str()),
            )
        }),
        rejected: false,
        simulcast_recv: None,
        sctp_port: None,
    };
    let mut own = vec![
        section(
            "0",
            MediaKind::Audio,
            OPUS,
            spec.publisher && spec.audio,
            spec.audio_ssrc,
        ),
        section("1", MediaKind::Video, VP8, spec.publisher, spec.video_ssrc),
    ];
    if spec.data_channels {
        own.push(LocalMedia {
            rejected: false,
            sctp_port: Some(5000),
            ..LocalMedia::closed("2", None)
        });
    }
    own
}

/// The offer a client joins with.
pub fn join_offer(spec: &ClientSpec) -> String {
    sdp::write(&local_params(spec, 1), "actpass", &own_sections(spec))
}

/// Our answer to a server `update` offer: receive every `sendonly` section,
/// keep sending on our own.
pub fn update_answer(spec: &ClientSpec, offer: &str, version: u64) -> Result<String, String> {
    let o = sdp::parse(offer).map_err(|e| e.to_string())?;
    let own = own_sections(spec);
    let media = o
        .media
        .iter()
        .map(|m| {
            let mine = own.iter().find(|s| s.mid == m.mid);
            let direction = match (m.direction, mine) {
                (Direction::SendOnly, _) => Direction::RecvOnly,
                (Direction::RecvOnly, Some(s)) if s.direction == Direction::SendOnly => {
                    Direction::SendOnly
                }
                (Direction::SendRecv, Some(s)) => s.direction,
                _ => Direction::Inactive,
            };
            LocalMedia {
                mid: m.mid.clone(),
                kind: m.kind,
                media_token: m.kind.map_or("application".into(), |k| k.as_str().into()),
                direction,
                codec: m.codecs.first().cloned(),
                extensions: ExtensionMap::EMPTY
                    .with(Extension::Mid, m.extensions.get(Extension::Mid)),
                send: mine
                    .and_then(|s| s.send.clone())
                    .filter(|_| direction == Direction::SendOnly),
                rtx: None,
                rtx_ssrc: None,
                rejected: m.rejected || (m.kind.is_none() && mine.is_none()),
                simulcast_recv: None,
                sctp_port: mine.and_then(|s| s.sctp_port),
            }
        })
        .collect::<Vec<_>>();
    Ok(sdp::write(&local_params(spec, version), "active", &media))
}

/// Reads the server's ICE/DTLS parameters and its host candidate from an answer.
pub fn server_params(spec: &ClientSpec, answer: &str) -> Result<ClientParams, String> {
    let a = sdp::parse(answer).map_err(|e| format!("bad answer: {e}"))?;
    let cand = answer
        .lines()
        .find_map(|l| l.strip_prefix("a=candidate:"))
        .ok_or("answer has no a=candidate")?;
    let f: Vec<&str> = cand.split_whitespace().collect();
    let ip: IpAddr = f
        .get(4)
        .and_then(|s| s.parse().ok())
        .ok_or("bad candidate address")?;
    let port: u16 = f
        .get(5)
        .and_then(|s| s.parse().ok())
        .ok_or("bad candidate port")?;
    Ok(ClientParams {
        local_ufrag: spec.ufrag.clone(),
        local_pwd: spec.pwd.clone(),
        remote_ufrag: a.ice_ufrag,
        remote_pwd: a.ice_pwd,
        remote_fingerprint: a.fingerprint,
        server: SocketAddr::new(ip, port),
    })
}

/// Runs one client's signaling until `stop` turns true.
pub async fn run_client(
    url: String,
    spec: ClientSpec,
    events: crossbeam_channel::Sender<SignalEvent>,
    mut stop: watch::Receiver<bool>,
    stats: std::sync::Arc<SignalStats>,
) {
    let idx = spec.idx;
    let started = std::time::Instant::now();
    let fail = |reason: String| {
        let _ = events.send(SignalEvent::Failed { idx, reason });
    };
    let ws = match tokio::time::timeout(
        Duration::from_secs(10),
        tokio_tungstenite::connect_async(&url),
    )
    .await
    {
        Ok(Ok((ws, _))) => ws,
        Ok(Err(e)) => return fail(format!("websocket connect failed: {e}")),
        Err(_) => return fail("websocket connect timed out after 10 s".into()),
    };
    let (mut tx, mut rx) = ws.split();
    let mut join = serde_json::json!({"type": "join", "room": spec.room, "name": spec.name, "sdp": join_offer(&spec)});
    if spec.viewer {
        join["role"] = "viewer".into();
    }
    if tx
        .send(Message::Text(join.to_string().into()))
        .await
        .is_err()
    {
        return fail("websocket closed before join".into());
    }
    let mut answered = false;
    let mut version = 1;
    let answer_deadline = tokio::time::Instant::now() + Duration::from_secs(15);
    loop {
        let next = tokio::select! {
            m = rx.next() => m,
            _ = stop.changed() => break,
            _ = tokio::time::sleep_until(answer_deadline), if !answered => {
                return fail("timed out after 15 s waiting for the join answer".into());
            }
        };
        let text = match next {
            Some(Ok(Message::Text(t))) => t,
            Some(Ok(_)) => continue,
            Some(Err(e)) => return fail(format!("websocket error: {e}")),
            None => {
                if !answered {
                    fail("websocket closed before the answer".into());
                }
                return;
            }
        };
        stats
            .largest_message
            .fetch_max(text.len(), std::sync::atomic::Ordering::Relaxed);
        let Ok(v) = serde_json::from_str::<serde_json::Value>(text.as_str()) else {
            continue;
        };
        match v["type"].as_str() {
            Some("answer") if !answered => {
                answered = true;
                let now = std::time::Instant::now();
                if let Ok(mut j) = stats.joins.lock() {
                    j.push((now, now.duration_since(started).as_secs_f64() * 1e3));
                }
                match server_params(&spec, v["sdp"].as_str().unwrap_or("")) {
                    Ok(params) => {
                        let _ = events.send(SignalEvent::Ready { idx, params });
                    }
                    Err(e) => return fail(e),
                }
            }
            Some("update") => {
                version += 1;
                match update_answer(&spec, v["sdp"].as_str().unwrap_or(""), version) {
                    Ok(sdp) => {
                        let msg = serde_json::json!({"type": "answer", "sdp": sdp});
                        if tx
                            .send(Message::Text(msg.to_string().into()))
                            .await
                            .is_err()
                        {
                            return;
                        }
                    }
                    Err(e) => eprintln!("{}: cannot answer update: {e}", spec.name),
                }
            }
            Some("error") => {
                let reason = format!("server error {}: {}", v["code"], v["message"]);
                if !answered {
                    return fail(reason);
                }
                eprintln!("{}: {reason}", spec.name);
            }
            _ => {}
        }
    }
    let _ = tx.send(Message::Text(r#"{"type":"leave"}"#.into())).await;
    let _ = tx.close().await;
}
