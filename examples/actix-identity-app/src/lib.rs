//! actix-identity and actix-web-flash-messages on our session middleware: the actix-session
//! session actix-identity takes is [`ActixSessionBridge`]'s, backed by ours, so a Redis outage
//! keeps the user logged in (actix-identity's key is mirrored in the cookie); flash messages are
//! kept in the session by [`FlashStore`].
//!
//! | route | does | answers |
//! | --- | --- | --- |
//! | `POST /login` (form `username`, `password`) | logs in (actix-identity), adds the flash message `Welcome, ferris` | 303 to `/`; 401 for bad credentials |
//! | `GET /` | needs an `Identity` | 200 `{"user", "messages", "source"}` (each message shown once; `source`: `redis` or `cookie`); 401 when not logged in |
//! | `POST /logout` | logs out (actix-identity) | 204 |
//!
//! The one user is `ferris`, password `hunter42`.

use std::sync::{Arc, OnceLock};

use actix_identity::{Identity, IdentityMiddleware};
use actix_web::body::MessageBody;
use actix_web::dev::{ServiceFactory, ServiceRequest, ServiceResponse};
use actix_web::http::header;
use actix_web::{App, HttpMessage, HttpRequest, HttpResponse, web};
use actix_web_flash_messages::{FlashMessage, FlashMessagesFramework, IncomingFlashMessages};
use example_common::users::Users;
use resilient_session_actix::actix_session::{ACTIX_IDENTITY_KEYS, ActixSessionBridge};
use resilient_session_actix::flash::FlashStore;
use resilient_session_actix::{Session, SessionConfig, SessionEngine, SessionMiddleware};
use serde::Deserialize;
use serde_json::json;

/// The session configuration this app needs over the examples' common one: actix-identity's
/// user id mirrored in the cookie, so that a login survives a Redis outage.
pub fn session_config(config: SessionConfig) -> SessionConfig {
    config.mirrored_keys([ACTIX_IDENTITY_KEYS[0]])
}

/// The app: flash messages and actix-identity inside the actix-session bridge, inside our
/// session middleware (in actix-web the middleware wrapped last runs first).
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
    App::new()
        .app_data(web::Data::from(users()))
        .wrap(FlashMessagesFramework::builder(FlashStore::default()).build())
        .wrap(IdentityMiddleware::default())
        .wrap(ActixSessionBridge::new())
        .wrap(SessionMiddleware::new(store))
        .route("/", web::get().to(home))
        .route("/login", web::post().to(login))
        .route("/logout", web::post().to(logout))
}

/// The users, hashed once per process (every worker's app shares them).
fn users() -> Arc<Users> {
    static USERS: OnceLock<Arc<Users>> = OnceLock::new();
    Arc::clone(USERS.get_or_init(|| Arc::new(Users::new())))
}

/// The login form.
#[derive(Debug, Clone, Deserialize)]
pub struct Credentials {
    /// The login name.
    pub username: String,
    /// The password, in clear (over TLS in production).
    pub password: String,
}

async fn login(
    request: HttpRequest,
    users: web::Data<Users>,
    web::Form(credentials): web::Form<Credentials>,
) -> HttpResponse {
    // Argon2 is slow on purpose: off the workers' threads.
    let checked = web::block(move || users.check(&credentials.username, &credentials.password));
    let user = match checked.await {
        Ok(Some(user)) => user,
        Ok(None) => return HttpResponse::Unauthorized().finish(),
        Err(err) => {
            tracing::error!(error = %err, "login failed");
            return HttpResponse::InternalServerError().finish();
        }
    };
    if let Err(err) = Identity::login(&request.extensions(), user.name.clone()) {
        tracing::error!(error = %err, "login failed");
        return HttpResponse::InternalServerError().finish();
    }
    FlashMessage::info(format!("Welcome, {}", user.name)).send();
    HttpResponse::SeeOther()
        .insert_header((header::LOCATION, "/"))
        .finish()
}

async fn home(
    identity: Option<Identity>,
    messages: IncomingFlashMessages,
    session: Session,
) -> HttpResponse {
    let Some(user) = identity.and_then(|identity| identity.id().ok()) else {
        return HttpResponse::Unauthorized().finish();
    };
    let messages: Vec<&str> = messages.iter().map(FlashMessage::content).collect();
    HttpResponse::Ok().json(json!({
        "user": user,
        "messages": messages,
        "source": session.source().await,
    }))
}

async fn logout(identity: Option<Identity>, session: Session) -> HttpResponse {
    match identity {
        Some(identity) => identity.logout(),
        // Not known as logged in (Redis down, the cookie unable to stand in for it): the
        // session ends all the same, so that it does not come back with Redis.
        None => session.destroy().await,
    }
    HttpResponse::NoContent().finish()
}
