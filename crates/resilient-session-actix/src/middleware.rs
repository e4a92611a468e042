//! [`SessionMiddleware`]: the actix `Transform` driving the core session engine.

use std::future::{Future, Ready, ready};
use std::pin::Pin;
use std::rc::Rc;

use actix_web::HttpMessage;
use actix_web::body::MessageBody;
use actix_web::dev::{Service, ServiceRequest, ServiceResponse, Transform, forward_ready};
use actix_web::http::header::{
    CACHE_CONTROL, COOKIE, HeaderMap, HeaderName, HeaderValue, SET_COOKIE, VARY,
};
use resilient_session::adapter::{self, ResponseHeaders};
use resilient_session::{SessionEngine, Source};
use tracing::Instrument;

/// Adds sessions to an actix-web app: `App::new().wrap(SessionMiddleware::new(engine))`.
///
/// Per request: the session cookie is parsed (no I/O) and a lazy session goes into the request
/// extensions; after the handler, the session is persisted or touched and the response gets its
/// headers: the `Set-Cookie`, and, whenever the handler read the session (or a cookie is set),
/// `Vary: Cookie` and `Cache-Control: private`. Redis errors end in the cookie fallback, bad
/// cookies in a fresh session: the middleware never fails a request of its own.
///
/// Each request runs in a `DEBUG` span named `session`, like the core crate's tower layer: its
/// `session.source` field says where the session came from (`redis`, `cookie`, `new`, or
/// `unused`), never which session it was.
///
/// A runnable example; Redis is down on purpose (nothing listens on port 1):
///
/// ```
/// # #[actix_rt::main]
/// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// use actix_web::{App, HttpResponse, http::header, test, web};
/// use resilient_session_actix::{
///     KeyRing, RedisManager, Session, SessionConfig, SessionMiddleware, SessionEngine,
/// };
///
/// let manager = RedisManager::builder().url("redis://127.0.0.1:1").build()?;
/// let keys = KeyRing::from_secret("an-example-secret-of-32-bytes-or-more")?;
/// let engine = SessionEngine::new(manager, SessionConfig::new(keys))?;
/// let app = test::init_service(
///     App::new().wrap(SessionMiddleware::new(engine)).route(
///         "/login",
///         web::post().to(|session: Session| async move {
///             session.cycle_id().await;
///             let _ = session.insert("user", "ada").await;
///             HttpResponse::Ok().finish()
///         }),
///     ),
/// )
/// .await;
/// let response = test::call_service(&app, test::TestRequest::post().uri("/login").to_request()).await;
/// let headers = response.headers();
/// assert!(headers.contains_key(header::SET_COOKIE));
/// assert_eq!(headers.get(header::VARY).ok_or("Vary")?, "Cookie");
/// assert_eq!(headers.get(header::CACHE_CONTROL).ok_or("Cache-Control")?, "private");
/// # Ok(()) }
/// ```
#[derive(Debug, Clone)]
pub struct SessionMiddleware {
    engine: SessionEngine,
}

impl SessionMiddleware {
    /// Middleware serving sessions from `engine`.
    pub fn new(engine: SessionEngine) -> Self {
        Self { engine }
    }
}

impl<S, B> Transform<S, ServiceRequest> for SessionMiddleware
where
    S: Service<ServiceRequest, Response = ServiceResponse<B>, Error = actix_web::Error> + 'static,
    B: MessageBody + 'static,
{
    type Response = ServiceResponse<B>;
    type Error = actix_web::Error;
    type Transform = InnerSessionMiddleware<S>;
    type InitError = ();
    type Future = Ready<Result<Self::Transform, Self::InitError>>;

    fn new_transform(&self, service: S) -> Self::Future {
        ready(Ok(InnerSessionMiddleware {
            service: Rc::new(service),
            engine: self.engine.clone(),
        }))
    }
}

/// The service [`SessionMiddleware`] wraps around the app; not used directly.
#[doc(hidden)]
#[derive(Debug)]
pub struct InnerSessionMiddleware<S> {
    service: Rc<S>,
    engine: SessionEngine,
}

impl<S, B> Service<ServiceRequest> for InnerSessionMiddleware<S>
where
    S: Service<ServiceRequest, Response = ServiceResponse<B>, Error = actix_web::Error> + 'static,
    B: MessageBody + 'static,
{
    type Response = ServiceResponse<B>;
    type Error = actix_web::Error;
    type Future = Pin<Box<dyn Future<Output = Result<Self::Response, Self::Error>>>>;

    forward_ready!(service);

    fn call(&self, request: ServiceRequest) -> Self::Future {
        let cookies = request.headers().get_all(COOKIE);
        let session = adapter::open(&self.engine, cookies.map(HeaderValue::as_bytes));
        request.extensions_mut().insert(session.clone());
        let span = tracing::debug_span!("session", session.source = tracing::field::Empty);
        let response = {
            let _entered = span.enter();
            self.service.call(request)
        };
        let engine = self.engine.clone();
        let request_span = span.clone();
        Box::pin(
            async move {
                let mut response = response.await?;
                if !request_span.is_disabled() {
                    let source = session.loaded_source().map_or("unused", Source::as_str);
                    request_span.record("session.source", source);
                }
                let headers = match adapter::try_finish(&engine, &session) {
                    Ok(headers) => headers,
                    Err(later) => later.await,
                };
                apply(&headers, response.headers_mut());
                Ok(response)
            }
            .instrument(span),
        )
    }
}

/// [`ResponseHeaders::apply`] for actix's header map.
fn apply(session: &ResponseHeaders, headers: &mut HeaderMap) {
    for header in session.set_cookies() {
        if let Ok(value) = HeaderValue::from_str(header) {
            headers.append(SET_COOKIE, value);
        }
    }
    if !session.is_private() {
        return;
    }
    fn joined(headers: &HeaderMap, name: &HeaderName) -> Option<String> {
        let values: Vec<&str> = headers
            .get_all(name)
            .filter_map(|v| v.to_str().ok())
            .collect();
        (!values.is_empty()).then(|| values.join(", "))
    }
    for (name, fresh, merged) in [
        (
            VARY,
            "Cookie",
            ResponseHeaders::vary as fn(Option<&str>) -> String,
        ),
        (CACHE_CONTROL, "private", ResponseHeaders::cache_control),
    ] {
        // The common case, a response that says neither: no allocation.
        let value = match joined(headers, &name) {
            None => HeaderValue::from_static(fresh),
            Some(existing) => match HeaderValue::from_str(&merged(Some(&existing))) {
                Ok(value) => value,
                Err(_) => continue,
            },
        };
        headers.insert(name, value);
    }
}
