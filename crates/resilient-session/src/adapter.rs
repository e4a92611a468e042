//! For framework adapters: the two calls that wrap a handler, and what they return.
//!
//! Apps never need this module: [`SessionLayer`](crate::SessionLayer) (tower, axum) and the
//! actix-web middleware of `resilient-session-actix` make these calls. An adapter for another
//! framework does what they do:
//!
//! 1. [`open`] with the request's `Cookie` headers, before the handler: no I/O;
//! 2. hand the [`Session`] to the handler (a request extension, an extractor);
//! 3. [`finish`] (or [`try_finish`]) after the handler, and apply the [`ResponseHeaders`] to the
//!    response.
//!
//! ```no_run
//! use resilient_session::{Session, SessionEngine, adapter};
//!
//! async fn serve(engine: &SessionEngine, cookie: &[u8]) -> http::HeaderMap {
//!     let session = adapter::open(engine, [cookie]);
//!     // ... the handler runs with `session.clone()` ...
//!     let mut headers = http::HeaderMap::new();
//!     adapter::finish(engine, &session).await.apply(&mut headers);
//!     headers
//! }
//! ```

pub use crate::session::{FinishLater, ResponseHeaders};
use crate::{Session, SessionEngine};

/// Step one of a request: the session for a request whose `Cookie` headers have these values.
/// No I/O, and no cryptography yet: the cookie is verified on first use (or at the end of the
/// request if a touch may be due).
///
/// ```no_run
/// # fn run(engine: resilient_session::SessionEngine) {
/// let session = resilient_session::adapter::open(&engine, [b"session=...".as_slice()]);
/// # let _ = session;
/// # }
/// ```
pub fn open<'a>(
    engine: &SessionEngine,
    cookie_headers: impl IntoIterator<Item = &'a [u8]>,
) -> Session {
    engine.open(cookie_headers)
}

/// Step two of a request, after the handler: persists what is left to persist and returns the
/// headers to add to the response. Never fails: when Redis is unavailable, what changed goes
/// into the cookie; problems are logged and counted.
///
/// Should this future be dropped before it is done (the client went away), the rest runs in a
/// task of its own: a logout's `DEL` or a write still happens. Work that needs no Redis (most
/// reads) is done at once; see [`try_finish`].
///
/// ```no_run
/// # async fn run(engine: resilient_session::SessionEngine, session: resilient_session::Session) {
/// let headers = resilient_session::adapter::finish(&engine, &session).await;
/// for set_cookie in headers.set_cookies() { /* add a `Set-Cookie` header */ }
/// # }
/// ```
pub async fn finish(engine: &SessionEngine, session: &Session) -> ResponseHeaders {
    engine.finish(session).await
}

/// [`finish`] without waiting, when the end of the request needs no Redis command (a session not
/// used, or only read with no touch due): the headers at once. Otherwise the Redis work,
/// planned already, to await: adapters use it to skip an allocation on most requests.
///
/// ```no_run
/// # async fn run(engine: resilient_session::SessionEngine, session: resilient_session::Session) {
/// use resilient_session::adapter;
///
/// let headers = match adapter::try_finish(&engine, &session) {
///     Ok(headers) => headers,
///     Err(later) => later.await,
/// };
/// # let _ = headers;
/// # }
/// ```
///
/// # Errors
///
/// Not a failure: `Err` holds the [`FinishLater`] to await for the headers.
pub fn try_finish(
    engine: &SessionEngine,
    session: &Session,
) -> Result<ResponseHeaders, FinishLater> {
    engine.try_finish(session)
}
