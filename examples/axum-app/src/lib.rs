//! The example app: the HTTP contract the conformance suite checks, on axum, as a library so that the
//! conformance suite can serve the very same router.
//!
//! | route | does |
//! | --- | --- |
//! | `GET /` | the HTML page: log in, count, log out, where the session came from, Redis, the user's sessions |
//! | `POST /login` `{"user_id","role"}` (or the page's form) | cycles the id, stores the user, marks the session as theirs (with the user agent) |
//! | `GET /me` | the user and where the session came from, or 401 |
//! | `POST /logout` | destroys the session (204) |
//! | `POST /counter`, `GET /counter` | increments / reads `counter` (503 when nothing about the session is known) |
//! | `GET /sessions` | the user's sessions (401 when not logged in, 503 when Redis is unavailable) |
//! | `DELETE /sessions/{handle}` | ends one of the user's sessions (204; 404 when it is not theirs) |
//! | `POST /logout-others`, `POST /logout-everywhere` | ends the user's other sessions, or all (204) |
//! | `GET /noop` | never touches the session |
//! | `GET /api/health/redis` | health, 200 or 503 |
//! | `GET /metrics` | the process's metrics, Prometheus text format (503 if another recorder was installed) |
//!
//! A `POST` of the page's forms (`application/x-www-form-urlencoded`) is answered with
//! `303 See Other` back to `/` instead of JSON, or 403 when another site posted it; the routes
//! themselves are in `example_common::routes`.

use axum::body::Bytes;
use axum::extract::Path;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{Html, IntoResponse, Redirect, Response};
use axum::routing::{delete, get, post};
use axum::{Json, Router};
use example_common::page::Page;
use example_common::routes::{self, Answer, Request};
use example_common::sessions;
use resilient_session_axum::{Session, SessionEngine, SessionLayer, health_handler};
use serde_json::json;

/// The app's routes, behind the session layer. Installs the process's Prometheus recorder, if
/// no app did yet, so that what the engine records from now on is on `GET /metrics`.
pub fn router(engine: SessionEngine) -> Router {
    // A failure is logged, and `GET /metrics` says why.
    let _ = example_common::metrics::prometheus();
    Router::new()
        .route("/", get(home))
        .route("/login", post(login))
        .route("/me", get(me))
        .route("/logout", post(logout))
        .route("/sessions", get(list_sessions))
        .route("/sessions/{handle}", delete(revoke_session))
        .route("/logout-others", post(logout_others))
        .route("/logout-everywhere", post(logout_everywhere))
        .route("/counter", get(read_counter).post(increment_counter))
        .route("/noop", get(noop))
        .route("/api/health/redis", get(health_handler(engine.clone())))
        .route("/metrics", get(metrics))
        .layer(SessionLayer::new(engine))
}

async fn home(session: Session) -> Response {
    let html = Html(Page::of(&session).await.render());
    ([(header::X_FRAME_OPTIONS, "DENY")], html).into_response()
}

/// What the routes need of the request's headers.
fn request(headers: &HeaderMap) -> Request<'_> {
    let header = |name: &str| headers.get(name).and_then(|v| v.to_str().ok());
    Request {
        content_type: header("content-type"),
        user_agent: header("user-agent"),
        fetch_site: header("sec-fetch-site"),
        origin: header("origin"),
        host: header("host"),
    }
}

async fn login(session: Session, headers: HeaderMap, body: Bytes) -> Response {
    answer(routes::login(&session, &request(&headers), &body).await)
}

async fn me(session: Session) -> Response {
    answer(routes::me(&session).await)
}

async fn logout(session: Session, headers: HeaderMap) -> Response {
    answer(routes::logout(&session, &request(&headers)).await)
}

async fn list_sessions(session: Session) -> Response {
    answer(sessions::list(&session).await)
}

async fn revoke_session(session: Session, Path(handle): Path<String>) -> Response {
    answer(sessions::revoke(&session, &handle).await)
}

async fn logout_others(session: Session, headers: HeaderMap) -> Response {
    answer(routes::logout_others(&session, &request(&headers)).await)
}

async fn logout_everywhere(session: Session, headers: HeaderMap) -> Response {
    answer(routes::logout_everywhere(&session, &request(&headers)).await)
}

async fn read_counter(session: Session) -> Response {
    answer(routes::read_counter(&session).await)
}

async fn increment_counter(session: Session, headers: HeaderMap) -> Response {
    answer(routes::increment_counter(&session, &request(&headers)).await)
}

fn answer(answer: Answer) -> Response {
    if let Some((status, body)) = answer.error() {
        let status = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        return (status, Json(body)).into_response();
    }
    match answer {
        Answer::Json(body) => Json(body).into_response(),
        Answer::BackToPage => Redirect::to("/").into_response(),
        _ => StatusCode::NO_CONTENT.into_response(),
    }
}

async fn noop() -> &'static str {
    "ok"
}

async fn metrics() -> Response {
    match example_common::metrics::prometheus() {
        Ok(handle) => (
            [(header::CONTENT_TYPE, example_common::metrics::CONTENT_TYPE)],
            handle.render(),
        )
            .into_response(),
        Err(err) => error(StatusCode::SERVICE_UNAVAILABLE, &err.to_string()),
    }
}

fn error(status: StatusCode, message: &str) -> Response {
    (status, Json(json!({ "error": message }))).into_response()
}
