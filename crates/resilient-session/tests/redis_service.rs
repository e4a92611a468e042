//! `RedisService` round trips against a real redis-server: values, namespaces and TTLs as Redis
//! sees them, typed errors, and the number of commands each operation sends.

use std::collections::BTreeMap;
use std::time::Duration;

use resilient_session::{RedisManager, RedisService};
use serde::{Deserialize, Serialize};
use test_redis::RedisServer;

mod common;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct User {
    id: u32,
    role: String,
}

fn user(id: u32) -> User {
    User {
        id,
        role: "admin".into(),
    }
}

async fn service(server: &RedisServer) -> RedisService {
    let manager = RedisManager::builder()
        .url(server.url())
        .build()
        .expect("manager builds");
    common::until_connected(&manager).await;
    RedisService::new(manager)
}

/// Remaining TTL in milliseconds as Redis reports it (-1: no TTL, -2: no key).
fn pttl(server: &RedisServer, key: &str) -> i64 {
    server.query(&["PTTL", key])
}

#[tokio::test]
async fn set_get_with_namespace_and_ttl() {
    let server = RedisServer::start();
    let users = service(&server).await.namespace("users");

    users
        .set("1", &user(1), Some(Duration::from_secs(60)))
        .await
        .expect("set");
    assert_eq!(users.get::<User>("1").await.expect("get"), Some(user(1)));

    // The key Redis holds is namespaced, its value is JSON, its TTL is set.
    let raw: String = server.query(&["GET", "users:1"]);
    assert_eq!(raw, r#"{"id":1,"role":"admin"}"#);
    let ttl = pttl(&server, "users:1");
    assert!((59_000..=60_000).contains(&ttl), "TTL {ttl} ms");
    assert_eq!(
        server.query::<i64>(&["EXISTS", "1"]),
        0,
        "no key outside the namespace"
    );

    // Without a TTL the key persists; without a namespace the key is bare.
    let plain = users.namespace("");
    plain.set("bare", &42u8, None).await.expect("set");
    assert_eq!(pttl(&server, "bare"), -1);
    assert_eq!(plain.get::<u8>("bare").await.expect("get"), Some(42));
    assert_eq!(users.get::<User>("missing").await.expect("get"), None);
}

#[tokio::test]
async fn delete_exists_expire() {
    let server = RedisServer::start();
    let svc = service(&server).await.namespace("ns");
    svc.set("k", &"v", None).await.expect("set");

    assert!(svc.exists("k").await.expect("exists"));
    assert!(
        svc.expire("k", Duration::from_secs(30))
            .await
            .expect("expire")
    );
    let ttl = pttl(&server, "ns:k");
    assert!((29_000..=30_000).contains(&ttl), "TTL {ttl} ms");

    assert!(svc.delete("k").await.expect("delete"));
    assert!(!svc.delete("k").await.expect("delete again"));
    assert!(!svc.exists("k").await.expect("exists"));
    assert!(
        !svc.expire("k", Duration::from_secs(1))
            .await
            .expect("expire")
    );
    assert_eq!(server.query::<i64>(&["EXISTS", "ns:k"]), 0);
}

#[tokio::test]
async fn mget_and_mset_with_and_without_ttl() {
    let server = RedisServer::start();
    let svc = service(&server).await.namespace("m");

    svc.mset(&[("a", user(1)), ("b", user(2))], None)
        .await
        .expect("mset");
    assert_eq!(pttl(&server, "m:a"), -1);
    assert_eq!(pttl(&server, "m:b"), -1);

    server.reset_stats();
    svc.mset(
        &[("c", user(3)), ("d", user(4))],
        Some(Duration::from_secs(10)),
    )
    .await
    .expect("mset with ttl");
    // One pipeline: two SETs with PX, no separate EXPIRE.
    assert_eq!(
        server.commandstats(),
        BTreeMap::from([("set".to_owned(), 2)])
    );
    for key in ["m:c", "m:d"] {
        let ttl = pttl(&server, key);
        assert!((9_000..=10_000).contains(&ttl), "{key}: TTL {ttl} ms");
    }

    let found: Vec<Option<User>> = svc.mget(&["a", "missing", "d"]).await.expect("mget");
    assert_eq!(found, vec![Some(user(1)), None, Some(user(4))]);
    assert!(svc.mget::<User>(&[]).await.expect("empty mget").is_empty());
    svc.mset::<&str, User>(&[], None).await.expect("empty mset");
}

#[tokio::test]
async fn a_value_that_does_not_decode_is_a_typed_error() {
    let server = RedisServer::start();
    let svc = service(&server).await.namespace("bad");
    let _: () = server.query(&["SET", "bad:json", "{not json"]);
    let _: () = server.query(&["SET", "bad:shape", r#"{"id":"x"}"#]);

    for key in ["json", "shape"] {
        let err = svc.get::<User>(key).await.expect_err("does not decode");
        assert!(err.is_decode(), "{err}");
        assert!(!err.is_unavailable());
        assert!(err.to_string().contains(&format!("bad:{key}")), "{err}");
        assert!(
            std::error::Error::source(&err).is_some(),
            "keeps serde's error"
        );
    }
    let err = svc
        .mget::<User>(&["json"])
        .await
        .expect_err("mget decodes too");
    assert!(err.is_decode());

    // A key of the wrong type is Redis's answer, not an outage.
    let _: () = server.query(&["HSET", "bad:hash", "f", "v"]);
    let err = svc.get::<User>("hash").await.expect_err("WRONGTYPE");
    assert!(!err.is_unavailable() && !err.is_decode(), "{err}");
}

#[tokio::test]
async fn redis_unavailable_is_a_typed_error() {
    let mut server = RedisServer::start();
    let svc = service(&server).await;
    server.kill();
    let err = svc.get::<User>("k").await.expect_err("redis is down");
    assert!(err.is_unavailable(), "{err}");
    assert!(!err.is_decode());
}

#[tokio::test]
async fn a_get_sends_exactly_one_command() {
    let server = RedisServer::start();
    let svc = service(&server).await;
    server.reset_stats();
    let _: Option<String> = svc.get("k").await.expect("get");
    assert_eq!(
        server.commandstats(),
        BTreeMap::from([("get".to_owned(), 1)]),
        "no PING or anything else per operation"
    );
}

#[tokio::test]
async fn a_zero_ttl_is_refused_before_redis() {
    let server = RedisServer::start();
    let svc = service(&server).await;
    server.reset_stats();
    let err = svc
        .set("k", &1, Some(Duration::ZERO))
        .await
        .expect_err("zero TTL");
    assert!(err.to_string().contains("TTL"), "{err}");
    assert_eq!(server.total_commands(), 0);
}
