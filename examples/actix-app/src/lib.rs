//! The example app: the HTTP contract the conformance suite checks, on actix-web, as a library so that the
//! conformance suite can serve the very same app. Routes and answers are those of the axum
//! example, byte for byte.
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

use actix_web::body::MessageBody;
use actix_web::dev::{ServiceFactory, ServiceRequest, ServiceResponse};
use actix_web::http::{StatusCode, header};
use actix_web::{App, HttpRequest, HttpResponse, web};
use example_common::page::{self, Page};
use example_common::routes::{self, Answer, Request};
use example_common::sessions;
use resilient_session_actix::{Session, SessionEngine, SessionMiddleware, health_handler};
use serde_json::json;

/// The app's routes, behind the session middleware. Installs the process's Prometheus recorder,
/// if no app did yet, so that what the engine records from now on is on `GET /metrics`.
pub fn app(
    engine: SessionEngine,
) -> App<
    impl ServiceFactory<
        ServiceRequest,
        Config = (),
        Response = ServiceResponse<impl MessageBody>,
        Error = actix_web::Error,
        InitError = (),
    >,
> {
    // A failure is logged, and `GET /metrics` says why.
    let _ = example_common::metrics::prometheus();
    App::new()
        .route("/", web::get().to(home))
        .route("/login", web::post().to(login))
        .route("/me", web::get().to(me))
        .route("/logout", web::post().to(logout))
        .route("/sessions", web::get().to(list_sessions))
        .route("/sessions/{handle}", web::delete().to(revoke_session))
        .route("/logout-others", web::post().to(logout_others))
        .route("/logout-everywhere", web::post().to(logout_everywhere))
        .route("/counter", web::get().to(read_counter))
        .route("/counter", web::post().to(increment_counter))
        .route("/noop", web::get().to(noop))
        .route("/metrics", web::get().to(metrics))
        .route(
            "/api/health/redis",
            web::get().to(health_handler(engine.clone())),
        )
        .wrap(SessionMiddleware::new(engine))
}

async fn home(session: Session) -> HttpResponse {
    HttpResponse::Ok()
        .content_type(page::CONTENT_TYPE)
        .insert_header((header::X_FRAME_OPTIONS, "DENY"))
        .body(Page::of(&session).await.render())
}

/// What the routes need of the request's headers.
fn request(request: &HttpRequest) -> Request<'_> {
    let header = |name: &str| request.headers().get(name).and_then(|v| v.to_str().ok());
    Request {
        content_type: header("content-type"),
        user_agent: header("user-agent"),
        fetch_site: header("sec-fetch-site"),
        origin: header("origin"),
        host: header("host"),
    }
}

async fn login(session: Session, http: HttpRequest, body: web::Bytes) -> HttpResponse {
    answer(routes::login(&session, &request(&http), &body).await)
}

async fn me(session: Session) -> HttpResponse {
    answer(routes::me(&session).await)
}

async fn logout(session: Session, http: HttpRequest) -> HttpResponse {
    answer(routes::logout(&session, &request(&http)).await)
}

async fn list_sessions(session: Session) -> HttpResponse {
    answer(sessions::list(&session).await)
}

async fn revoke_session(session: Session, handle: web::Path<String>) -> HttpResponse {
    answer(sessions::revoke(&session, &handle).await)
}

async fn logout_others(session: Session, http: HttpRequest) -> HttpResponse {
    answer(routes::logout_others(&session, &request(&http)).await)
}

async fn logout_everywhere(session: Session, http: HttpRequest) -> HttpResponse {
    answer(routes::logout_everywhere(&session, &request(&http)).await)
}

async fn read_counter(session: Session) -> HttpResponse {
    answer(routes::read_counter(&session).await)
}

async fn increment_counter(session: Session, http: HttpRequest) -> HttpResponse {
    answer(routes::increment_counter(&session, &request(&http)).await)
}

fn answer(answer: Answer) -> HttpResponse {
    if let Some((status, body)) = answer.error() {
        let status = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        return HttpResponse::build(status).json(body);
    }
    match answer {
        Answer::Json(body) => HttpResponse::Ok().json(body),
        Answer::BackToPage => HttpResponse::SeeOther()
            .insert_header((header::LOCATION, "/"))
            .finish(),
        _ => HttpResponse::NoContent().finish(),
    }
}

async fn noop() -> &'static str {
    "ok"
}

async fn metrics() -> HttpResponse {
    match example_common::metrics::prometheus() {
        Ok(handle) => HttpResponse::Ok()
            .content_type(example_common::metrics::CONTENT_TYPE)
            .body(handle.render()),
        Err(err) => error(StatusCode::SERVICE_UNAVAILABLE, &err.to_string()),
    }
}

fn error(status: StatusCode, message: &str) -> HttpResponse {
    HttpResponse::build(status).json(json!({ "error": message }))
}
