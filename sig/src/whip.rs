//! WHIP (RFC 9725) and WHEP (draft-ietf-wish-whep) on the HTTP server.
//!
//! `POST /whip/{room}` publishes, `POST /whep/{room}` (`?participant=p7`
//! for one publisher) watches; both take an SDP offer (`application/sdp`,
//! at most 64 KiB) and answer `201 Created` with the SDP answer, the
//! session's `Location` and an `ETag`. `DELETE` on the Location ends the
//! session; `PATCH` is answered `405` (we are ICE-lite: the server learns
//! the client's addresses from its connectivity checks and never restarts
//! ICE, RFC 9725 §4.3.1), `OPTIONS` with CORS headers and `Accept-Post`.
//!
//! A session is a member of the room like a WebSocket client's, through the
//! same hub and room (`Via::Whip`, `Via::Whep`), whose connection queue is
//! read here instead of by a socket: its first reply is the answer or the
//! error; what follows (roster changes) is dropped. Errors are the RFC's
//! status codes with a plain-text reason (`text/plain`).

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use axum::body::Bytes;
use axum::extract::{ConnectInfo, Path, Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use tokio::sync::mpsc;

use crate::conn::{ConnHandle, Outgoing};
use crate::hub::HubMsg;
use crate::protocol::{MAX_MESSAGE_BYTES, Via};
use crate::ratelimit::ConnLimiter;
use crate::session::Reply;
use crate::ws::AppState;

/// Longest a POST waits for its room's answer.
const ANSWER_TIMEOUT: Duration = Duration::from_secs(15);

/// Which endpoint a session came through.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Endpoint {
    /// `/whip/{room}`: a publisher.
    Whip,
    /// `/whep/{room}`: a viewer.
    Whep,
}

impl Endpoint {
    fn path(self) -> &'static str {
        match self {
            Self::Whip => "whip",
            Self::Whep => "whep",
        }
    }
}

/// One live WHIP or WHEP session.
#[derive(Debug)]
struct Session {
    endpoint: Endpoint,
    room: String,
    conn: ConnHandle,
}

/// The live sessions by id (the last segment of their Location), and the
/// counts `/metrics` reports.
#[derive(Debug, Default)]
pub struct Sessions {
    live: Mutex<HashMap<String, Session>>,
    /// Sessions created (201), by endpoint: WHIP, WHEP.
    pub created: [AtomicU64; 2],
    /// POSTs refused with an error status, by endpoint: WHIP, WHEP.
    pub refused: [AtomicU64; 2],
}

impl Sessions {
    /// Live sessions of `endpoint`.
    pub fn live(&self, endpoint: Endpoint) -> usize {
        self.lock()
            .values()
            .filter(|s| s.endpoint == endpoint)
            .count()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Session>> {
        self.live.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn remove(&self, id: &str) -> Option<Session> {
        self.lock().remove(id)
    }
}

fn slot(endpoint: Endpoint) -> usize {
    match endpoint {
        Endpoint::Whip => 0,
        Endpoint::Whep => 1,
    }
}

/// The CORS headers every answer carries, so that a browser-based client
/// on another origin can POST, read `Location` and `ETag`, and DELETE.
fn cors(headers: &mut HeaderMap) {
    let pairs = [
        (header::ACCESS_CONTROL_ALLOW_ORIGIN, "*"),
        (
            header::ACCESS_CONTROL_ALLOW_METHODS,
            "POST, DELETE, PATCH, OPTIONS",
        ),
        (
            header::ACCESS_CONTROL_ALLOW_HEADERS,
            "Authorization, Content-Type, If-Match",
        ),
        (header::ACCESS_CONTROL_EXPOSE_HEADERS, "Location, ETag"),
    ];
    for (k, v) in pairs {
        headers.insert(k, HeaderValue::from_static(v));
    }
}

/// A plain-text error response with CORS headers.
fn fail(status: StatusCode, reason: impl Into<String>) -> Response {
    let mut r = (status, format!("{}\n", reason.into())).into_response();
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    cors(r.headers_mut());
    if status == StatusCode::UNAUTHORIZED {
        r.headers_mut()
            .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
    }
    if status == StatusCode::SERVICE_UNAVAILABLE {
        r.headers_mut()
            .insert(header::RETRY_AFTER, HeaderValue::from_static("5"));
    }
    r
}

/// The HTTP status for one of our error codes (docs/signaling.md).
fn status_of(code: &str) -> StatusCode {
    match code {
        "token-required" | "token-invalid" | "token-expired" => StatusCode::UNAUTHORIZED,
        "token-wrong-room" => StatusCode::FORBIDDEN,
        "not-found" | "nothing-to-watch" => StatusCode::NOT_FOUND,
        "room-full" | "room-busy" | "server-full" | "rate-limited" => {
            StatusCode::SERVICE_UNAVAILABLE
        }
        "server-error" | "internal" => StatusCode::INTERNAL_SERVER_ERROR,
        "nothing-to-publish" | "viewer-cannot-publish" | "sdp-no-usable-codec" => {
            StatusCode::UNPROCESSABLE_ENTITY
        }
        _ => StatusCode::BAD_REQUEST,
    }
}

/// `?participant=p7` (or `7`) of a WHEP POST.
#[derive(Debug, serde::Deserialize)]
pub struct WhepQuery {
    participant: Option<String>,
}

/// `POST /whip/{room}`.
pub async fn post_whip(
    State(app): State<AppState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    Path(room): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    post(app, peer, Endpoint::Whip, room, None, &headers, body).await
}

/// `POST /whep/{room}`.
pub async fn post_whep(
    State(app): State<AppState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    Path(room): Path<String>,
    Query(q): Query<WhepQuery>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let participant = match q.participant.as_deref() {
        None => None,
        Some(p) => match p.strip_prefix('p').unwrap_or(p).parse::<u64>() {
            Ok(id) => Some(id),
            Err(_) => {
                return fail(
                    StatusCode::BAD_REQUEST,
                    format!("participant {p:?} is not a participant id such as p7"),
                );
            }
        },
    };
    post(app, peer, Endpoint::Whep, room, participant, &headers, body).await
}

async fn post(
    app: AppState,
    peer: SocketAddr,
    endpoint: Endpoint,
    room: String,
    participant: Option<u64>,
    headers: &HeaderMap,
    body: Bytes,
) -> Response {
    let refused = |status, reason: String| {
        app.sessions.refused[slot(endpoint)].fetch_add(1, Ordering::Relaxed);
        // Counted in /metrics; at debug level, so bad requests cannot
        // flood the log.
        tracing::debug!(endpoint = endpoint.path(), room = %room, %peer, status = %status, reason = %reason, "session refused");
        fail(status, reason)
    };
    let content_type = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    if !content_type
        .split(';')
        .next()
        .is_some_and(|t| t.trim().eq_ignore_ascii_case("application/sdp"))
    {
        return refused(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            format!(
                "the offer must be sent as Content-Type: application/sdp, not {content_type:?}"
            ),
        );
    }
    let now = Instant::now();
    let mut limits = ConnLimiter::new(app.limiter.limits(), now);
    if let Err(which) = app
        .limiter
        .check_message(&mut limits, peer.ip(), now)
        .and_then(|()| app.limiter.check_join(&mut limits, peer.ip(), now))
    {
        return refused(
            StatusCode::TOO_MANY_REQUESTS,
            which.describe(app.limiter.limits()),
        );
    }
    let sdp = match check_offer(endpoint, &body) {
        Ok(sdp) => sdp,
        Err((status, why)) => return refused(status, why),
    };
    let token = match headers.get(header::AUTHORIZATION).map(|v| v.to_str()) {
        None => None,
        Some(Ok(v)) => match v.strip_prefix("Bearer ") {
            Some(t) => Some(t.trim().to_string()),
            None => {
                return refused(
                    StatusCode::UNAUTHORIZED,
                    "Authorization must be \"Bearer <join token>\"".into(),
                );
            }
        },
        Some(Err(_)) => {
            return refused(
                StatusCode::UNAUTHORIZED,
                "the Authorization header is not text".into(),
            );
        }
    };
    let via = match endpoint {
        Endpoint::Whip => Via::Whip,
        Endpoint::Whep => Via::Whep { participant },
    };
    let Ok((conn, mut rx)) = crate::session::open(
        &app.hub,
        &app.next_conn,
        &room,
        sdp,
        token,
        (String::new(), via),
    )
    .await
    else {
        return refused(
            StatusCode::SERVICE_UNAVAILABLE,
            "the server is shutting down".into(),
        );
    };
    let conn_id = conn.id();
    let first = tokio::time::timeout(ANSWER_TIMEOUT, crate::session::first_reply(&mut rx)).await;
    let answer = match first {
        Ok(Some(Reply::Answer { sdp, id, .. })) => (sdp, id),
        other => {
            let _ = app.hub.send(HubMsg::Disconnect { conn: conn_id }).await;
            return match other {
                Ok(Some(Reply::Redirect { url })) => {
                    let mut r = StatusCode::TEMPORARY_REDIRECT.into_response();
                    let to = format!("{}/{}/{room}", url.trim_end_matches('/'), endpoint.path());
                    if let Ok(v) = HeaderValue::from_str(&to) {
                        r.headers_mut().insert(header::LOCATION, v);
                    }
                    cors(r.headers_mut());
                    r
                }
                Ok(Some(Reply::Error { code, message })) => {
                    refused(status_of(&code), format!("{code}: {message}"))
                }
                Ok(_) => refused(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "the room closed before answering".into(),
                ),
                Err(_) => refused(
                    StatusCode::SERVICE_UNAVAILABLE,
                    format!(
                        "the room did not answer within {} s",
                        ANSWER_TIMEOUT.as_secs()
                    ),
                ),
            };
        }
    };
    let (sdp, pid) = answer;
    let id: String = rand::Rng::sample_iter(rand::rng(), &rand::distr::Alphanumeric)
        .take(22)
        .map(char::from)
        .collect();
    app.sessions.lock().insert(
        id.clone(),
        Session {
            endpoint,
            room: room.clone(),
            conn: conn.clone(),
        },
    );
    app.sessions.created[slot(endpoint)].fetch_add(1, Ordering::Relaxed);
    tracing::info!(endpoint = endpoint.path(), room = %room, participant = %pid, session = %id, %peer, "session started");
    tokio::spawn(drain(app.clone(), id.clone(), conn, rx));
    let location = format!("/{}/{room}/{id}", endpoint.path());
    let mut r = (StatusCode::CREATED, sdp).into_response();
    let h = r.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/sdp"),
    );
    for (k, v) in [
        (header::LOCATION, location),
        (header::ETAG, format!("\"{id}\"")),
    ] {
        if let Ok(v) = HeaderValue::from_str(&v) {
            h.insert(k, v);
        }
    }
    cors(h);
    r
}

/// Checks a POST's body before it goes to a room: at most 64 KiB of UTF-8,
/// an SDP offer that parses and has what every offer needs (ICE
/// credentials, a fingerprint, mids), and that sends (WHIP) or only
/// receives (WHEP). Returns the text.
///
/// Errors: the status and plain-text reason to answer with: 413, 400, or
/// 422 (`nothing-to-publish`, `viewer-cannot-publish`).
pub fn check_offer(endpoint: Endpoint, body: &[u8]) -> Result<String, (StatusCode, String)> {
    if body.len() > MAX_MESSAGE_BYTES {
        return Err((
            StatusCode::PAYLOAD_TOO_LARGE,
            format!(
                "an offer of {} bytes exceeds the limit of {MAX_MESSAGE_BYTES}",
                body.len()
            ),
        ));
    }
    let Ok(text) = std::str::from_utf8(body) else {
        return Err((StatusCode::BAD_REQUEST, "the offer is not UTF-8".into()));
    };
    let bad = |e: crate::sdp::SdpError| (status_of(e.code()), format!("{}: {e}", e.code()));
    let offer = crate::sdp::parse(text).map_err(bad)?;
    crate::sdp::validate_offer(&offer).map_err(bad)?;
    let sends = offer.media.iter().filter(|m| m.publishes()).count();
    match endpoint {
        Endpoint::Whip if sends == 0 => Err((
            StatusCode::UNPROCESSABLE_ENTITY,
            "nothing-to-publish: the offer sends no audio or video track with a codec we forward \
             (Opus, VP8, VP9, AV1, H264 packetization-mode=1)"
                .into(),
        )),
        Endpoint::Whep if sends > 0 => Err((
            StatusCode::UNPROCESSABLE_ENTITY,
            format!(
                "viewer-cannot-publish: a WHEP offer receives only, but this one sends {sends} track(s)"
            ),
        )),
        _ => Ok(text.to_string()),
    }
}

/// Reads what the room sends a session after its answer (roster changes,
/// which a WHIP or WHEP client has no channel for) until the connection
/// closes: then the session is gone.
async fn drain(app: AppState, id: String, conn: ConnHandle, mut rx: mpsc::Receiver<Outgoing>) {
    loop {
        tokio::select! {
            out = rx.recv() => {
                if matches!(out, None | Some(Outgoing::Close)) {
                    break;
                }
            }
            () = conn.closed() => break,
        }
    }
    if let Some(s) = app.sessions.remove(&id) {
        let _ = app.hub.send(HubMsg::Disconnect { conn: conn.id() }).await;
        tracing::info!(endpoint = s.endpoint.path(), room = %s.room, session = %id, "session ended by the server");
    }
}

/// `DELETE /whip/{room}/{id}` (and `/whep/…`): ends the session.
pub async fn delete(
    State(app): State<AppState>,
    Path((room, id)): Path<(String, String)>,
) -> Response {
    let found = {
        let mut live = app.sessions.lock();
        match live.get(&id) {
            Some(s) if s.room == room => live.remove(&id),
            _ => None,
        }
    };
    let Some(s) = found else {
        return fail(
            StatusCode::NOT_FOUND,
            format!("no session {id:?} in room {room:?}"),
        );
    };
    let _ = app.hub.send(HubMsg::Disconnect { conn: s.conn.id() }).await;
    s.conn.push(Outgoing::Close);
    tracing::info!(endpoint = s.endpoint.path(), room = %room, session = %id, "session deleted");
    let mut r = StatusCode::OK.into_response();
    cors(r.headers_mut());
    r
}

/// `PATCH` on a session: `405`, as RFC 9725 §4.3.1 asks of a server that
/// takes neither trickled candidates (an ICE-lite server learns the
/// client's from its checks) nor ICE restarts; `404` for an unknown one.
pub async fn patch(
    State(app): State<AppState>,
    Path((room, id)): Path<(String, String)>,
) -> Response {
    let known = app.sessions.lock().get(&id).is_some_and(|s| s.room == room);
    if !known {
        return fail(
            StatusCode::NOT_FOUND,
            format!("no session {id:?} in room {room:?}"),
        );
    }
    let mut r = fail(
        StatusCode::METHOD_NOT_ALLOWED,
        "this server is ICE-lite: trickle ICE and ICE restarts are not taken; \
         it learns your addresses from your connectivity checks",
    );
    r.headers_mut()
        .insert(header::ALLOW, HeaderValue::from_static("DELETE, OPTIONS"));
    r
}

/// `OPTIONS` on an endpoint or a session: CORS preflight, and what a POST
/// takes (`Accept-Post: application/sdp`).
pub async fn options() -> Response {
    let mut r = StatusCode::NO_CONTENT.into_response();
    let h = r.headers_mut();
    cors(h);
    h.insert("accept-post", HeaderValue::from_static("application/sdp"));
    h.insert(
        header::ACCESS_CONTROL_MAX_AGE,
        HeaderValue::from_static("86400"),
    );
    r
}
