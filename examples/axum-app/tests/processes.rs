//! The example app as README runs it: a real process (`cargo run -p example-axum`), configured
//! by its environment only.

use std::net::TcpStream;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use test_redis::{RedisCluster, RedisServer, free_port};

const SECRET: &str = "a-secret-the-instances-share-of-at-least-32-bytes";

/// One example-app process on a free loopback port, killed on drop.
struct Instance {
    child: Child,
    base: String,
}

impl Instance {
    fn start(redis_url: &str) -> Instance {
        Self::start_with(&[("REDIS_URL", redis_url)])
    }

    /// With these Redis variables (`REDIS_URL`, `REDIS_CLUSTER_URLS`, …) and no others.
    fn start_with(redis: &[(&str, &str)]) -> Instance {
        let port = free_port();
        let mut command = Command::new(env!("CARGO_BIN_EXE_example-axum"));
        for name in ["REDIS_URL", "REDIS_CLUSTER_URLS", "REDIS_SENTINEL_URLS"] {
            command.env_remove(name);
        }
        let child = command
            .envs(redis.iter().copied())
            .env("BIND", format!("127.0.0.1:{port}"))
            .env("SESSION_SECRET", SECRET)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start the example app");
        let deadline = Instant::now() + Duration::from_secs(10);
        while TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(Instant::now() < deadline, "the example app did not listen");
            std::thread::sleep(Duration::from_millis(20));
        }
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
    let (status, _) = browser
        .send(
            &app,
            "POST",
            "/login",
            Some(json!({"user_id": "ada", "role": "admin"})),
        )
        .await;
    assert_eq!(status, 200);
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
async fn two_instances_serve_one_user_alternately() {
    let redis = RedisServer::start();
    let instances = [Instance::start(&redis.url()), Instance::start(&redis.url())];
    for instance in &instances {
        instance.wait_for_redis().await;
    }
    let mut browser = Browser::default();
    let (status, _) = browser
        .send(
            &instances[0],
            "POST",
            "/login",
            Some(json!({"user_id": "ada", "role": "admin"})),
        )
        .await;
    assert_eq!(status, 200);
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
    let (status, _) = browser
        .send(
            &app,
            "POST",
            "/login",
            Some(json!({"user_id": "ada", "role": "admin"})),
        )
        .await;
    assert_eq!(status, 200);
    let (_, counter) = browser.send(&app, "POST", "/counter", None).await;
    assert_eq!(counter, json!({"counter": 1, "source": "redis"}));
    let sessions: usize = cluster
        .keys_per_primary("session:{*")
        .iter()
        .map(|(_, keys)| keys)
        .sum();
    assert_eq!(sessions, 1);
}
