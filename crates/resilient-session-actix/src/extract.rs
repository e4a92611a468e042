//! The [`Session`] extractor, [`SessionExt`], and [`SessionMissing`].

use std::fmt;
use std::future::{Ready, ready};
use std::ops::Deref;

use actix_web::dev::{Payload, ServiceRequest};
use actix_web::http::StatusCode;
use actix_web::{FromRequest, HttpMessage, HttpRequest, HttpResponse, ResponseError};

/// The request's session, put there by [`SessionMiddleware`](crate::SessionMiddleware).
/// Dereferences to the core [`resilient_session::Session`]; cheap to clone, fine to hold across
/// `.await` (it is `Send`, so it may also move into spawned tasks).
///
/// Extracting it cannot fail when the middleware is installed; without it, the request fails
/// with [`SessionMissing`], which names the missing middleware.
///
/// A runnable example; Redis is down on purpose (nothing listens on port 1), and the session
/// works from its cookie:
///
/// ```
/// # #[actix_rt::main]
/// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// use actix_web::{App, http::header, test, web};
/// use resilient_session_actix::{
///     KeyRing, RedisManager, Session, SessionConfig, SessionMiddleware, SessionEngine,
/// };
///
/// async fn count(session: Session) -> String {
///     let n: u64 = session.get("n").await.ok().flatten().unwrap_or(0) + 1;
///     let _ = session.insert("n", n).await;
///     format!("{n} from {}", session.source().await)
/// }
///
/// let manager = RedisManager::builder().url("redis://127.0.0.1:1").build()?;
/// let keys = KeyRing::from_secret("an-example-secret-of-32-bytes-or-more")?;
/// let engine = SessionEngine::new(manager, SessionConfig::new(keys).mirrored_keys(["n"]))?;
/// let app = test::init_service(
///     App::new()
///         .wrap(SessionMiddleware::new(engine))
///         .route("/", web::post().to(count)),
/// )
/// .await;
///
/// let first = test::call_service(&app, test::TestRequest::post().uri("/").to_request()).await;
/// let set_cookie = first.headers().get(header::SET_COOKIE).ok_or("a cookie")?.to_str()?;
/// let cookie = set_cookie.split(';').next().ok_or("name=value")?.to_owned();
/// let second = test::TestRequest::post()
///     .uri("/")
///     .insert_header((header::COOKIE, cookie))
///     .to_request();
/// let body = test::call_and_read_body(&app, second).await;
/// assert_eq!(body, "2 from cookie");
/// # Ok(()) }
/// ```
#[derive(Debug, Clone)]
pub struct Session(resilient_session::Session);

impl Session {
    /// The core session handle.
    pub fn into_inner(self) -> resilient_session::Session {
        self.0
    }
}

impl Deref for Session {
    type Target = resilient_session::Session;

    fn deref(&self) -> &Self::Target {
        &self.0
    }
}

impl FromRequest for Session {
    type Error = SessionMissing;
    type Future = Ready<Result<Self, Self::Error>>;

    fn from_request(request: &HttpRequest, _payload: &mut Payload) -> Self::Future {
        ready(request.get_session())
    }
}

/// The session of a request, for code that has the request rather than an extractor
/// (middleware, guards).
///
/// ```no_run
/// use actix_web::HttpRequest;
/// use resilient_session_actix::SessionExt;
///
/// async fn handler(request: HttpRequest) -> actix_web::Result<String> {
///     let session = request.get_session()?;
///     Ok(session.source().await.to_string())
/// }
/// ```
pub trait SessionExt {
    /// The session of the request.
    ///
    /// # Errors
    ///
    /// [`SessionMissing`] when the [`SessionMiddleware`](crate::SessionMiddleware) is not
    /// installed on the route.
    fn get_session(&self) -> Result<Session, SessionMissing>;
}

impl SessionExt for HttpRequest {
    fn get_session(&self) -> Result<Session, SessionMissing> {
        session_of(self)
    }
}

impl SessionExt for ServiceRequest {
    fn get_session(&self) -> Result<Session, SessionMissing> {
        session_of(self)
    }
}

fn session_of(message: &impl HttpMessage) -> Result<Session, SessionMissing> {
    message
        .extensions()
        .get::<resilient_session::Session>()
        .cloned()
        .map(Session)
        .ok_or(SessionMissing)
}

/// The request went through no [`SessionMiddleware`](crate::SessionMiddleware): a server bug,
/// answered with 500 and a message that says how to fix it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SessionMissing;

impl fmt::Display for SessionMissing {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(
            "Session was not found in the request extensions. Perhaps you forgot to add \
             `SessionMiddleware` to the app (`App::wrap(SessionMiddleware::new(engine))`), or the \
             route is outside it?",
        )
    }
}

impl std::error::Error for SessionMissing {}

impl ResponseError for SessionMissing {
    fn status_code(&self) -> StatusCode {
        StatusCode::INTERNAL_SERVER_ERROR
    }

    fn error_response(&self) -> HttpResponse {
        HttpResponse::InternalServerError().body(self.to_string())
    }
}
