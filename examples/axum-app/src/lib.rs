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
//! `303 See Other` back to `/` instead of JSON.

use axum::body::Bytes;
use axum::extract::Path;
use axum::http::HeaderMap;
use axum::http::{StatusCode, header};
use axum::response::{Html, IntoResponse, Redirect, Response};
use axum::routing::{delete, get, post};
use axum::{Json, Router};
use example_common::User;
use example_common::page::{self, Page};
use example_common::sessions::{self, Answer};
use resilient_session_axum::{Session, SessionEngine, SessionLayer, health_handler};
use serde_json::json;

/// The app's routes, behind the session layer. Installs the process's Prometheus recorder, if
/// no app did yet, so that what the store records from now on is on `GET /metrics`.
pub fn router(store: SessionEngine) -> Router {
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
        .route("/api/health/redis", get(health_handler(store.clone())))
        .route("/metrics", get(metrics))
        .layer(SessionLayer::new(store))
}

async fn home(session: Session) -> Html<String> {
    Html(Page::of(&session).await.render())
}

/// The request posts one of the page's forms.
fn from_page(headers: &HeaderMap) -> bool {
    page::is_form(
        headers
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok()),
    )
}

async fn login(session: Session, headers: HeaderMap, body: Bytes) -> Response {
    let form = from_page(&headers);
    let Some(user) = page::login_body(&body, form) else {
        return error(
            StatusCode::BAD_REQUEST,
            "expected {\"user_id\": ..., \"role\": ...}",
        );
    };
    session.cycle_id().await;
    let user_agent = headers
        .get(header::USER_AGENT)
        .and_then(|v| v.to_str().ok());
    if let Err(err) = sessions::record_login(&session, &user, user_agent).await {
        return error(StatusCode::BAD_REQUEST, &err.to_string());
    }
    match session.insert("user", &user).await {
        Ok(()) if form => answer(Answer::BackToPage),
        Ok(()) => Json(user).into_response(),
        Err(err) => error(StatusCode::PAYLOAD_TOO_LARGE, &err.to_string()),
    }
}

async fn me(session: Session) -> Response {
    match session.get::<User>("user").await {
        Ok(Some(user)) => Json(json!({
            "user_id": user.user_id,
            "role": user.role,
            "source": session.source().await,
        }))
        .into_response(),
        _ => error(StatusCode::UNAUTHORIZED, "not logged in"),
    }
}

async fn logout(session: Session, headers: HeaderMap) -> Response {
    session.destroy().await;
    answer(Answer::NoContent.for_form(from_page(&headers)))
}

async fn list_sessions(session: Session) -> Response {
    answer(sessions::list(&session).await)
}

async fn revoke_session(session: Session, Path(handle): Path<String>) -> Response {
    answer(sessions::revoke(&session, &handle).await)
}

async fn logout_others(session: Session, headers: HeaderMap) -> Response {
    answer(
        sessions::logout_others(&session)
            .await
            .for_form(from_page(&headers)),
    )
}

async fn logout_everywhere(session: Session, headers: HeaderMap) -> Response {
    answer(
        sessions::logout_everywhere(&session)
            .await
            .for_form(from_page(&headers)),
    )
}

fn answer(answer: Answer) -> Response {
    match answer {
        Answer::Json(body) => Json(body).into_response(),
        Answer::NoContent => StatusCode::NO_CONTENT.into_response(),
        Answer::BackToPage => Redirect::to("/").into_response(),
        Answer::NotLoggedIn => error(StatusCode::UNAUTHORIZED, "not logged in"),
        Answer::NotFound => error(StatusCode::NOT_FOUND, "no such session of yours"),
        Answer::Unavailable => error(StatusCode::SERVICE_UNAVAILABLE, example_common::UNAVAILABLE),
    }
}

async fn read_counter(session: Session) -> Response {
    let Some(counter) = example_common::counter(session.get("counter").await) else {
        return error(StatusCode::SERVICE_UNAVAILABLE, example_common::UNAVAILABLE);
    };
    counter_response(&session, counter).await
}

async fn increment_counter(session: Session, headers: HeaderMap) -> Response {
    let Some(counter) = example_common::counter(session.get("counter").await) else {
        return error(StatusCode::SERVICE_UNAVAILABLE, example_common::UNAVAILABLE);
    };
    let counter = counter + 1;
    if let Err(err) = session.insert("counter", counter).await {
        return error(StatusCode::PAYLOAD_TOO_LARGE, &err.to_string());
    }
    if from_page(&headers) {
        return answer(Answer::BackToPage);
    }
    counter_response(&session, counter).await
}

async fn counter_response(session: &Session, counter: i64) -> Response {
    Json(json!({ "counter": counter, "source": session.source().await })).into_response()
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
