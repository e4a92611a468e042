//! The tower middleware: [`SessionLayer`], the [`SessionService`] it wraps a service in, and

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll, ready};

use http::header::COOKIE;
use http::{HeaderValue, Request, Response};
use pin_project_lite::pin_project;
use tower_layer::Layer;
use tower_service::Service;

use crate::adapter::FinishLater;
use crate::{Session, SessionEngine, Source};

/// Adds sessions to a tower service.
///
/// Per request: the session cookie is parsed (no I/O) and a lazy [`Session`] goes into the
/// request extensions; after the inner service answered, [`adapter::finish`](crate::adapter::finish) persists or
/// touches the session and the response gets its headers: the `Set-Cookie`, and, whenever the
/// handler read the session (or a cookie is set), `Vary: Cookie` and `Cache-Control: private`.
/// The middleware never fails a request of its own: Redis errors end in the cookie fallback,
/// bad cookies in a fresh session.
///
/// Each request runs in a `DEBUG` span named `session`; its `session.source` field says where
/// the session came from (`redis`, `cookie`, `new`, or `unused`), never which session it was.
///
/// A runnable example, with Redis down on purpose (nothing listens on port 1): the session
/// still works, from its cookie.
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
/// use http::{Request, Response, header};
/// use resilient_session::{
///     KeyRing, RedisManager, Session, SessionConfig, SessionLayer, SessionEngine, Source,
/// };
/// use tower::{Layer, ServiceExt, service_fn};
///
/// let manager = RedisManager::builder().url("redis://127.0.0.1:1").build()?;
/// let keys = KeyRing::from_secret("an-example-secret-of-32-bytes-or-more")?;
/// let engine = SessionEngine::new(manager, SessionConfig::new(keys).mirrored_keys(["visits"]))?;
///
/// let app = SessionLayer::new(engine).layer(service_fn(|request: Request<()>| async move {
///     let session = request.extensions().get::<Session>().cloned().ok_or("no session")?;
///     let visits: u64 = session.get("visits").await?.unwrap_or(0) + 1;
///     session.insert("visits", visits).await?;
///     Ok::<_, Box<dyn std::error::Error + Send + Sync>>(Response::new(visits.to_string()))
/// }));
///
/// let first = app.clone().oneshot(Request::new(())).await?;
/// let set_cookie = first.headers()[header::SET_COOKIE].to_str()?;
/// let cookie = set_cookie.split(';').next().ok_or("name=value")?.to_owned();
/// assert_eq!(first.into_body(), "1");
///
/// let request = Request::builder().header(header::COOKIE, cookie).body(())?;
/// assert_eq!(app.oneshot(request).await?.into_body(), "2");
/// # Ok(()) }
/// ```
#[derive(Debug, Clone)]
pub struct SessionLayer {
    engine: SessionEngine,
}

impl SessionLayer {
    /// A layer serving sessions from `engine`.
    pub fn new(engine: SessionEngine) -> Self {
        Self { engine }
    }
}

impl<S> Layer<S> for SessionLayer {
    type Service = SessionService<S>;

    fn layer(&self, inner: S) -> Self::Service {
        SessionService {
            inner,
            engine: self.engine.clone(),
        }
    }
}

/// The service [`SessionLayer`] wraps around an inner service.
#[derive(Debug, Clone)]
pub struct SessionService<S> {
    inner: S,
    engine: SessionEngine,
}

impl<S, ReqBody, ResBody> Service<Request<ReqBody>> for SessionService<S>
where
    S: Service<Request<ReqBody>, Response = Response<ResBody>>,
{
    type Response = Response<ResBody>;
    type Error = S::Error;
    type Future = ResponseFuture<S::Future, ResBody>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut request: Request<ReqBody>) -> Self::Future {
        let cookies = request.headers().get_all(COOKIE);
        let session = self.engine.open(cookies.iter().map(HeaderValue::as_bytes));
        request.extensions_mut().insert(session.clone());
        let span = session_span();
        let inner = {
            let _entered = span.enter();
            self.inner.call(request)
        };
        ResponseFuture {
            inner,
            session: Some(session),
            finishing: None,
            span,
        }
    }
}

pin_project! {
    /// The response future of [`SessionService`]: the inner service's response, then the
    /// session's end-of-request work.
    pub struct ResponseFuture<F, B> {
        #[pin]
        inner: F,
        session: Option<Session>,
        // The Redis part of the end of the request, with the response it is for.
        finishing: Option<(FinishLater, Response<B>)>,
        span: tracing::Span,
    }
}

/// The span a request's session work runs in; `session.source` is recorded when the handler
/// is done.
fn session_span() -> tracing::Span {
    tracing::debug_span!("session", session.source = tracing::field::Empty)
}

/// Records where the session came from in its request's span: `unused` when the handler did
/// not read it.
fn record_source(span: &tracing::Span, session: &Session) {
    if !span.is_disabled() {
        let source = session.loaded_source().map_or("unused", Source::as_str);
        span.record("session.source", source);
    }
}

impl<F, B, E> Future for ResponseFuture<F, B>
where
    F: Future<Output = Result<Response<B>, E>>,
{
    type Output = Result<Response<B>, E>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let mut this = self.project();
        let _entered = this.span.enter();
        let (mut later, mut response) = match this.finishing.take() {
            Some(finishing) => finishing,
            None => {
                let mut response = ready!(this.inner.as_mut().poll(cx))?;
                let Some(session) = this.session.take() else {
                    // Polled again after completion: nothing left to do for the session.
                    return Poll::Ready(Ok(response));
                };
                record_source(this.span, &session);
                match session.store.try_finish(&session) {
                    // No Redis work left: done without a task or an allocation.
                    Ok(headers) => {
                        headers.apply(response.headers_mut());
                        return Poll::Ready(Ok(response));
                    }
                    Err(later) => (later, response),
                }
            }
        };
        match Pin::new(&mut later).poll(cx) {
            Poll::Ready(headers) => {
                headers.apply(response.headers_mut());
                Poll::Ready(Ok(response))
            }
            Poll::Pending => {
                *this.finishing = Some((later, response));
                Poll::Pending
            }
        }
    }
}

impl<F, B> std::fmt::Debug for ResponseFuture<F, B> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ResponseFuture").finish_non_exhaustive()
    }
}
