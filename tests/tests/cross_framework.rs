//! The two example apps side by side: one cookie works on both, and each request costs the same
//! Redis commands on both.

use std::collections::BTreeMap;

use conformance::{Client, Framework, TestApp, defaults};
use serde_json::json;
use test_redis::RedisServer;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cookie_from_one_app_works_on_the_other() {
    let redis = RedisServer::start();
    let axum = TestApp::start(Framework::Axum, &redis, defaults).await;
    let actix = TestApp::start(Framework::Actix, &redis, defaults).await;

    for (first, second) in [(&axum, &actix), (&actix, &axum)] {
        let mut client = first.client();
        client.login("ada", "admin").await;
        assert_eq!(client.post("/counter").await.json["counter"], 1);

        client.switch_to(second);
        assert_eq!(
            client.get("/me").await.json,
            json!({"user_id": "ada", "role": "admin", "source": "redis"})
        );
        assert_eq!(client.post("/counter").await.json["counter"], 2);

        client.switch_to(first);
        assert_eq!(client.post("/counter").await.json["counter"], 3);
        let mut elsewhere = client.fork();
        elsewhere.switch_to(second);
        assert_eq!(client.post("/logout").await.status, 204);
        assert_eq!(elsewhere.get("/me").await.status, 401, "logged out on both");
    }
}

/// Each step of a visit, and the Redis commands it caused.
async fn visit(framework: Framework) -> Vec<(&'static str, BTreeMap<String, u64>)> {
    let redis = RedisServer::start();
    let app = TestApp::start(framework, &redis, defaults).await;
    let mut client = app.client();
    let mut saved: Option<Client> = None;
    let mut steps = Vec::new();
    for step in [
        "login",
        "me",
        "increment",
        "read",
        "noop",
        "new visitor",
        "logout",
        "old cookie",
    ] {
        redis.reset_stats();
        match step {
            "login" => drop(client.login("ada", "admin").await),
            "me" => drop(client.get("/me").await),
            "increment" => drop(client.post("/counter").await),
            "read" => drop(client.get("/counter").await),
            "noop" => drop(client.get("/noop").await),
            "new visitor" => drop(app.client().get("/counter").await),
            "logout" => {
                saved = Some(client.fork());
                drop(client.post("/logout").await);
            }
            _ => drop(saved.as_mut().expect("saved").get("/me").await),
        }
        steps.push((step, redis.commandstats()));
    }
    steps
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn both_apps_send_the_same_redis_commands() {
    let axum = visit(Framework::Axum).await;
    let actix = visit(Framework::Actix).await;
    for ((step, on_axum), (_, on_actix)) in axum.iter().zip(&actix) {
        println!("{step:12} axum {on_axum:?}  actix {on_actix:?}");
    }
    assert_eq!(axum, actix);
    // And the budget: a read is one HGETALL, /noop nothing.
    let read = &axum[3].1;
    assert_eq!(read, &BTreeMap::from([("hgetall".to_owned(), 1)]));
    assert!(axum[4].1.is_empty());
}
