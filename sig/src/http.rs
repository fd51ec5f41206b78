//! HTTP routes: the web client (embedded), `/ws`, `/metrics`, `/healthz`,
//! `/nodes` (the cluster's live nodes, for clients to reconnect to), and
//! WHIP/WHEP (`/whip/{room}`, `/whep/{room}`, [`crate::whip`]), and
//! `/ingest` (where encoders publish, for the page).

use axum::Router;
use axum::extract::State;
use axum::http::header;
use axum::response::IntoResponse;
use axum::routing::{delete, get, post};

use crate::{recording, whip};

use crate::ws::{AppState, handler};

const INDEX_HTML: &str = include_str!("../web/index.html");
const APP_JS: &str = include_str!("../web/app.js");
const CHAT_JS: &str = include_str!("../web/chat.js");
const STYLE_CSS: &str = include_str!("../web/style.css");

/// Builds the router.
pub fn router(state: AppState) -> Router {
    Router::new()
        .route(
            "/",
            get(|| async {
                (
                    [(header::CONTENT_TYPE, "text/html; charset=utf-8")],
                    INDEX_HTML,
                )
            }),
        )
        .route(
            "/app.js",
            get(|| async {
                (
                    [(header::CONTENT_TYPE, "text/javascript; charset=utf-8")],
                    APP_JS,
                )
            }),
        )
        .route(
            "/chat.js",
            get(|| async {
                (
                    [(header::CONTENT_TYPE, "text/javascript; charset=utf-8")],
                    CHAT_JS,
                )
            }),
        )
        .route(
            "/style.css",
            get(|| async {
                (
                    [(header::CONTENT_TYPE, "text/css; charset=utf-8")],
                    STYLE_CSS,
                )
            }),
        )
        .route("/ws", get(handler))
        .route("/metrics", get(metrics))
        .route("/healthz", get(|| async { "ok\n" }))
        .route("/nodes", get(nodes))
        .route("/ingest", get(ingest))
        .route(
            "/rooms/{room}/recordings",
            post(recording::api::start).get(recording::api::list),
        )
        .route(
            "/rooms/{room}/recordings/{id}",
            get(recording::api::get).delete(recording::api::stop),
        )
        .route(
            "/rooms/{room}/playback",
            post(recording::playback::api::start).get(recording::playback::api::list),
        )
        .route(
            "/rooms/{room}/playback/{id}",
            delete(recording::playback::api::stop),
        )
        .route("/whip/{room}", post(whip::post_whip).options(whip::options))
        .route("/whep/{room}", post(whip::post_whep).options(whip::options))
        .route(
            "/whip/{room}/{id}",
            delete(whip::delete)
                .patch(whip::patch)
                .options(whip::options),
        )
        .route(
            "/whep/{room}/{id}",
            delete(whip::delete)
                .patch(whip::patch)
                .options(whip::options),
        )
        .with_state(state)
}

/// `{"nodes":[{"id":…,"url":…}]}`: the cluster's live nodes as of the last
/// heartbeat, this one first; empty for a node alone. A client that loses
/// its node joins again on another.
async fn nodes(State(app): State<AppState>) -> impl IntoResponse {
    let mut list = Vec::new();
    if let Some(c) = &app.cluster {
        let mut nodes = c.nodes();
        nodes.sort_by_key(|n| n.id != c.node_id());
        for n in nodes {
            list.push(serde_json::json!({ "id": n.id, "url": n.url }));
        }
    }
    (
        [
            (header::CONTENT_TYPE, "application/json"),
            // A page served by one node reads it from another after a redirect.
            (header::ACCESS_CONTROL_ALLOW_ORIGIN, "*"),
        ],
        serde_json::json!({ "nodes": list }).to_string(),
    )
}

/// `{"rtmp_port": 1935 | null, "auth": bool}`: what the page needs to show
/// where an encoder publishes (the WHIP URL is on this origin).
async fn ingest(State(app): State<AppState>) -> impl IntoResponse {
    (
        [(header::CONTENT_TYPE, "application/json")],
        serde_json::json!({ "rtmp_port": app.rtmp_port, "auth": app.auth }).to_string(),
    )
}

async fn metrics(State(app): State<AppState>) -> impl IntoResponse {
    (
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        crate::metrics::render(&app),
    )
}
