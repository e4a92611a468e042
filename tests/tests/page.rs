//! The example page (`GET /`) and its forms, over HTTP: what a browser without JavaScript sends,
//! and what a page of another site could make it send.

use std::time::Duration;

use conformance::{Framework, TestApp, defaults};
use serde_json::json;
use test_redis::RedisServer;

conformance::scenarios!(
    the_page_is_html_that_no_other_site_may_frame,
    forms_log_in_count_and_log_out_back_to_the_page,
    forms_posted_from_another_site_are_refused,
    a_login_body_is_json_or_a_form,
    counting_when_nothing_is_known_goes_back_to_a_page_that_says_so,
);

const FORM: &str = "application/x-www-form-urlencoded";

async fn the_page_is_html_that_no_other_site_may_frame(framework: Framework) {
    let redis = RedisServer::start();
    let app = TestApp::start(framework, &redis, defaults).await;
    let mut client = app.client();
    let page = client.get("/").await;
    assert_eq!(page.status, 200);
    assert_eq!(
        page.header("content-type").as_deref(),
        Some("text/html; charset=utf-8")
    );
    assert_eq!(page.header("x-frame-options").as_deref(), Some("DENY"));
    assert!(
        page.text
            .contains(r#"<form id="login" method="post" action="/login">"#)
    );
    assert!(
        page.header("cache-control")
            .is_some_and(|v| v.contains("private")),
        "the page reads the session: {:?}",
        page.headers
    );
}

async fn forms_log_in_count_and_log_out_back_to_the_page(framework: Framework) {
    let redis = RedisServer::start();
    let app = TestApp::start(framework, &redis, defaults).await;
    let mut client = app.client();
    let same_origin = [("content-type", FORM), ("sec-fetch-site", "same-origin")];

    let login = client
        .post_with("/login", &same_origin, "user_id=ada&role=admin")
        .await;
    assert_eq!(login.status, 303, "{}", login.text);
    assert_eq!(login.header("location").as_deref(), Some("/"));
    let counted = client.post_with("/counter", &same_origin, "").await;
    assert_eq!(counted.status, 303);

    let page = client.get("/").await;
    assert!(
        page.text.contains(r#"<strong id="user">ada</strong>"#),
        "{}",
        page.text
    );
    assert!(
        page.text.contains(r#"<strong id="counter">1</strong>"#),
        "{}",
        page.text
    );
    assert!(
        page.text.contains(r#"<strong id="source">redis</strong>"#),
        "{}",
        page.text
    );

    let others = client.post_with("/logout-others", &same_origin, "").await;
    assert_eq!(others.status, 303);
    let logout = client.post_with("/logout", &same_origin, "").await;
    assert_eq!(logout.status, 303);
    assert_eq!(client.get("/me").await.status, 401);
}

async fn forms_posted_from_another_site_are_refused(framework: Framework) {
    let redis = RedisServer::start();
    let app = TestApp::start(framework, &redis, defaults).await;
    let mut client = app.client();
    client.login("ada", "admin").await;

    // Another site's form, in a browser that says where the request comes from...
    for site in ["cross-site", "same-site"] {
        let headers = [("content-type", FORM), ("sec-fetch-site", site)];
        for path in ["/counter", "/logout", "/logout-everywhere"] {
            let reply = client.post_with(path, &headers, "").await;
            assert_eq!(reply.status, 403, "{site} {path}: {}", reply.text);
        }
        // ... cannot log the browser in as the attacker's user either.
        let mut visitor = app.client();
        let login = visitor
            .post_with("/login", &headers, "user_id=mallory&role=admin")
            .await;
        assert_eq!(login.status, 403);
        assert_eq!(visitor.get("/me").await.status, 401);
    }
    // ... and in one that only sends `Origin`.
    let headers = [("content-type", FORM), ("origin", "https://evil.example")];
    assert_eq!(client.post_with("/counter", &headers, "").await.status, 403);

    // Nothing of it happened.
    let me = client.get("/me").await;
    assert_eq!(me.json["user_id"], "ada");
    assert_eq!(client.get("/counter").await.json["counter"], 0);
}

async fn a_login_body_is_json_or_a_form(framework: Framework) {
    let redis = RedisServer::start();
    let app = TestApp::start(framework, &redis, defaults).await;
    let body = r#"{"user_id":"ada","role":"admin"}"#;
    let expected = json!({"error": "expected {\"user_id\": ..., \"role\": ...}"});

    let mut client = app.client();
    let reply = client
        .post_with(
            "/login",
            &[("content-type", "application/json; charset=utf-8")],
            body,
        )
        .await;
    assert_eq!(reply.status, 200, "{}", reply.text);
    assert_eq!(reply.json, json!({"user_id": "ada", "role": "admin"}));

    // JSON dressed as text (what a form of another site can send without a preflight) is not a
    // login; nor is a body without a type, or a form without its fields.
    for (headers, body) in [
        (vec![("content-type", "text/plain")], body),
        (vec![], body),
        (vec![("content-type", FORM)], "user_id=ada"),
        (vec![("content-type", "application/json")], "{not json"),
    ] {
        let mut client = app.client();
        let reply = client.post_with("/login", &headers, body).await;
        assert_eq!(reply.status, 400, "{headers:?} {body}: {}", reply.text);
        assert_eq!(reply.json, expected);
        assert!(
            reply.set_cookies.is_empty(),
            "no session for a refused login"
        );
    }
}

async fn counting_when_nothing_is_known_goes_back_to_a_page_that_says_so(framework: Framework) {
    let mut redis = RedisServer::start();
    let app = TestApp::start(framework, &redis, |c| {
        defaults(c).fallback_max_age(Duration::from_secs(1))
    })
    .await;
    let mut client = app.client();
    client.login("ada", "admin").await;
    tokio::time::sleep(Duration::from_millis(2100)).await;
    // Redis gone, and the cookie too old to stand in for it: the counter is not known.
    redis.kill();
    let same_origin = [("content-type", FORM), ("sec-fetch-site", "same-origin")];
    let counted = client.post_with("/counter", &same_origin, "").await;
    assert_eq!(
        counted.status, 303,
        "back to the page, not a JSON error: {}",
        counted.text
    );
    let page = client.get("/").await;
    assert_eq!(page.status, 200);
    assert!(
        page.text
            .contains("unknown (Redis is unavailable and the cookie cannot stand in)"),
        "{}",
        page.text
    );
    // The JSON route still says 503.
    assert_eq!(client.post("/counter").await.status, 503);
}
