//! The `GET /api/health/redis` handler.

use std::future::Future;
use std::pin::Pin;

use axum_core::body::Body;
use axum_core::response::Response;
use http::header::{CACHE_CONTROL, CONTENT_TYPE};
use http::{HeaderValue, StatusCode};
use resilient_session::{HealthReport, SessionEngine};

/// The future a [`health_handler`] returns.
pub type HealthFuture = Pin<Box<dyn Future<Output = Response> + Send>>;

/// A handler for `GET /api/health/redis`: one `PING` through the breaker (none while it is
/// open), then 200 with the health JSON when Redis is healthy, 503 when not.
///
/// ```no_run
/// # fn app(engine: resilient_session_axum::SessionEngine) -> axum::Router {
/// use axum::{Router, routing::get};
/// use resilient_session_axum::health_handler;
///
/// Router::new().route("/api/health/redis", get(health_handler(engine)))
/// # }
/// ```
pub fn health_handler(engine: SessionEngine) -> impl Fn() -> HealthFuture + Clone + Send + Sync {
    move || {
        let engine = engine.clone();
        Box::pin(async move { health_response(&engine.health().await) })
    }
}

/// The HTTP response for a health report: status 200 or 503, JSON body, not cacheable.
pub fn health_response(report: &HealthReport) -> Response {
    let status = StatusCode::from_u16(report.status_code()).unwrap_or(StatusCode::OK);
    let body = serde_json::to_vec(report).unwrap_or_default();
    let mut response = Response::new(Body::from(body));
    *response.status_mut() = status;
    let headers = response.headers_mut();
    headers.insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    headers.insert(CACHE_CONTROL, HeaderValue::from_static("no-store"));
    response
}
