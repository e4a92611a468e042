//! The extractor and `SessionExt` without the middleware: a 500 whose message says what to fix.

use actix_web::{App, HttpRequest, test, web};
use resilient_session_actix::{Session, SessionExt};

#[actix_rt::test]
async fn a_missing_middleware_is_named_in_the_error() {
    async fn with_extractor(_session: Session) -> &'static str {
        "unreachable"
    }
    async fn with_ext(request: HttpRequest) -> actix_web::Result<&'static str> {
        request.get_session()?;
        Ok("unreachable")
    }
    let app = test::init_service(
        App::new()
            .route("/extractor", web::get().to(with_extractor))
            .route("/ext", web::get().to(with_ext)),
    )
    .await;
    for uri in ["/extractor", "/ext"] {
        let response =
            test::call_service(&app, test::TestRequest::get().uri(uri).to_request()).await;
        assert_eq!(response.status(), 500, "{uri}");
        let body = test::read_body(response).await;
        let text = String::from_utf8_lossy(&body);
        assert!(text.contains("SessionMiddleware"), "{uri}: {text}");
    }
}
