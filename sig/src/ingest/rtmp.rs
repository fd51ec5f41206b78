//! The RTMP listener (`--rtmp-listen`): one task per encoder connection.
//!
//! The URL is `rtmp://HOST/live/ROOM`, with the stream key a join token
//! when the server has an auth secret: ffmpeg's `rtmp://HOST/live/ROOM/KEY`
//! and OBS's server `rtmp://HOST/live/ROOM` with stream key `KEY` both
//! work (the app and stream name are read as one path). A publish is
//! accepted once the key is checked; the stream joins its room when its
//! sequence headers and first frame have arrived (the codecs must be known
//! to offer it), as a participant named by the token's identity or
//! `rtmp-<n>`. A stream browsers cannot play is refused with an RTMP
//! `onStatus` error naming the encoder setting to change (ffmpeg prints it
//! as "Server error: …"), then closed.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use sfu_core::Ssrc;
use sfu_core::worker::Command;
use shiguredo_rtmp::{RtmpConnectionEvent, RtmpServerConnection};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;

use super::offer::offer;
use super::session::{Ingest, IngestError};
use crate::conn::{ConnHandle, DirectLink};
use crate::hub::HubMsg;
use crate::protocol::{Via, validate_name};

/// A connection must have asked to publish within this long.
const PUBLISH_TIMEOUT: Duration = Duration::from_secs(10);
/// A publishing connection silent this long is closed.
const IDLE_TIMEOUT: Duration = Duration::from_secs(20);
/// Longest the room may take to take the stream in.
/// Most encoder connections served at once.
const MAX_CONNECTIONS: u64 = 256;

/// Why a connection ended early, as `/metrics` labels them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// The RTMP handshake or chunk stream was broken.
    Protocol,
    /// No publish within the timeout, or silent while publishing.
    Timeout,
    /// Not `live/ROOM`, or a bad room name.
    Path,
    /// Missing or wrong stream key (join token).
    Key,
    /// H.264 with B-frames.
    BFrames,
    /// Video that is not H.264 (HEVC, VP6, …).
    VideoCodec,
    /// Audio that is not AAC-LC.
    AudioCodec,
    /// FLV payloads that do not parse.
    Malformed,
    /// The room did not take the stream (full, busy, …).
    Room,
    /// Too many connections.
    Busy,
}

impl Refusal {
    /// Every reason, in label order.
    pub const ALL: [Refusal; 10] = [
        Self::Protocol,
        Self::Timeout,
        Self::Path,
        Self::Key,
        Self::BFrames,
        Self::VideoCodec,
        Self::AudioCodec,
        Self::Malformed,
        Self::Room,
        Self::Busy,
    ];

    /// The `reason` label.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Protocol => "protocol",
            Self::Timeout => "timeout",
            Self::Path => "path",
            Self::Key => "key",
            Self::BFrames => "b_frames",
            Self::VideoCodec => "video_codec",
            Self::AudioCodec => "audio_codec",
            Self::Malformed => "malformed",
            Self::Room => "room",
            Self::Busy => "busy",
        }
    }
}

/// RTMP ingest counters for `/metrics` (`sfu_ingest_*`).
#[derive(Debug, Default)]
pub struct IngestMetrics {
    /// Connections accepted.
    pub connections: AtomicU64,
    /// Connections open now.
    pub open: AtomicU64,
    /// Streams in a room now.
    pub live: AtomicU64,
    /// Connections ended early, by [`Refusal`] (in [`Refusal::ALL`] order).
    pub refused: [AtomicU64; Refusal::ALL.len()],
    /// H.264 access units forwarded.
    pub video_frames: AtomicU64,
    /// AAC frames transcoded to Opus.
    pub audio_frames: AtomicU64,
    /// RTP packets handed to the data plane.
    pub packets: AtomicU64,
    /// RTP payload bytes handed to the data plane.
    pub bytes: AtomicU64,
    /// RTP packets dropped because the worker's queue was full.
    pub dropped: AtomicU64,
}

impl IngestMetrics {
    fn refuse(&self, r: Refusal) {
        if let Some(i) = Refusal::ALL.iter().position(|x| *x == r) {
            self.refused[i].fetch_add(1, Ordering::Relaxed);
        }
    }
}

/// What the listener needs of the server.
#[derive(Debug, Clone)]
pub struct RtmpContext {
    /// The hub's inbox.
    pub hub: mpsc::Sender<HubMsg>,
    /// Source of connection ids (shared with the WebSocket and WHIP).
    pub next_conn: Arc<AtomicU64>,
    /// The auth secret: stream keys are join tokens when set.
    pub auth_secret: Option<String>,
    /// Counters.
    pub metrics: Arc<IngestMetrics>,
}

/// Serves RTMP on `listener` until the task is dropped.
pub async fn serve(listener: TcpListener, ctx: RtmpContext) {
    loop {
        let (stream, peer) = match listener.accept().await {
            Ok(x) => x,
            Err(e) => {
                tracing::warn!(error = %e, "RTMP accept failed");
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        let m = &ctx.metrics;
        if m.open.load(Ordering::Relaxed) >= MAX_CONNECTIONS {
            m.refuse(Refusal::Busy);
            tracing::warn!(%peer, "RTMP connection refused: {MAX_CONNECTIONS} already open");
            continue;
        }
        m.connections.fetch_add(1, Ordering::Relaxed);
        m.open.fetch_add(1, Ordering::Relaxed);
        let _ = stream.set_nodelay(true);
        let ctx = ctx.clone();
        tokio::spawn(async move {
            connection(stream, peer, ctx.clone()).await;
            ctx.metrics.open.fetch_sub(1, Ordering::Relaxed);
        });
    }
}

/// Where a stream is in its life.
enum Stage {
    /// Handshake and `connect`, until `publish`.
    Waiting,
    /// Accepted for `room`; waiting for its codecs.
    Accepted { room: String, key: Option<String> },
    /// In the room.
    Live { conn: ConnHandle, link: DirectLink },
}

/// `app` and `stream_name` read as one path: `live/ROOM[/KEY]`, the key
/// possibly after `?` (a query some encoders add is dropped).
fn room_and_key(app: &str, stream_name: &str) -> Option<(String, Option<String>)> {
    let joined = format!(
        "{}/{}",
        app.trim_matches('/'),
        stream_name.trim_matches('/')
    );
    let path = joined.split('?').next().unwrap_or("");
    let mut parts = path.split('/').filter(|p| !p.is_empty());
    if parts.next() != Some("live") {
        return None;
    }
    let room = parts.next()?.to_string();
    let key = parts.next().map(str::to_string);
    if parts.next().is_some() {
        return None;
    }
    Some((room, key))
}

async fn connection(mut stream: TcpStream, peer: SocketAddr, ctx: RtmpContext) {
    let started = Instant::now();
    let mut rtmp = RtmpServerConnection::new();
    let mut ingest = Ingest::new(
        Ssrc(rand::random::<u32>() | 1),
        Ssrc(rand::random::<u32>() | 1),
    );
    let mut stage = Stage::Waiting;
    let mut buf = vec![0u8; 64 << 10];
    let mut reports = tokio::time::interval(Duration::from_millis(250));
    reports.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut last_heard = Instant::now();
    let mut counted = super::session::IngestStats::default();
    let end: Result<(), (Refusal, String)> = 'conn: loop {
        let closed = match &stage {
            Stage::Live { conn, .. } => Some(conn.clone()),
            _ => None,
        };
        let n = tokio::select! {
            r = stream.read(&mut buf) => match r {
                Ok(0) | Err(_) => break 'conn Ok(()),
                Ok(n) => n,
            },
            _ = reports.tick() => {
                let limit = if matches!(stage, Stage::Waiting) { PUBLISH_TIMEOUT } else { IDLE_TIMEOUT };
                let since = if matches!(stage, Stage::Waiting) { started } else { last_heard };
                if since.elapsed() >= limit {
                    break 'conn Err((Refusal::Timeout, format!("nothing received for {} s", limit.as_secs())));
                }
                if let Stage::Live { link, .. } = &stage {
                    let srs = ingest.poll_reports(Instant::now());
                    send_direct(link, srs, &ctx.metrics);
                }
                continue;
            }
            () = async { match &closed { Some(c) => c.closed().await, None => std::future::pending().await } } => {
                break 'conn Err((Refusal::Room, "the room ended the stream".into()));
            }
        };
        last_heard = Instant::now();
        if let Err(e) = rtmp.feed_recv_buf(&buf[..n]) {
            // The crate refuses codec ids it does not know: HEVC (12) or
            // Enhanced RTMP's FourCC headers (frame type with bit 3 set).
            let r = &e.reason;
            let hevc = r.contains("video codec: 12")
                || ["9", "10", "11", "12", "13", "14", "15"]
                    .iter()
                    .any(|t| r.ends_with(&format!("video frame type: {t}")));
            if hevc {
                break 'conn Err((
                    Refusal::VideoCodec,
                    "the video is HEVC (or Enhanced RTMP), which is not taken: send H.264 \
                     (ffmpeg: -c:v libx264; OBS: x264 or NVENC H.264)"
                        .into(),
                ));
            }
            break 'conn Err((Refusal::Protocol, format!("RTMP: {}", e.reason)));
        }
        while let Some(ev) = rtmp.next_event() {
            let now = Instant::now();
            let packets = match ev {
                RtmpConnectionEvent::PublishRequested {
                    app, stream_name, ..
                } => {
                    let Some((room, key)) = room_and_key(&app, &stream_name) else {
                        let why =
                            format!("publish to rtmp://HOST/live/ROOM, not {app}/{stream_name}");
                        break 'conn Err((Refusal::Path, why));
                    };
                    if let Err(e) = validate_name("room", &room) {
                        let why = format!("bad room name: {e}");
                        break 'conn Err((Refusal::Path, why));
                    }
                    if let Some(secret) = &ctx.auth_secret
                        && let Err(e) = crate::auth::verify(secret, key.as_deref(), &room)
                    {
                        let why =
                            format!("the stream key must be a join token for room {room:?}: {e}");
                        break 'conn Err((Refusal::Key, why));
                    }
                    if let Err(e) = rtmp.accept() {
                        break 'conn Err((Refusal::Protocol, format!("RTMP: {}", e.reason)));
                    }
                    tracing::info!(%peer, room = %room, "RTMP publish accepted");
                    stage = Stage::Accepted { room, key };
                    continue;
                }
                RtmpConnectionEvent::VideoReceived(f) => ingest.on_video(now, &f),
                RtmpConnectionEvent::AudioReceived(f) => ingest.on_audio(now, &f),
                RtmpConnectionEvent::DisconnectedByPeer { .. } => break 'conn Ok(()),
                _ => continue,
            };
            let packets = match packets {
                Ok(p) => p,
                Err(e) => {
                    let r = match &e {
                        IngestError::BFrames(_) => Refusal::BFrames,
                        IngestError::VideoCodec(_) => Refusal::VideoCodec,
                        IngestError::Audio(_) => Refusal::AudioCodec,
                        IngestError::Malformed(_) => Refusal::Malformed,
                    };
                    break 'conn Err((r, e.to_string()));
                }
            };
            // Joins at the first coded frame: the sequence headers before
            // it said what the tracks are.
            if let Stage::Accepted { room, key } = &stage
                && !packets.is_empty()
            {
                let (tracks, ssrcs) = (ingest.tracks(), ingest.ssrcs());
                match join(&ctx, room, key.clone(), &tracks, ssrcs).await {
                    Ok((conn, link)) => {
                        ctx.metrics.live.fetch_add(1, Ordering::Relaxed);
                        tracing::info!(%peer, room = %room, tracks = ?tracks, "RTMP stream in the room");
                        stage = Stage::Live { conn, link };
                    }
                    Err(why) => break 'conn Err((Refusal::Room, why)),
                }
            }
            if let Stage::Live { link, .. } = &stage {
                send_direct(link, packets, &ctx.metrics);
            }
        }
        let s = ingest.stats();
        let m = &ctx.metrics;
        m.video_frames
            .fetch_add(s.video_frames - counted.video_frames, Ordering::Relaxed);
        m.audio_frames
            .fetch_add(s.audio_frames - counted.audio_frames, Ordering::Relaxed);
        m.packets
            .fetch_add(s.packets - counted.packets, Ordering::Relaxed);
        m.bytes
            .fetch_add(s.bytes - counted.bytes, Ordering::Relaxed);
        counted = s;
        flush(&mut stream, &mut rtmp).await;
    };
    if let Err((reason, why)) = &end {
        ctx.metrics.refuse(*reason);
        // Broken connections are counted, and logged at debug level only
        // (anyone can open them); a refused stream is the operator's news.
        if matches!(reason, Refusal::Protocol | Refusal::Timeout) {
            tracing::debug!(%peer, reason = reason.as_str(), "RTMP connection ended: {why}");
        } else {
            tracing::warn!(%peer, reason = reason.as_str(), "RTMP stream refused: {why}");
        }
        if !matches!(reason, Refusal::Protocol | Refusal::Timeout) {
            let _ = stream.write_all(&on_status_error(why)).await;
            // An encoder reads what the server sends between its own
            // writes (ffmpeg: after each packet): keep reading, and
            // dropping, until it hangs up or 3 s pass, so that it reads
            // the error instead of a reset.
            let _ = tokio::time::timeout(Duration::from_secs(3), async {
                while matches!(stream.read(&mut buf).await, Ok(n) if n > 0) {}
            })
            .await;
        }
    } else {
        tracing::info!(%peer, "RTMP stream ended by the encoder");
    }
    if let Stage::Live { conn, .. } = &stage {
        ctx.metrics.live.fetch_sub(1, Ordering::Relaxed);
        let _ = ctx.hub.send(HubMsg::Disconnect { conn: conn.id() }).await;
    }
    let _ = tokio::time::timeout(Duration::from_secs(2), stream.shutdown()).await;
}

/// Writes what the RTMP connection has to send.
async fn flush(stream: &mut TcpStream, rtmp: &mut RtmpServerConnection) {
    while !rtmp.send_buf().is_empty() {
        let n = rtmp.send_buf().len();
        let wrote =
            tokio::time::timeout(Duration::from_secs(5), stream.write_all(rtmp.send_buf())).await;
        if !matches!(wrote, Ok(Ok(()))) {
            return;
        }
        rtmp.advance_send_buf(n);
    }
}

/// Hands `packets` to the stream's direct transport; a full worker queue
/// drops them (counted).
fn send_direct(link: &DirectLink, packets: Vec<Vec<u8>>, m: &IngestMetrics) {
    if packets.is_empty() {
        return;
    }
    let n = packets.len() as u64;
    let cmd = Command::SendDirect {
        router: link.router,
        transport: link.transport,
        packets,
    };
    if link.worker.try_send(cmd).is_err() {
        m.dropped.fetch_add(n, Ordering::Relaxed);
    }
}

/// Joins `room` with the stream's tracks; returns the session's connection
/// and where its packets go.
///
/// Errors: the room's refusal (code and reason), or a timeout.
async fn join(
    ctx: &RtmpContext,
    room: &str,
    key: Option<String>,
    tracks: &super::session::Tracks,
    (video, audio): (Ssrc, Ssrc),
) -> Result<(ConnHandle, DirectLink), String> {
    let sdp = offer(tracks, video.0, audio.0);
    let (conn, link, _id, mut rx) = crate::session::join_direct(
        &ctx.hub,
        &ctx.next_conn,
        room,
        sdp,
        key,
        (String::new(), Via::Rtmp),
    )
    .await?;
    // What the room sends the member later (roster changes, keyframe
    // requests an encoder cannot act on) has no one to go to; reading it
    // keeps the queue from filling.
    tokio::spawn(async move { while rx.recv().await.is_some() {} });
    Ok((conn, link))
}

/// An RTMP `onStatus` command (AMF0, RTMP spec §7.2.2) with level `error`
/// and `description`, on chunk stream 5 of message stream 1, split into
/// chunks of at most 4,096 bytes (the chunk size we announced).
fn on_status_error(description: &str) -> Vec<u8> {
    fn string(out: &mut Vec<u8>, s: &str) {
        let s = &s.as_bytes()[..s.len().min(u16::MAX as usize)];
        out.extend_from_slice(&(s.len() as u16).to_be_bytes());
        out.extend_from_slice(s);
    }
    let mut body = vec![0x02];
    string(&mut body, "onStatus");
    body.push(0x00);
    body.extend_from_slice(&0f64.to_be_bytes());
    body.push(0x05);
    body.push(0x03);
    for (k, v) in [
        ("level", "error"),
        ("code", "NetStream.Publish.Rejected"),
        ("description", description),
    ] {
        string(&mut body, k);
        body.push(0x02);
        string(&mut body, v);
    }
    body.extend_from_slice(&[0x00, 0x00, 0x09]);
    let len = (body.len() as u32).min(0x00ff_ffff);
    let mut out = vec![0x05, 0, 0, 0];
    out.extend_from_slice(&len.to_be_bytes()[1..]);
    out.push(0x14);
    out.extend_from_slice(&1u32.to_le_bytes());
    for (i, chunk) in body.chunks(4096).enumerate() {
        if i > 0 {
            out.push(0xc5);
        }
        out.extend_from_slice(chunk);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_room_and_key_come_from_app_and_stream_name_together() {
        let k = |a: &str, s: &str| room_and_key(a, s);
        assert_eq!(k("live", "stage"), Some(("stage".into(), None)));
        assert_eq!(
            k("live", "stage/tok"),
            Some(("stage".into(), Some("tok".into())))
        );
        assert_eq!(
            k("live/stage", "tok"),
            Some(("stage".into(), Some("tok".into())))
        );
        assert_eq!(k("live", "stage?x=1"), Some(("stage".into(), None)));
        assert_eq!(k("app", "stage"), None);
        assert_eq!(k("live", ""), None);
        assert_eq!(k("live", "a/b/c"), None);
    }

    #[test]
    fn the_error_status_is_one_amf0_command() {
        let m = on_status_error("turn B-frames off");
        assert_eq!(m[0], 0x05);
        assert_eq!(m[7], 0x14, "command message, AMF0");
        let len = u32::from_be_bytes([0, m[4], m[5], m[6]]) as usize;
        assert_eq!(m.len(), 12 + len);
        assert!(m.windows(8).any(|w| w == b"onStatus"));
        let long = on_status_error(&"x".repeat(5000));
        assert_eq!(long[12 + 4096], 0xc5, "a continuation chunk header");
    }
}
