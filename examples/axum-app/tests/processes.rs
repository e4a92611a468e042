//! The example app as README runs it: a real process (`cargo run -p example-axum`), configured
//! by its environment only.

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use test_redis::{RedisCluster, RedisServer, free_port, wait_for_listener};

const SECRET: &str = "a-secret-the-instances-share-of-at-least-32-bytes";

/// One example-app process on a free loopback port, killed on drop.
struct Instance {
    child: Child,
    base: String,
}

/// The example app's process on `port`, with the shared secret, no Redis variables of the
/// environment it runs in, and `vars` on top.
fn app(port: u16, vars: &[(&str, &str)]) -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_example-axum"));
    for name in ["REDIS_URL", "REDIS_CLUSTER_URLS", "REDIS_SENTINEL_URLS"] {
        command.env_remove(name);
    }
    command
        .env("BIND", format!("127.0.0.1:{port}"))
        .env("SESSION_SECRET", SECRET)
        .envs(vars.iter().copied());
    command
}

impl Instance {
    fn start(redis_url: &str) -> Instance {
        Self::start_with(&[("REDIS_URL", redis_url)])
    }

    /// With these Redis variables (`REDIS_URL`, `REDIS_CLUSTER_URLS`, …) and no others.
    fn start_with(redis: &[(&str, &str)]) -> Instance {
        let port = free_port();
        let child = app(port, redis)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start the example app");
        wait_for_listener(port, "the example app", Duration::from_secs(10));
        Instance {
            child,
            base: format!("http://127.0.0.1:{port}"),
        }
    }
}

impl Instance {
    /// Waits until the app reports Redis healthy (it connects in the background).
    async fn wait_for_redis(&self) {
        let deadline = Instant::now() + Duration::from_secs(10);
        let mut browser = Browser::default();
        while browser.send(self, "GET", "/api/health/redis", None).await.0 != 200 {
            assert!(Instant::now() < deadline, "the app did not reach Redis");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

impl Drop for Instance {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A browser with a jar for one cookie, that may talk to any instance.
#[derive(Default)]
struct Browser {
    http: reqwest::Client,
    cookie: Option<String>,
}

impl Browser {
    /// `POST /login` as ada, the admin; the app must accept it.
    async fn login_ada(&mut self, at: &Instance) {
        let body = json!({"user_id": "ada", "role": "admin"});
        let (status, _) = self.send(at, "POST", "/login", Some(body)).await;
        assert_eq!(status, 200);
    }

    async fn send(
        &mut self,
        at: &Instance,
        method: &str,
        path: &str,
        body: Option<Value>,
    ) -> (u16, Value) {
        let method = reqwest::Method::from_bytes(method.as_bytes()).expect("a method");
        let mut request = self.http.request(method, format!("{}{path}", at.base));
        if let Some(cookie) = &self.cookie {
            request = request.header("cookie", cookie);
        }
        if let Some(body) = body {
            request = request.json(&body);
        }
        let response = request.send().await.expect("the app answers");
        let status = response.status().as_u16();
        for set in response.headers().get_all("set-cookie") {
            let set = set.to_str().expect("ASCII Set-Cookie");
            let pair = set.split(';').next().unwrap_or_default();
            let removed = set.to_ascii_lowercase().contains("max-age=0");
            self.cookie = (!removed).then(|| pair.to_owned());
        }
        let json = response.json().await.unwrap_or(Value::Null);
        (status, json)
    }
}

#[tokio::test]
async fn runs_with_no_redis_at_all_sessions_in_the_cookie() {
    // Nothing listens there.
    let app = Instance::start(&format!("redis://127.0.0.1:{}", free_port()));
    let mut browser = Browser::default();
    browser.login_ada(&app).await;
    for expected in 1..=2 {
        let (status, counter) = browser.send(&app, "POST", "/counter", None).await;
        assert_eq!(status, 200);
        assert_eq!(counter, json!({"counter": expected, "source": "cookie"}));
    }
    let (_, me) = browser.send(&app, "GET", "/me", None).await;
    assert_eq!(me["user_id"], "ada");
    let (status, health) = browser.send(&app, "GET", "/api/health/redis", None).await;
    assert_eq!(status, 503);
    assert_eq!(health["status"], "unhealthy");
}

#[tokio::test]
async fn an_empty_redis_url_reads_as_unset() {
    // `REDIS_URL=` (set, but empty) is the default URL, as if unset: the app starts and serves.
    let app = Instance::start("");
    let mut browser = Browser::default();
    browser.login_ada(&app).await;
    let (status, counter) = browser.send(&app, "POST", "/counter", None).await;
    assert_eq!(status, 200);
    assert_eq!(counter["counter"], 1);
}

/// Runs the app with these variables, expecting it not to start: the line it printed why.
fn refused_start(vars: &[(&str, &str)]) -> String {
    let output = app(free_port(), vars)
        .output()
        .expect("run the example app");
    assert!(!output.status.success(), "{vars:?} must stop the app");
    let stderr = String::from_utf8_lossy(&output.stderr);
    let message = stderr
        .lines()
        .find(|line| line.starts_with("Error: "))
        .unwrap_or_else(|| panic!("no error line in {stderr}"))
        .to_owned();
    // Said for a person: no struct dump, each cause once.
    assert!(!message.contains('{'), "{message}");
    let causes: Vec<&str> = message.split(": ").collect();
    let mut unique = causes.clone();
    unique.dedup();
    assert_eq!(causes, unique, "a cause repeated: {message}");
    message
}

#[test]
fn a_bad_setting_stops_the_app_with_a_message_naming_the_variable() {
    let message = refused_start(&[("REDIS_URL", "localhost:6379")]);
    assert!(
        message.starts_with("Error: REDIS_URL is not a Redis URL"),
        "{message}"
    );
    let message = refused_start(&[("SESSION_SECRET", "too short")]);
    assert!(
        message.starts_with("Error: SESSION_SECRET: ") && message.contains("is 9 bytes long"),
        "{message}"
    );
    assert!(
        !message.contains("too short"),
        "the secret is never repeated: {message}"
    );
}

#[tokio::test]
async fn two_instances_serve_one_user_alternately() {
    let redis = RedisServer::start();
    let instances = [Instance::start(&redis.url()), Instance::start(&redis.url())];
    for instance in &instances {
        instance.wait_for_redis().await;
    }
    let mut browser = Browser::default();
    browser.login_ada(&instances[0]).await;
    for expected in 1..=6 {
        let at = &instances[expected % 2];
        let (status, counter) = browser.send(at, "POST", "/counter", None).await;
        assert_eq!(status, 200);
        assert_eq!(counter, json!({"counter": expected, "source": "redis"}));
        let (_, me) = browser.send(at, "GET", "/me", None).await;
        assert_eq!(
            me,
            json!({"user_id": "ada", "role": "admin", "source": "redis"})
        );
    }
    let keys: Vec<String> = redis.query(&["KEYS", "session:{*"]);
    assert_eq!(
        keys.len(),
        1,
        "one session, whichever instance served it: {keys:?}"
    );

    let mut copy = Browser {
        cookie: browser.cookie.clone(),
        ..Browser::default()
    };
    let (status, _) = browser.send(&instances[1], "POST", "/logout", None).await;
    assert_eq!(status, 204);
    let (status, _) = copy.send(&instances[0], "GET", "/me", None).await;
    assert_eq!(status, 401, "logged out on both");
}

#[tokio::test]
async fn redis_cluster_urls_put_sessions_in_a_cluster() {
    let cluster = RedisCluster::start(3, 1);
    let seeds = cluster.urls()[..2].join(",");
    let app = Instance::start_with(&[("REDIS_CLUSTER_URLS", &seeds)]);
    app.wait_for_redis().await;
    let mut browser = Browser::default();
    browser.login_ada(&app).await;
    let (_, counter) = browser.send(&app, "POST", "/counter", None).await;
    assert_eq!(counter, json!({"counter": 1, "source": "redis"}));
    let sessions: usize = cluster
        .keys_per_primary("session:{*")
        .iter()
        .map(|(_, keys)| keys)
        .sum();
    assert_eq!(sessions, 1);
}

/// The app's `GET /metrics` page, in Prometheus text format.
struct Scrape(String);

impl Scrape {
    async fn of(at: &Instance) -> Scrape {
        let response = reqwest::get(format!("{}/metrics", at.base))
            .await
            .expect("the app answers");
        assert_eq!(response.status().as_u16(), 200);
        let content_type = response.headers()["content-type"].to_str().expect("ASCII");
        assert_eq!(content_type, "text/plain; version=0.0.4");
        Scrape(response.text().await.expect("a text body"))
    }

    /// The sum of the samples of `name` that carry every label of `labels` (`key="value"`).
    fn sum(&self, name: &str, labels: &[&str]) -> f64 {
        self.0
            .lines()
            .filter(|line| !line.starts_with('#'))
            .filter_map(|line| line.rsplit_once(' '))
            .filter(|(series, _)| {
                let (metric, rest) = series.split_once('{').unwrap_or((series, ""));
                metric == name && labels.iter().all(|label| rest.contains(label))
            })
            .map(|(_, value)| value.parse::<f64>().expect("a number"))
            .sum()
    }
}

#[tokio::test]
async fn metrics_show_a_redis_kill_and_restart() {
    const COMMANDS: &str = "resilient_session_redis_commands_total";
    const FAILURES: &str = "resilient_session_redis_failures_total";
    const TRANSITIONS: &str = "resilient_session_breaker_transitions_total";
    const BREAKER_OPEN: &str = "resilient_session_breaker_open";
    const FALLBACK_READS: &str = "resilient_session_fallback_reads_total";
    const FALLBACK_WRITES: &str = "resilient_session_fallback_writes_total";
    const LATENCY: &str = "resilient_session_redis_command_duration_seconds_count";
    let load_ok = [r#"operation="session load""#, r#"outcome="ok""#];
    let unavailable = [r#"outcome="unavailable""#];

    let mut redis = RedisServer::start();
    let app = Instance::start(&redis.url());
    app.wait_for_redis().await;
    let mut browser = Browser::default();
    let login = json!({"user_id": "ada", "role": "admin"});
    assert_eq!(
        browser.send(&app, "POST", "/login", Some(login)).await.0,
        200
    );
    for expected in 1..=2 {
        let (_, counter) = browser.send(&app, "POST", "/counter", None).await;
        assert_eq!(counter, json!({"counter": expected, "source": "redis"}));
    }
    let healthy = Scrape::of(&app).await;
    assert!(
        healthy
            .0
            .contains("# HELP resilient_session_redis_commands_total")
    );
    assert!(healthy.sum(COMMANDS, &load_ok) >= 2.0, "{}", healthy.0);
    assert!(healthy.sum(LATENCY, &[r#"operation="session load""#]) >= 2.0);
    assert_eq!(healthy.sum(COMMANDS, &unavailable), 0.0, "{}", healthy.0);
    assert_eq!(healthy.sum(FALLBACK_READS, &[]), 0.0);
    assert_eq!(healthy.sum(BREAKER_OPEN, &[]), 0.0);

    // Redis killed: the counter goes on in the cookie, and the page says so.
    redis.kill();
    for expected in 3..=10 {
        let (status, counter) = browser.send(&app, "POST", "/counter", None).await;
        assert_eq!(status, 200);
        assert_eq!(counter, json!({"counter": expected, "source": "cookie"}));
    }
    let outage = Scrape::of(&app).await;
    assert_eq!(outage.sum(FALLBACK_READS, &[]), 8.0, "{}", outage.0);
    assert_eq!(outage.sum(FALLBACK_WRITES, &[]), 8.0, "{}", outage.0);
    assert!(outage.sum(COMMANDS, &unavailable) >= 8.0, "{}", outage.0);
    assert!(outage.sum(FAILURES, &[r#"kind="connection""#]) >= 1.0);
    assert!(outage.sum(FAILURES, &[r#"kind="circuit_open""#]) >= 1.0);
    assert!(outage.sum(TRANSITIONS, &[r#"to="open""#]) >= 1.0);
    assert_eq!(outage.sum(TRANSITIONS, &[r#"to="closed""#]), 0.0);
    assert_eq!(outage.sum(BREAKER_OPEN, &[]), 1.0, "{}", outage.0);
    assert_eq!(
        outage.sum(COMMANDS, &load_ok),
        healthy.sum(COMMANDS, &load_ok),
        "no load reached Redis"
    );

    // Redis back: the breaker closes by itself and sessions come from Redis again.
    redis.restart();
    app.wait_for_redis().await;
    let (_, counter) = browser.send(&app, "POST", "/counter", None).await;
    assert_eq!(counter, json!({"counter": 11, "source": "redis"}));
    let recovered = Scrape::of(&app).await;
    assert!(recovered.sum(TRANSITIONS, &[r#"to="half_open""#]) >= 1.0);
    assert!(recovered.sum(TRANSITIONS, &[r#"to="closed""#]) >= 1.0);
    assert_eq!(recovered.sum(BREAKER_OPEN, &[]), 0.0, "{}", recovered.0);
    assert!(recovered.sum(COMMANDS, &load_ok) > outage.sum(COMMANDS, &load_ok));
    assert_eq!(
        recovered.sum(FALLBACK_READS, &[]),
        outage.sum(FALLBACK_READS, &[]),
        "no fallback once Redis is back"
    );
}
