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
//! `303 See Other` back to `/` instead of JSON.

use actix_web::body::MessageBody;
use actix_web::dev::{ServiceFactory, ServiceRequest, ServiceResponse};
use actix_web::http::{StatusCode, header};
use actix_web::{App, HttpRequest, HttpResponse, web};
use example_common::User;
use example_common::page::{self, Page};
use example_common::sessions::{self, Answer};
use resilient_session_actix::{Session, SessionEngine, SessionMiddleware, health_handler};
use serde_json::json;

/// The app's routes, behind the session middleware. Installs the process's Prometheus recorder,
/// if no app did yet, so that what the store records from now on is on `GET /metrics`.
pub fn app(
    store: SessionEngine,
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
            web::get().to(health_handler(store.clone())),
        )
        .wrap(SessionMiddleware::new(store))
}

async fn home(session: Session) -> HttpResponse {
    HttpResponse::Ok()
        .content_type(page::CONTENT_TYPE)
        .body(Page::of(&session).await.render())
}

/// The request posts one of the page's forms.
fn from_page(request: &HttpRequest) -> bool {
    page::is_form(
        request
            .headers()
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok()),
    )
}

async fn login(session: Session, request: HttpRequest, body: web::Bytes) -> HttpResponse {
    let form = from_page(&request);
    let Some(user) = page::login_body(&body, form) else {
        return error(
            StatusCode::BAD_REQUEST,
            "expected {\"user_id\": ..., \"role\": ...}",
        );
    };
    session.cycle_id().await;
    let user_agent = request
        .headers()
        .get(header::USER_AGENT)
        .and_then(|v| v.to_str().ok());
    if let Err(err) = sessions::record_login(&session, &user, user_agent).await {
        return error(StatusCode::BAD_REQUEST, &err.to_string());
    }
    match session.insert("user", &user).await {
        Ok(()) if form => answer(Answer::BackToPage),
        Ok(()) => HttpResponse::Ok().json(user),
        Err(err) => error(StatusCode::PAYLOAD_TOO_LARGE, &err.to_string()),
    }
}

async fn me(session: Session) -> HttpResponse {
    match session.get::<User>("user").await {
        Ok(Some(user)) => HttpResponse::Ok().json(json!({
            "user_id": user.user_id,
            "role": user.role,
            "source": session.source().await,
        })),
        _ => error(StatusCode::UNAUTHORIZED, "not logged in"),
    }
}

async fn logout(session: Session, request: HttpRequest) -> HttpResponse {
    session.destroy().await;
    answer(Answer::NoContent.for_form(from_page(&request)))
}

async fn list_sessions(session: Session) -> HttpResponse {
    answer(sessions::list(&session).await)
}

async fn revoke_session(session: Session, handle: web::Path<String>) -> HttpResponse {
    answer(sessions::revoke(&session, &handle).await)
}

async fn logout_others(session: Session, request: HttpRequest) -> HttpResponse {
    answer(
        sessions::logout_others(&session)
            .await
            .for_form(from_page(&request)),
    )
}

async fn logout_everywhere(session: Session, request: HttpRequest) -> HttpResponse {
    answer(
        sessions::logout_everywhere(&session)
            .await
            .for_form(from_page(&request)),
    )
}

fn answer(answer: Answer) -> HttpResponse {
    match answer {
        Answer::Json(body) => HttpResponse::Ok().json(body),
        Answer::NoContent => HttpResponse::NoContent().finish(),
        Answer::BackToPage => HttpResponse::SeeOther()
            .insert_header((header::LOCATION, "/"))
            .finish(),
        Answer::NotLoggedIn => error(StatusCode::UNAUTHORIZED, "not logged in"),
        Answer::NotFound => error(StatusCode::NOT_FOUND, "no such session of yours"),
        Answer::Unavailable => error(StatusCode::SERVICE_UNAVAILABLE, example_common::UNAVAILABLE),
    }
}

async fn read_counter(session: Session) -> HttpResponse {
    let Some(counter) = example_common::counter(session.get("counter").await) else {
        return error(StatusCode::SERVICE_UNAVAILABLE, example_common::UNAVAILABLE);
    };
    counter_response(&session, counter).await
}

async fn increment_counter(session: Session, request: HttpRequest) -> HttpResponse {
    let Some(counter) = example_common::counter(session.get("counter").await) else {
        return error(StatusCode::SERVICE_UNAVAILABLE, example_common::UNAVAILABLE);
    };
    let counter = counter + 1;
    if let Err(err) = session.insert("counter", counter).await {
        return error(StatusCode::PAYLOAD_TOO_LARGE, &err.to_string());
    }
    if from_page(&request) {
        return answer(Answer::BackToPage);
    }
    counter_response(&session, counter).await
}

async fn counter_response(session: &Session, counter: i64) -> HttpResponse {
    HttpResponse::Ok().json(json!({ "counter": counter, "source": session.source().await }))
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
