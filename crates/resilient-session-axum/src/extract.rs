//! The [`Session`] extractor and its rejection.

use std::fmt;
use std::ops::Deref;

use axum_core::extract::FromRequestParts;
use axum_core::response::{IntoResponse, Response};
use http::StatusCode;
use http::request::Parts;

/// The request's session, put there by [`SessionLayer`](crate::SessionLayer). Dereferences to
/// the core [`resilient_session::Session`]; cheap to clone, fine to hold across `.await`.
///
/// A runnable example; Redis is down on purpose (nothing listens on port 1), and the session
/// works from its cookie:
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// use axum::{Router, body::Body, http::{Request, header}, routing::post};
/// use resilient_session_axum::{
///     KeyRing, RedisManager, Session, SessionConfig, SessionLayer, SessionEngine,
/// };
/// use tower::ServiceExt;
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
/// let app = Router::new().route("/", post(count)).layer(SessionLayer::new(engine));
///
/// let first = app.clone().oneshot(Request::post("/").body(Body::empty())?).await?;
/// let cookie = first.headers()[header::SET_COOKIE].to_str()?.split(';').next().ok_or("")?.to_owned();
/// let second = Request::post("/").header(header::COOKIE, cookie).body(Body::empty())?;
/// let body = axum::body::to_bytes(app.oneshot(second).await?.into_body(), 1024).await?;
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

impl<S: Send + Sync> FromRequestParts<S> for Session {
    type Rejection = SessionMissing;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        parts
            .extensions
            .get::<resilient_session::Session>()
            .cloned()
            .map(Session)
            .ok_or(SessionMissing)
    }
}

/// Rejection of the [`Session`] extractor: the request went through no [`SessionLayer`].
/// A server bug, answered with 500 and a message that says how to fix it.
///
/// [`SessionLayer`]: crate::SessionLayer
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SessionMissing;

impl fmt::Display for SessionMissing {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(
            "Session was not found in the request extensions. Perhaps you forgot to add \
             `SessionLayer` to the router (`Router::layer(SessionLayer::new(engine))`), or the \
             route is outside it?",
        )
    }
}

impl std::error::Error for SessionMissing {}

impl IntoResponse for SessionMissing {
    fn into_response(self) -> Response {
        (StatusCode::INTERNAL_SERVER_ERROR, self.to_string()).into_response()
    }
}
