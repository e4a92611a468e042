//! The extractor without its layer: a 500 whose message says what to fix.

use axum::Router;
use axum::body::Body;
use axum::http::{Request, StatusCode};
use axum::routing::get;
use resilient_session_axum::Session;
use tower::ServiceExt;

#[tokio::test]
async fn a_missing_layer_is_named_in_the_rejection() {
    async fn handler(_session: Session) -> &'static str {
        "unreachable"
    }
    let app = Router::new().route("/", get(handler));
    let response = app
        .oneshot(Request::get("/").body(Body::empty()).expect("request"))
        .await
        .expect("infallible");
    assert_eq!(response.status(), StatusCode::INTERNAL_SERVER_ERROR);
    let body = axum::body::to_bytes(response.into_body(), 4096)
        .await
        .expect("body");
    let text = String::from_utf8_lossy(&body);
    assert!(text.contains("SessionLayer"), "{text}");
}
