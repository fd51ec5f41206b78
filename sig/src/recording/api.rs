//! The recording API over HTTP, and `sfu record`, its command line.
//!
//! ```text
//! POST   /rooms/{room}/recordings        {"participant": "p7"}?  201 + the recording
//! GET    /rooms/{room}/recordings                                200 {"recordings": […]}
//! GET    /rooms/{room}/recordings/{id}                           200 + the recording
//! DELETE /rooms/{room}/recordings/{id}                           200 + the recording, stopping
//! ```
//!
//! With `--auth-secret` each needs `Authorization: Bearer <admin token>`
//! (`sfu token --admin`: a JWT with `admin: true`). Errors are JSON
//! `{"error": code, "message": …}`: 401 no or a bad token, 403 not an
//! admin token or one of another room, 400 a room name that cannot be a
//! directory name, 404 no such room, participant or recording, 503 the
//! room's worker is busy, 507 the directory cannot be written.

use std::time::Duration;

use axum::Json;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use tokio::sync::oneshot;

use super::{RecordError, RecordRequest, RecordingInfo, State as RecState, check_room_name};
use crate::auth::{AuthError, verify_admin};
use crate::hub::HubMsg;
use crate::ws::AppState;

/// Longest the API waits for the room's answer.
const ROOM_ANSWER: Duration = Duration::from_secs(10);

/// The body of a `POST`.
#[derive(Debug, Default, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StartBody {
    /// Record only this participant (`p7`).
    pub participant: Option<String>,
}

pub(crate) fn error(status: StatusCode, code: &str, message: impl std::fmt::Display) -> Response {
    let body = serde_json::json!({ "error": code, "message": message.to_string() });
    let mut r = (status, Json(body)).into_response();
    if status == StatusCode::UNAUTHORIZED {
        r.headers_mut()
            .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
    }
    r
}

fn refused(e: &RecordError) -> Response {
    let status = match e {
        RecordError::BadRoomName(_) => StatusCode::BAD_REQUEST,
        RecordError::NoRoom(_) | RecordError::NoParticipant(_) | RecordError::NoRecording(_) => {
            StatusCode::NOT_FOUND
        }
        RecordError::Storage(_) => StatusCode::INSUFFICIENT_STORAGE,
        RecordError::DataPlane(_) => StatusCode::SERVICE_UNAVAILABLE,
    };
    error(status, e.code(), e)
}

/// Checks the admin token of a request about `room`, when tokens are on.
pub(crate) fn admit(app: &AppState, headers: &HeaderMap, room: &str) -> Result<(), Box<Response>> {
    let Some(secret) = &app.auth_secret else {
        return Ok(());
    };
    let token = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .map(str::trim);
    verify_admin(secret, token, room).map(|_| ()).map_err(|e| {
        let status = match e {
            AuthError::NotAdmin | AuthError::WrongRoom(_) => StatusCode::FORBIDDEN,
            _ => StatusCode::UNAUTHORIZED,
        };
        let message = match &e {
            AuthError::Missing => {
                "this server requires an admin token: send Authorization: Bearer <token> (`sfu token --admin`)".to_string()
            }
            AuthError::WrongRoom(r) => format!("the admin token is for room {r:?} only"),
            other => other.to_string(),
        };
        Box::new(error(status, e.code(), message))
    })
}

/// Asks the room (through the hub) and waits for its answer.
async fn ask(
    app: &AppState,
    room: String,
    make: impl FnOnce(oneshot::Sender<Result<RecordingInfo, RecordError>>) -> RecordRequest,
) -> Result<RecordingInfo, Response> {
    let (tx, rx) = oneshot::channel();
    let busy = || {
        error(
            StatusCode::SERVICE_UNAVAILABLE,
            "server-busy",
            "the server did not answer in time; try again",
        )
    };
    let msg = HubMsg::Record {
        room: room.clone(),
        req: make(tx),
    };
    if app.hub.try_send(msg).is_err() {
        return Err(busy());
    }
    match tokio::time::timeout(ROOM_ANSWER, rx).await {
        Ok(Ok(r)) => r.map_err(|e| refused(&e)),
        // The room closed before it answered.
        Ok(Err(_)) => Err(refused(&RecordError::NoRoom(room))),
        Err(_) => Err(busy()),
    }
}

/// `POST /rooms/{room}/recordings`.
pub async fn start(
    State(app): State<AppState>,
    Path(room): Path<String>,
    headers: HeaderMap,
    body: String,
) -> Response {
    if let Err(r) = admit(&app, &headers, &room) {
        return *r;
    }
    if let Err(e) = check_room_name(&room) {
        return refused(&e);
    }
    let body: StartBody = if body.trim().is_empty() {
        StartBody::default()
    } else {
        match serde_json::from_str(&body) {
            Ok(b) => b,
            Err(e) => {
                return error(
                    StatusCode::BAD_REQUEST,
                    "bad-json",
                    format!("the body must be {{\"participant\": \"p7\"}} or empty: {e}"),
                );
            }
        }
    };
    match ask(&app, room, |reply| RecordRequest::Start {
        participant: body.participant,
        reply,
    })
    .await
    {
        Ok(info) => (StatusCode::CREATED, Json(info)).into_response(),
        Err(r) => r,
    }
}

/// `GET /rooms/{room}/recordings`.
pub async fn list(
    State(app): State<AppState>,
    Path(room): Path<String>,
    headers: HeaderMap,
) -> Response {
    if let Err(r) = admit(&app, &headers, &room) {
        return *r;
    }
    Json(serde_json::json!({ "recordings": app.recordings.of_room(&room) })).into_response()
}

/// `GET /rooms/{room}/recordings/{id}`.
pub async fn get(
    State(app): State<AppState>,
    Path((room, id)): Path<(String, String)>,
    headers: HeaderMap,
) -> Response {
    if let Err(r) = admit(&app, &headers, &room) {
        return *r;
    }
    match app.recordings.get(&room, &id) {
        Some(e) => Json(e.snapshot()).into_response(),
        None => refused(&RecordError::NoRecording(id)),
    }
}

/// `DELETE /rooms/{room}/recordings/{id}`: stops it (a recording already
/// ended is answered as it is).
pub async fn stop(
    State(app): State<AppState>,
    Path((room, id)): Path<(String, String)>,
    headers: HeaderMap,
) -> Response {
    if let Err(r) = admit(&app, &headers, &room) {
        return *r;
    }
    let Some(entry) = app.recordings.get(&room, &id) else {
        return refused(&RecordError::NoRecording(id));
    };
    if entry.snapshot().state == RecState::Recording {
        // The room may have ended it meanwhile: then it is answered as is.
        let _ = ask(&app, room, |reply| RecordRequest::Stop { id, reply }).await;
    }
    Json(entry.snapshot()).into_response()
}

/// `sfu record …`.
#[derive(Debug, Clone, clap::Subcommand)]
pub enum RecordCmd {
    /// Start recording a room (or one participant of it); prints the recording.
    Start {
        /// The room.
        room: String,
        /// Record only this participant (`p7`).
        #[arg(long)]
        participant: Option<String>,
    },
    /// Stop a recording; prints it.
    Stop {
        /// The room.
        room: String,
        /// The recording's id.
        id: String,
    },
    /// List a room's recordings.
    List {
        /// The room.
        room: String,
    },
}

/// `sfu recording …`.
#[derive(Debug, Clone, clap::Subcommand)]
pub enum RecordingCmd {
    /// Mux a recording's track files (DIR: --recordings-dir/ROOM/ID) to one WebM (VP8/VP9/AV1 +
    /// Opus) or MP4 (H.264 + Opus) per participant, beside them; prints what was written.
    Mux {
        /// The recording's directory.
        dir: std::path::PathBuf,
    },
}

/// Runs `sfu recording`; returns what to print.
///
/// Errors: why it failed.
pub fn run_recording_cli(cmd: &RecordingCmd) -> Result<String, String> {
    match cmd {
        RecordingCmd::Mux { dir } => {
            let report = super::mux::mux_dir(dir).map_err(|e| e.to_string())?;
            serde_json::to_string_pretty(&report).map_err(|e| e.to_string())
        }
    }
}

/// Runs `sfu record` against the server at `url`; returns the JSON answer.
///
/// Errors: the server could not be reached, or refused (its message).
pub fn run_cli(cmd: &RecordCmd, url: &str, token: Option<&str>) -> Result<String, String> {
    let base = url.trim_end_matches('/');
    match cmd {
        RecordCmd::Start { room, participant } => {
            let body = serde_json::json!({ "participant": participant }).to_string();
            call(
                "POST",
                &format!("{base}/rooms/{}/recordings", enc(room)),
                token,
                Some(&body),
            )
        }
        RecordCmd::Stop { room, id } => call(
            "DELETE",
            &format!("{base}/rooms/{}/recordings/{}", enc(room), enc(id)),
            token,
            None,
        ),
        RecordCmd::List { room } => call(
            "GET",
            &format!("{base}/rooms/{}/recordings", enc(room)),
            token,
            None,
        ),
    }
}

/// `s` as one URL path segment (RFC 3986 §2.3: unreserved kept, the rest
/// percent-encoded).
pub(crate) fn enc(s: &str) -> String {
    s.bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~') {
                (b as char).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}

/// One request of the CLIs to the server's API (30 s at most): `method`
/// `url` with the admin `token` and a JSON `body`. Returns the answer.
///
/// Errors: the server could not be reached, or its status was not 2xx
/// (then its `message`).
pub(crate) fn call(
    method: &str,
    url: &str,
    token: Option<&str>,
    body: Option<&str>,
) -> Result<String, String> {
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .timeout_global(Some(Duration::from_secs(30)))
        .build()
        .into();
    let auth = token.map(|t| format!("Bearer {t}"));
    let result = match method {
        "POST" => {
            let mut req = agent.post(url).header("content-type", "application/json");
            if let Some(a) = &auth {
                req = req.header("authorization", a);
            }
            req.send(body.unwrap_or(""))
        }
        "DELETE" => {
            let mut req = agent.delete(url);
            if let Some(a) = &auth {
                req = req.header("authorization", a);
            }
            req.call()
        }
        _ => {
            let mut req = agent.get(url);
            if let Some(a) = &auth {
                req = req.header("authorization", a);
            }
            req.call()
        }
    };
    let mut resp = result.map_err(|e| format!("cannot reach {url}: {e}"))?;
    let status = resp.status();
    let text = resp
        .body_mut()
        .read_to_string()
        .map_err(|e| format!("reading the answer of {url}: {e}"))?;
    if status.is_success() {
        Ok(text)
    } else {
        let why = serde_json::from_str::<serde_json::Value>(&text)
            .ok()
            .and_then(|v| v.get("message").and_then(|m| m.as_str()).map(String::from))
            .unwrap_or(text);
        Err(format!("{status}: {why}"))
    }
}
