//! The `GET /api/health/redis` handler.

use std::future::Future;
use std::pin::Pin;

use actix_web::HttpResponse;
use actix_web::http::StatusCode;
use actix_web::http::header::{CACHE_CONTROL, ContentType};
use resilient_session::{HealthReport, SessionEngine};

/// A handler for `GET /api/health/redis`: one `PING` through the breaker (none while it is
/// open), then 200 with the health JSON when Redis is healthy, 503 when not.
///
/// ```no_run
/// # fn app(engine: resilient_session_actix::SessionEngine) {
/// use actix_web::{App, web};
/// use resilient_session_actix::health_handler;
///
/// App::new().route("/api/health/redis", web::get().to(health_handler(engine)));
/// # }
/// ```
pub fn health_handler(
    engine: SessionEngine,
) -> impl Fn() -> Pin<Box<dyn Future<Output = HttpResponse>>> + Clone + 'static {
    move || {
        let engine = engine.clone();
        Box::pin(async move { health_response(&engine.health().await) })
    }
}

/// The HTTP response for a health report: status 200 or 503, JSON body, not cacheable.
pub fn health_response(report: &HealthReport) -> HttpResponse {
    let status = StatusCode::from_u16(report.status_code()).unwrap_or(StatusCode::OK);
    HttpResponse::build(status)
        .content_type(ContentType::json())
        .insert_header((CACHE_CONTROL, "no-store"))
        .body(serde_json::to_vec(report).unwrap_or_default())
}
