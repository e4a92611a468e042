//! Migrating in: sessions created by tower-sessions 0.14 + tower-sessions-redis-store 0.16 and
//! by actix-session 0.11's Redis store are carried over by our example app on their first
//! request: user and counter survive, the old key is gone, one extra Redis round trip on that
//! request (`GET`) and none afterwards. Every app is a real process (`session-bench serve …`:
//! the old apps, and our example apps configured by the `IMPORT_*` variables) on one Redis.

use std::collections::BTreeMap;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use base64::Engine;
use resilient_session::metrics::SESSIONS_IMPORTED as IMPORTED;
use serde_json::{Value, json};
use test_redis::{RedisServer, free_port, wait_for_listener};

/// An app (`session-bench serve <system>`), as a process of its own, with `vars` in its
/// environment.
struct App {
    child: Child,
    base: String,
}

impl App {
    fn start(system: &str, redis: &RedisServer, vars: &[(&str, String)]) -> App {
        let port = free_port();
        let child = Command::new(env!("CARGO_BIN_EXE_session-bench"))
            .args(["serve", system, &port.to_string(), &redis.url()])
            .envs(vars.iter().map(|(name, value)| (*name, value.as_str())))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start the old app");
        wait_for_listener(port, system, Duration::from_secs(20));
        App {
            child,
            base: format!("http://127.0.0.1:{port}"),
        }
    }

    /// Waits until the app reports Redis healthy (ours connect in the background).
    async fn wait_for_redis(&self) {
        let deadline = Instant::now() + Duration::from_secs(10);
        let url = format!("{}/api/health/redis", self.base);
        loop {
            let healthy = reqwest::get(&url)
                .await
                .is_ok_and(|r| r.status().is_success());
            if healthy {
                return;
            }
            assert!(Instant::now() < deadline, "the app did not reach Redis");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// A metric's value on the app's `GET /metrics` (0 when not recorded yet).
    async fn metric(&self, name: &str) -> f64 {
        let page = reqwest::get(format!("{}/metrics", self.base))
            .await
            .expect("metrics")
            .text()
            .await
            .expect("text");
        page.lines()
            .find_map(|line| line.strip_prefix(name)?.trim().parse().ok())
            .unwrap_or(0.0)
    }
}

impl Drop for App {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A browser's cookie jar, by cookie name.
#[derive(Default)]
struct Browser {
    http: reqwest::Client,
    jar: BTreeMap<String, String>,
}

impl Browser {
    async fn send(&mut self, base: &str, method: &str, path: &str, body: Option<Value>) -> Value {
        let method = reqwest::Method::from_bytes(method.as_bytes()).expect("a method");
        let mut request = self.http.request(method, format!("{base}{path}"));
        let cookies: Vec<String> = self.jar.iter().map(|(n, v)| format!("{n}={v}")).collect();
        if !cookies.is_empty() {
            request = request.header("cookie", cookies.join("; "));
        }
        if let Some(body) = body {
            request = request.json(&body);
        }
        let response = request.send().await.expect("the app answers");
        assert!(
            response.status().is_success(),
            "{path}: {}",
            response.status()
        );
        for set in response.headers().get_all("set-cookie") {
            let cookie =
                cookie::Cookie::parse(set.to_str().expect("ASCII").to_owned()).expect("a cookie");
            if cookie.max_age() == Some(cookie::time::Duration::ZERO) {
                self.jar.remove(cookie.name());
            } else {
                self.jar
                    .insert(cookie.name().to_owned(), cookie.value().to_owned());
            }
        }
        response.json().await.unwrap_or(Value::Null)
    }
}

/// Our example app (`ours-axum` or `ours-actix`) with `vars` set, connected to Redis.
async fn our_app(system: &str, redis: &RedisServer, vars: &[(&str, String)]) -> App {
    let app = App::start(system, redis, vars);
    app.wait_for_redis().await;
    app
}

/// Log in and count twice on the old app; returns the browser and the old session's key.
async fn old_session(
    old: &App,
    redis: &RedisServer,
    key_of: impl Fn(&str) -> String,
) -> (Browser, String) {
    let mut browser = Browser::default();
    browser
        .send(
            &old.base,
            "POST",
            "/login",
            Some(json!({"user_id": "ada", "role": "admin"})),
        )
        .await;
    for expected in 1..=2 {
        let counter = browser.send(&old.base, "POST", "/counter", None).await;
        assert_eq!(counter["counter"], expected);
    }
    let cookie = browser.jar.get("id").expect("the old app's cookie").clone();
    let key = key_of(&cookie);
    assert_eq!(
        redis.query::<i64>(&["EXISTS", &key]),
        1,
        "the old session is in Redis"
    );
    (browser, key)
}

/// The first request to our app carries the old session over; the next costs nothing extra.
async fn carried_over(ours: &str, redis: &RedisServer, browser: &mut Browser, old_key: &str) {
    // Warm up: our save script is loaded, so the counts below are the steady state.
    let mut other = Browser::default();
    other
        .send(
            ours,
            "POST",
            "/login",
            Some(json!({"user_id": "bob", "role": "user"})),
        )
        .await;

    redis.reset_stats();
    let me = browser.send(ours, "GET", "/me", None).await;
    assert_eq!(
        me,
        json!({"user_id": "ada", "role": "admin", "source": "redis"})
    );
    // Two round trips: `GET` of the old session with its remaining life (`PTTL`: the import
    // keeps its deadline), the extra one; and the save script, which checks the new session has
    // no tombstone, writes it (its fields, and when it was created) and only then deletes the
    // old key (Redis counts the commands the script runs too).
    assert_eq!(
        redis.commandstats(),
        BTreeMap::from([
            ("del".to_owned(), 1),
            ("evalsha".to_owned(), 1),
            ("exists".to_owned(), 1),
            ("expire".to_owned(), 1),
            ("get".to_owned(), 1),
            ("hincrby".to_owned(), 1),
            ("hset".to_owned(), 2),
            ("pttl".to_owned(), 1),
        ]),
    );
    assert_eq!(
        redis.query::<i64>(&["EXISTS", old_key]),
        0,
        "the old key is gone"
    );
    assert!(!browser.jar.contains_key("id"), "the old cookie is removed");
    assert!(browser.jar.contains_key("session"), "ours replaces it");

    redis.reset_stats();
    let counter = browser.send(ours, "GET", "/counter", None).await;
    assert_eq!(counter, json!({"counter": 2, "source": "redis"}));
    assert_eq!(
        redis.commandstats(),
        BTreeMap::from([("hgetall".to_owned(), 1)]),
        "afterwards, nothing extra"
    );
    let counter = browser.send(ours, "POST", "/counter", None).await;
    assert_eq!(counter["counter"], 3);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tower_sessions_session_is_carried_over() {
    let redis = RedisServer::start();
    let old = App::start("tower-sessions", &redis, &[]);
    // tower-sessions' cookie is the id itself; tower-sessions-redis-store keys it as is.
    let (mut browser, old_key) = old_session(&old, &redis, str::to_owned).await;
    let vars = [
        ("IMPORT_TOWER_SESSIONS_COOKIE", "id".to_owned()),
        ("IMPORT_TOWER_SESSIONS_PREFIX", String::new()),
    ];
    let ours = our_app("ours-axum", &redis, &vars).await;
    carried_over(&ours.base, &redis, &mut browser, &old_key).await;
    assert_eq!(ours.metric(IMPORTED).await, 1.0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_actix_session_session_is_carried_over() {
    let redis = RedisServer::start();
    let old = App::start("actix-session", &redis, &[]);
    // The bench's actix app: private cookies with `Key::from(&[7; 64])`; the key in Redis is the
    // session key inside the cookie.
    let key = cookie::Key::from(&[7u8; 64]);
    let (mut browser, old_key) = old_session(&old, &redis, |value| {
        // As set: percent-encoded.
        let cookie = cookie::Cookie::parse_encoded(format!("id={value}")).expect("a cookie");
        let jar = cookie::CookieJar::new();
        jar.private(&key)
            .decrypt(cookie)
            .expect("a cookie of the actix app")
            .value()
            .to_owned()
    })
    .await;
    let vars = [
        ("IMPORT_ACTIX_SESSION_COOKIE", "id".to_owned()),
        (
            "IMPORT_ACTIX_SESSION_KEY",
            base64::engine::general_purpose::STANDARD.encode([7u8; 64]),
        ),
    ];
    let ours = our_app("ours-actix", &redis, &vars).await;
    carried_over(&ours.base, &redis, &mut browser, &old_key).await;
    assert_eq!(ours.metric(IMPORTED).await, 1.0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_forged_old_cookie_reaches_no_redis_key() {
    let redis = RedisServer::start();
    let vars = [("IMPORT_TOWER_SESSIONS_COOKIE", "id".to_owned())];
    let ours = our_app("ours-axum", &redis, &vars).await;
    let mut browser = Browser::default();
    browser.jar.insert("id".into(), "*".into());
    redis.reset_stats();
    let counter = browser.send(&ours.base, "GET", "/counter", None).await;
    assert_eq!(counter, json!({"counter": 0, "source": "new"}));
    assert_eq!(redis.commandstats(), BTreeMap::new(), "no Redis command");
    assert!(
        browser.jar.contains_key("id"),
        "left alone: it may be another app's cookie of that name"
    );
    assert_eq!(ours.metric(IMPORTED).await, 0.0);
}
