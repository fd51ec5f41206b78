//! The playback API over HTTP, and `sfu play`, its command line.
//!
//! ```text
//! POST   /rooms/{room}/playback   {"file": "call/ID/p1.webm", "loop": false, "name": "…"}
//!                                                     201 + the playback
//! GET    /rooms/{room}/playback                       200 {"playbacks": […]}
//! DELETE /rooms/{room}/playback/{id}                  200 + the playback, stopped
//! ```
//!
//! `file` is under `--recordings-dir`. With `--auth-secret` each needs an
//! admin token, as the recording API does. Errors are JSON
//! `{"error": code, "message": …}`: 404 no such file or playback, 422 a
//! file that cannot be played (not WebM or MP4, damaged, no track we
//! publish), 409 the room refused the join (full, a bad name), 401/403
//! the token.

use axum::Json;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};

use super::{PlayContext, PlayError};
use crate::recording::api::{admit, call, enc, error};
use crate::ws::AppState;

/// The body of a `POST`.
#[derive(Debug, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PlayBody {
    /// The file, under `--recordings-dir`.
    pub file: String,
    /// Start over at the end.
    #[serde(default, rename = "loop")]
    pub looped: bool,
    /// The participant's display name [default: `playback-<n>`].
    #[serde(default)]
    pub name: String,
}

/// `POST /rooms/{room}/playback`.
pub async fn start(
    State(app): State<AppState>,
    Path(room): Path<String>,
    headers: HeaderMap,
    body: String,
) -> Response {
    if let Err(r) = admit(&app, &headers, &room) {
        return *r;
    }
    let body: PlayBody = match serde_json::from_str(&body) {
        Ok(b) => b,
        Err(e) => {
            return error(
                StatusCode::BAD_REQUEST,
                "bad-json",
                format!("the body must be {{\"file\": \"ROOM/ID/p1.webm\", \"loop\": false}}: {e}"),
            );
        }
    };
    let ctx = PlayContext {
        hub: app.hub.clone(),
        next_conn: app.next_conn.clone(),
        auth_secret: app.auth_secret.clone(),
        dir: app.recordings.cfg.dir.clone(),
    };
    match super::start(
        &ctx,
        &app.playbacks,
        &room,
        &body.file,
        body.looped,
        &body.name,
    )
    .await
    {
        Ok(info) => (StatusCode::CREATED, Json(info)).into_response(),
        Err(e) => {
            let status = match e {
                PlayError::NotFound(_) => StatusCode::NOT_FOUND,
                PlayError::File(..) => StatusCode::UNPROCESSABLE_ENTITY,
                PlayError::Join(_) => StatusCode::CONFLICT,
            };
            error(status, e.code(), e)
        }
    }
}

/// `GET /rooms/{room}/playback`.
pub async fn list(
    State(app): State<AppState>,
    Path(room): Path<String>,
    headers: HeaderMap,
) -> Response {
    if let Err(r) = admit(&app, &headers, &room) {
        return *r;
    }
    Json(serde_json::json!({ "playbacks": app.playbacks.of_room(&room) })).into_response()
}

/// `DELETE /rooms/{room}/playback/{id}`.
pub async fn stop(
    State(app): State<AppState>,
    Path((room, id)): Path<(String, String)>,
    headers: HeaderMap,
) -> Response {
    if let Err(r) = admit(&app, &headers, &room) {
        return *r;
    }
    match app.playbacks.stop(&room, &id) {
        Some(info) => Json(info).into_response(),
        None => error(
            StatusCode::NOT_FOUND,
            "no-such-playback",
            format!("there is no playback {id:?} in this room"),
        ),
    }
}

/// `sfu play FILE --room R [--loop]`, or `sfu play --room R --stop ID`:
/// calls the server at `url`; returns its JSON answer.
///
/// Errors: the server could not be reached, or refused (its message).
pub fn run_cli(
    file: Option<&str>,
    (room, stop, looped, name): (&str, Option<&str>, bool, &str),
    url: &str,
    token: Option<&str>,
) -> Result<String, String> {
    let base = url.trim_end_matches('/');
    let at = format!("{base}/rooms/{}/playback", enc(room));
    match (file, stop) {
        (_, Some(id)) => call("DELETE", &format!("{at}/{}", enc(id)), token, None),
        (Some(f), None) => {
            let body = serde_json::json!({ "file": f, "loop": looped, "name": name }).to_string();
            call("POST", &at, token, Some(&body))
        }
        (None, None) => call("GET", &at, token, None),
    }
}
