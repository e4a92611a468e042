//! [`ActixSessionBridge`]: an `actix_session::Session` in every request, backed by ours, so
//! that the crates built on actix-session (actix-identity) run on our middleware, the cookie
//! fallback included.

use std::collections::HashMap;
use std::future::{Future, Ready, ready};
use std::pin::Pin;
use std::rc::Rc;

use actix_session::{SessionExt as _, SessionStatus};
use actix_web::body::{EitherBody, MessageBody};
use actix_web::dev::{Service, ServiceRequest, ServiceResponse, Transform, forward_ready};
use actix_web::{HttpMessage, HttpResponse};
use resilient_session::Session;
use serde_json::{Map, Value};

/// The keys actix-identity keeps a login at (its defaults): mirror at least the first
/// ([`SessionConfig::mirrored_keys`](crate::SessionConfig::mirrored_keys)) so that a logged-in
/// user stays logged in while Redis is unavailable; the timestamps too when its login or visit
/// deadlines are configured.
pub const ACTIX_IDENTITY_KEYS: [&str; 3] = [
    "actix_identity.user_id",
    "actix_identity.logged_in_at",
    "actix_identity.last_visited_at",
];

/// Puts an [`actix_session::Session`] into every request, filled from the request's own
/// [`Session`], and writes what the handler and the middleware inside it changed back into ours
/// when the response is ready: actix-identity's `IdentityMiddleware` then runs unchanged, and a
/// user stays logged in while Redis is down (mirror [`ACTIX_IDENTITY_KEYS`]).
///
/// Wrap it inside [`SessionMiddleware`](crate::SessionMiddleware) and outside what uses the
/// actix-session session: in actix-web the middleware wrapped last runs first, so
/// `.wrap(IdentityMiddleware::default()).wrap(ActixSessionBridge::new()).wrap(SessionMiddleware::new(engine))`.
///
/// actix-session's session is synchronous and filled before the handler runs, so unlike ours
/// this loads the session on every request it wraps (one `HGETALL`); wrap only the scopes that
/// use it.
///
/// | actix-session | ours |
/// | --- | --- |
/// | `insert`, `remove`, `clear` | the same keys changed ([`Session::apply_changes`]), all or nothing; a failure (the session too large) answers 500 |
/// | `renew` (actix-identity's login) | [`Session::cycle_id`]: a new id, the data kept |
/// | `purge` (actix-identity's logout) | [`Session::destroy`]: the session ends, everywhere |
///
/// While the session is served from its cookie, the keys the cookie does not carry look absent to
/// actix-session's code; a read-modify-write of such a key would overwrite the value Redis holds.
/// Mirror what actix-identity keeps. Every request sees its session's status as `Changed` (its
/// entries were inserted); `renew` and `purge` are told apart all the same.
///
/// ```
/// # #[actix_rt::main]
/// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// use actix_session::SessionExt as _;
/// use actix_web::{App, HttpRequest, test, web};
/// use resilient_session_actix::actix_session::ActixSessionBridge;
/// use resilient_session_actix::{KeyRing, RedisManager, SessionConfig, SessionMiddleware, SessionEngine};
///
/// // Redis is down on purpose (nothing listens on port 1): the session lives in its cookie.
/// let manager = RedisManager::builder().url("redis://127.0.0.1:1").build()?;
/// let keys = KeyRing::from_secret("an-example-secret-of-32-bytes-or-more")?;
/// let engine = SessionEngine::new(manager, SessionConfig::new(keys))?;
/// let app = test::init_service(
///     App::new()
///         .wrap(ActixSessionBridge::new())
///         .wrap(SessionMiddleware::new(engine))
///         .route(
///             "/",
///             web::get().to(|request: HttpRequest| async move {
///                 request.get_session().insert("seen", true).is_ok().to_string()
///             }),
///         ),
/// )
/// .await;
/// let response = test::call_service(&app, test::TestRequest::get().uri("/").to_request()).await;
/// assert!(response.headers().contains_key("set-cookie"));
/// # Ok(()) }
/// ```
#[derive(Debug, Clone, Copy, Default)]
pub struct ActixSessionBridge {
    _private: (),
}

impl ActixSessionBridge {
    /// The middleware; see the [type docs](Self).
    pub fn new() -> Self {
        Self::default()
    }
}

impl<S, B> Transform<S, ServiceRequest> for ActixSessionBridge
where
    S: Service<ServiceRequest, Response = ServiceResponse<B>, Error = actix_web::Error> + 'static,
    B: MessageBody + 'static,
{
    type Response = ServiceResponse<EitherBody<B>>;
    type Error = actix_web::Error;
    type Transform = ActixSessionBridgeService<S>;
    type InitError = ();
    type Future = Ready<Result<Self::Transform, Self::InitError>>;

    fn new_transform(&self, service: S) -> Self::Future {
        ready(Ok(ActixSessionBridgeService {
            service: Rc::new(service),
        }))
    }
}

/// The service [`ActixSessionBridge`] wraps around the app; not used directly.
#[derive(Debug)]
pub struct ActixSessionBridgeService<S> {
    service: Rc<S>,
}

impl<S, B> Service<ServiceRequest> for ActixSessionBridgeService<S>
where
    S: Service<ServiceRequest, Response = ServiceResponse<B>, Error = actix_web::Error> + 'static,
    B: MessageBody + 'static,
{
    type Response = ServiceResponse<EitherBody<B>>;
    type Error = actix_web::Error;
    type Future = Pin<Box<dyn Future<Output = Result<Self::Response, Self::Error>>>>;

    forward_ready!(service);

    fn call(&self, request: ServiceRequest) -> Self::Future {
        let service = Rc::clone(&self.service);
        let ours = request.extensions().get::<Session>().cloned();
        Box::pin(async move {
            let Some(ours) = ours else {
                tracing::error!("ActixSessionBridge needs SessionMiddleware around it: no session");
                return Ok(request.into_response(server_error()).map_into_right_body());
            };
            let given = fill(&ours, &request).await;
            let response = service.call(request).await?;
            let session = response.request().get_session();
            let status = session.status();
            if status == SessionStatus::Purged {
                ours.destroy().await;
                return Ok(response.map_into_left_body());
            }
            let now = parse(&session.entries());
            if let Err(err) = ours.apply_changes(&given, &now).await {
                // Nothing of the changes is kept; our middleware still ends the request.
                tracing::error!(error = %err, "the actix-session session was not saved");
                let (request, _) = response.into_parts();
                return Ok(ServiceResponse::new(request, server_error()).map_into_right_body());
            }
            if status == SessionStatus::Renewed {
                ours.cycle_id().await;
            }
            Ok(response.map_into_left_body())
        })
    }
}

fn server_error() -> HttpResponse {
    HttpResponse::InternalServerError().finish()
}

/// Our session's known entries into the request's actix-session session (which keeps them as
/// JSON text); returns what was given.
async fn fill(ours: &Session, request: &ServiceRequest) -> Map<String, Value> {
    let entries = ours.known_entries().await;
    let session = request.get_session();
    for (key, value) in &entries {
        // A `Value` always serialises.
        let _ = session.insert(key.clone(), value);
    }
    entries
}

/// actix-session's entries (JSON text) as values.
fn parse(entries: &HashMap<String, String>) -> Map<String, Value> {
    entries
        .iter()
        .filter_map(|(key, text)| match serde_json::from_str(text) {
            Ok(value) => Some((key.clone(), value)),
            // actix-session stores what serde_json wrote; anything else was never a value.
            Err(_) => {
                tracing::warn!("an actix-session value that is not JSON was not kept");
                None
            }
        })
        .collect()
}
