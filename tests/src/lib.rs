//! The conformance harness: starts an example app (in-process, on a real loopback socket)
//! against a private redis-server, and talks to it over HTTP with a client whose cookie jar the
//! scenarios control (save a copy, tamper, replay).
//!
//! A scenario is an `async fn(Framework)`; `tests/conformance.rs` runs each one against every
//! framework, so a difference between the adapters is a failing test.

use std::net::SocketAddr;
use std::time::Duration;

use resilient_session::{KeyRing, RedisManagerBuilder, SessionConfig, SessionEngine};
use serde_json::Value;

mod topology;

/// The README's quick starts (axum and actix-web), compiled with this crate's doctests.
#[doc = include_str!("../../README.md")]
#[cfg(doctest)]
pub struct ReadmeDoctests;

pub use topology::TestRedis;

/// Runs each scenario (an `async fn(Framework)` in scope) against each framework, as its own
/// test: `conformance::scenarios!(login_works, logout_works);` makes `axum::login_works`,
/// `actix::login_works`, … so the test output counts them per framework.
///
/// Scenarios generic over the deployment (`async fn(Framework)` with a type parameter
/// `R: TestRedis`) run on a given one: `scenarios!(for test_redis::RedisCluster => cluster: a, b)` (a path: the type is named from inside the generated modules)
/// makes `cluster::axum::a`, `cluster::actix::a`, …
#[macro_export]
macro_rules! scenarios {
    (for $redis:ty => $deployment:ident: $($scenario:ident),* $(,)?) => {
        mod $deployment {
            mod axum {
                $(
                    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                    async fn $scenario() {
                        super::super::$scenario::<$redis>($crate::Framework::Axum).await;
                    }
                )*
            }
            mod actix {
                $(
                    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                    async fn $scenario() {
                        super::super::$scenario::<$redis>($crate::Framework::Actix).await;
                    }
                )*
            }
        }
    };
    ($($scenario:ident),* $(,)?) => {
        mod axum {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $scenario() {
                    super::$scenario($crate::Framework::Axum).await;
                }
            )*
        }
        mod actix {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $scenario() {
                    super::$scenario($crate::Framework::Actix).await;
                }
            )*
        }
    };
}

/// The ACL line README documents, as `redis-server` arguments.
pub const ACL: [&str; 29] = [
    "--user",
    "sessions",
    "on",
    ">sessions-password",
    "~session:*",
    "resetchannels",
    "-@all",
    "+hgetall",
    "+expire",
    "+evalsha",
    "+eval",
    "+del",
    "+set",
    "+get",
    "+exists",
    "+hincrby",
    "+hget",
    "+hset",
    "+hdel",
    "+hmget",
    "+pttl",
    "+zadd",
    "+zrange",
    "+zrem",
    "+zremrangebyscore",
    "+zscore",
    "+zcard",
    "+pexpireat",
    "+info",
];

/// The secret every test app uses (tests forge cookies with it).
pub const SECRET: &str = "conformance-suite-secret-of-at-least-32-bytes";

/// The web frameworks the example app exists for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Framework {
    /// `examples/axum-app`.
    Axum,
    /// `examples/actix-app`.
    Actix,
}

/// Which example app of a framework runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Example {
    /// The counter app (`example-axum`, `example-actix`): the HTTP contract most tests use.
    Counter,
    /// The auth app (`example-axum-login`: axum-login and axum-messages; `example-actix-identity`:
    /// actix-identity and actix-web-flash-messages), with its own session configuration.
    Auth,
}

/// A running example app.
#[derive(Debug)]
pub struct TestApp {
    /// `http://127.0.0.1:<port>`.
    pub base: String,
    /// The app's session store (for its stats and config).
    pub store: SessionEngine,
    server: Server,
}

#[derive(Debug)]
enum Server {
    Axum(tokio::task::JoinHandle<()>),
    Actix(actix_web::dev::ServerHandle),
}

impl TestApp {
    /// Starts `framework`'s example app on a free port against `redis`, with the example's
    /// session configuration changed by `tweak`. The manager has the default settings except a
    /// short breaker back-off (100 ms to 500 ms), so tests see recovery quickly.
    pub async fn start(
        framework: Framework,
        redis: &impl TestRedis,
        tweak: impl FnOnce(SessionConfig) -> SessionConfig,
    ) -> TestApp {
        Self::start_with(framework, redis.manager(), redis, tweak).await
    }

    /// Like [`start`](Self::start), with manager settings of the test's own.
    pub async fn start_with(
        framework: Framework,
        manager: RedisManagerBuilder,
        redis: &impl TestRedis,
        tweak: impl FnOnce(SessionConfig) -> SessionConfig,
    ) -> TestApp {
        Self::launch(framework, manager, tweak, redis.is_running()).await
    }

    /// Like [`start_with`](Self::start_with), for a manager that is not meant to reach Redis
    /// (a refused certificate): the app starts without waiting for a connection.
    pub async fn start_unconnected(
        framework: Framework,
        manager: RedisManagerBuilder,
        tweak: impl FnOnce(SessionConfig) -> SessionConfig,
    ) -> TestApp {
        Self::launch(framework, manager, tweak, false).await
    }

    /// Starts `framework`'s auth example app (see [`Example::Auth`]) against `redis`, with its
    /// session configuration changed by `tweak`.
    pub async fn start_auth(
        framework: Framework,
        redis: &impl TestRedis,
        tweak: impl FnOnce(SessionConfig) -> SessionConfig,
    ) -> TestApp {
        Self::launch_example(
            Example::Auth,
            framework,
            redis.manager(),
            tweak,
            redis.is_running(),
        )
        .await
    }

    async fn launch(
        framework: Framework,
        manager: RedisManagerBuilder,
        tweak: impl FnOnce(SessionConfig) -> SessionConfig,
        wait_for_redis: bool,
    ) -> TestApp {
        Self::launch_example(Example::Counter, framework, manager, tweak, wait_for_redis).await
    }

    async fn launch_example(
        example: Example,
        framework: Framework,
        manager: RedisManagerBuilder,
        tweak: impl FnOnce(SessionConfig) -> SessionConfig,
        wait_for_redis: bool,
    ) -> TestApp {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind a loopback port");
        let addr: SocketAddr = listener.local_addr().expect("local address");
        let keys = KeyRing::from_secret(SECRET).expect("valid secret");
        let config = example_common::session_config(keys, addr);
        let config = tweak(match (example, framework) {
            (Example::Counter, _) => config,
            (Example::Auth, Framework::Axum) => example_axum_login::session_config(config),
            (Example::Auth, Framework::Actix) => example_actix_identity::session_config(config),
        });
        let (store, server) = match framework {
            Framework::Axum => serve_axum(example, listener, manager, config),
            Framework::Actix => serve_actix(example, listener, manager, config).await,
        };
        if wait_for_redis {
            // Let the manager's start-up connection settle, so that tests counting Redis
            // commands count only what their requests send.
            let deadline = std::time::Instant::now() + Duration::from_secs(10);
            while !store.manager().health().is_healthy {
                assert!(std::time::Instant::now() < deadline, "Redis not reachable");
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
        }
        TestApp {
            base: format!("http://{addr}"),
            store,
            server,
        }
    }

    /// A client with an empty cookie jar.
    pub fn client(&self) -> Client {
        Client {
            // Redirects are answers to look at (the auth apps' login), not to follow.
            http: reqwest::Client::builder()
                .redirect(reqwest::redirect::Policy::none())
                .build()
                .expect("an HTTP client"),
            base: self.base.clone(),
            cookie_name: self.store.cookie_name().to_owned(),
            cookie: None,
            user_agent: None,
        }
    }
}

fn serve_axum(
    example: Example,
    listener: std::net::TcpListener,
    manager: RedisManagerBuilder,
    config: SessionConfig,
) -> (SessionEngine, Server) {
    let manager = manager.build().expect("manager builds");
    let store = SessionEngine::new(manager, config).expect("store builds");
    listener.set_nonblocking(true).expect("non-blocking");
    let listener = tokio::net::TcpListener::from_std(listener).expect("a tokio listener");
    let router = match example {
        Example::Counter => example_axum::router(store.clone()),
        Example::Auth => example_axum_login::router(store.clone()),
    };
    let task = tokio::spawn(async move {
        let _ = axum::serve(listener, router).await;
    });
    (store, Server::Axum(task))
}

/// actix-web runs on its own runtime: a thread with an actix `System`, where the store is built
/// too, as `#[actix_web::main]` would.
async fn serve_actix(
    example: Example,
    listener: std::net::TcpListener,
    manager: RedisManagerBuilder,
    config: SessionConfig,
) -> (SessionEngine, Server) {
    let (started, ready) = tokio::sync::oneshot::channel();
    std::thread::spawn(move || {
        actix_rt::System::new().block_on(async move {
            let manager = manager.build().expect("manager builds");
            let store = SessionEngine::new(manager, config).expect("store builds");
            let app_store = store.clone();
            // Each app is a type of its own: the server is built in each arm.
            let server = match example {
                Example::Counter => {
                    actix_web::HttpServer::new(move || example_actix::app(app_store.clone()))
                        .workers(1)
                        .disable_signals()
                        .listen(listener)
                        .expect("listen")
                        .run()
                }
                Example::Auth => actix_web::HttpServer::new(move || {
                    example_actix_identity::app(app_store.clone())
                })
                .workers(1)
                .disable_signals()
                .listen(listener)
                .expect("listen")
                .run(),
            };
            let _ = started.send((store, server.handle()));
            let _ = server.await;
        });
    });
    let (store, handle) = ready.await.expect("the actix app starts");
    (store, Server::Actix(handle))
}

impl Drop for TestApp {
    fn drop(&mut self) {
        match &self.server {
            Server::Axum(task) => task.abort(),
            // The stop command is sent at once; the server's thread ends on its own.
            Server::Actix(handle) => drop(handle.stop(false)),
        }
    }
}

/// An HTTP client with a one-cookie jar for the session cookie.
#[derive(Debug, Clone)]
pub struct Client {
    http: reqwest::Client,
    base: String,
    cookie_name: String,
    cookie: Option<String>,
    user_agent: Option<String>,
}

/// A response, read whole.
#[derive(Debug, Clone)]
pub struct Reply {
    /// The status code.
    pub status: u16,
    /// The body as JSON (`Null` when it is not JSON).
    pub json: Value,
    /// The body as text.
    pub text: String,
    /// Every `Set-Cookie` header.
    pub set_cookies: Vec<String>,
    /// Every response header, lower-case names.
    pub headers: Vec<(String, String)>,
}

impl Reply {
    /// The value of header `name` (lower case), joined with ", " when repeated.
    pub fn header(&self, name: &str) -> Option<String> {
        let values: Vec<&str> = self
            .headers
            .iter()
            .filter(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
            .collect();
        (!values.is_empty()).then(|| values.join(", "))
    }
}

impl Client {
    /// The session cookie's value in the jar.
    pub fn cookie(&self) -> Option<String> {
        self.cookie.clone()
    }

    /// Replace the jar's session cookie (a saved copy, a forged one, none).
    pub fn set_cookie(&mut self, value: Option<String>) {
        self.cookie = value;
    }

    /// Send the next requests to `app` (another instance), keeping the cookie.
    pub fn switch_to(&mut self, app: &TestApp) {
        self.base = app.base.clone();
    }

    /// A copy of this client sharing nothing but the cookie it holds now.
    pub fn fork(&self) -> Client {
        self.clone()
    }

    /// `GET path`.
    pub async fn get(&mut self, path: &str) -> Reply {
        self.send(reqwest::Method::GET, path, None).await
    }

    /// `POST path` without a body.
    pub async fn post(&mut self, path: &str) -> Reply {
        self.send(reqwest::Method::POST, path, None).await
    }

    /// `POST path` with a JSON body.
    pub async fn post_json(&mut self, path: &str, body: Value) -> Reply {
        self.send(reqwest::Method::POST, path, Some(body)).await
    }

    /// Logs in as `user_id` with `role`.
    pub async fn login(&mut self, user_id: &str, role: &str) -> Reply {
        let reply = self
            .post_json(
                "/login",
                serde_json::json!({ "user_id": user_id, "role": role }),
            )
            .await;
        assert_eq!(reply.status, 200, "login: {}", reply.text);
        reply
    }

    /// `POST path` with an HTML form's fields.
    pub async fn post_form(&mut self, path: &str, fields: &[(&str, &str)]) -> Reply {
        let request = self.http.post(format!("{}{path}", self.base)).form(fields);
        self.receive(self.with_jar(request)).await
    }

    /// `POST path` with `body` and these headers (a `Content-Type`, a browser's
    /// `Sec-Fetch-Site`, ...), and the jar's cookie.
    pub async fn post_with(&mut self, path: &str, headers: &[(&str, &str)], body: &str) -> Reply {
        let mut request = self
            .http
            .post(format!("{}{path}", self.base))
            .body(body.to_owned());
        for (name, value) in headers {
            request = request.header(*name, *value);
        }
        self.receive(self.with_jar(request)).await
    }

    /// `GET path` with this exact `Cookie` header instead of the jar's.
    pub async fn get_raw(&mut self, path: &str, cookie_header: &str) -> Reply {
        self.send_raw(reqwest::Method::GET, path, cookie_header)
            .await
    }

    /// `method path` with this exact `Cookie` header instead of the jar's: for cookies that are
    /// not the app's own, like a migrated app's.
    pub async fn send_raw(
        &mut self,
        method: reqwest::Method,
        path: &str,
        cookie_header: &str,
    ) -> Reply {
        let request = self
            .http
            .request(method, format!("{}{path}", self.base))
            .header("cookie", cookie_header);
        self.receive(request).await
    }

    async fn send(&mut self, method: reqwest::Method, path: &str, body: Option<Value>) -> Reply {
        let mut request = self.with_jar(self.http.request(method, format!("{}{path}", self.base)));
        if let Some(body) = body {
            request = request.json(&body);
        }
        self.receive(request).await
    }

    /// `request` with the jar's cookie, if it holds one.
    fn with_jar(&self, request: reqwest::RequestBuilder) -> reqwest::RequestBuilder {
        match &self.cookie {
            Some(value) => request.header("cookie", format!("{}={value}", self.cookie_name)),
            None => request,
        }
    }

    /// Sends this `User-Agent` from now on.
    pub fn set_user_agent(&mut self, user_agent: &str) {
        self.user_agent = Some(user_agent.to_owned());
    }

    /// `DELETE path`.
    pub async fn delete(&mut self, path: &str) -> Reply {
        self.send(reqwest::Method::DELETE, path, None).await
    }

    async fn receive(&mut self, request: reqwest::RequestBuilder) -> Reply {
        let request = match &self.user_agent {
            Some(user_agent) => request.header("user-agent", user_agent),
            None => request,
        };
        let response = request.send().await.expect("the app answers");
        let status = response.status().as_u16();
        let headers: Vec<(String, String)> = response
            .headers()
            .iter()
            .map(|(n, v)| {
                (
                    n.as_str().to_owned(),
                    String::from_utf8_lossy(v.as_bytes()).into_owned(),
                )
            })
            .collect();
        let text = response.text().await.expect("a body");
        let set_cookies: Vec<String> = headers
            .iter()
            .filter(|(n, _)| n == "set-cookie")
            .map(|(_, v)| v.clone())
            .collect();
        for header in &set_cookies {
            let cookie = cookie::Cookie::parse(header.clone()).expect("a valid Set-Cookie");
            if cookie.name() != self.cookie_name {
                continue;
            }
            let removed = cookie.max_age() == Some(cookie::time::Duration::ZERO);
            self.cookie =
                (!removed && !cookie.value().is_empty()).then(|| cookie.value().to_owned());
        }
        Reply {
            status,
            json: serde_json::from_str(&text).unwrap_or(Value::Null),
            text,
            set_cookies,
            headers,
        }
    }
}

/// The Redis keys of sessions (not the epoch, not logout tombstones, not the owners' indexes) on
/// `redis`, sorted.
pub fn session_keys(redis: &impl TestRedis) -> Vec<String> {
    let mut keys = redis.keys("session:*");
    keys.retain(|k| {
        !k.starts_with("session:epoch")
            && !k.starts_with("session:revoked:")
            && !k.starts_with("session:owner:")
    });
    keys
}

/// The payload of a session cookie value issued by a test app (decrypted with [`SECRET`]).
pub fn decrypt_cookie(name: &str, value: &str) -> Value {
    let key = cookie::Key::derive_from(SECRET.as_bytes());
    // `{touched}.{encrypted payload}`: the clear prefix is a hint for requests that do not use
    // their session.
    let (_, protected) = value.split_once('.').expect("a touched hint");
    let jar = cookie::CookieJar::new();
    let plain = jar
        .private(&key)
        .decrypt(cookie::Cookie::new(name.to_owned(), protected.to_owned()))
        .expect("a cookie of the test app");
    serde_json::from_str(plain.value()).expect("a JSON payload")
}

/// The Redis key of the session with id `id`: `session:{base64url(sha256(id))}`, braces included
/// (a Redis Cluster hash tag).
pub fn redis_key_of(id: &str) -> String {
    use base64::Engine;
    use sha2::Digest;
    let digest = sha2::Sha256::digest(id.as_bytes());
    format!(
        "session:{{{}}}",
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(digest)
    )
}

/// The example's configuration as it is: for [`TestApp::start`].
pub fn defaults(config: SessionConfig) -> SessionConfig {
    config
}

/// A load of `clients` clients of `app`, each counting with `POST /counter` (pausing `pause`
/// between requests) until `stop`, checking that its counter goes up by one each time (a 5xx
/// is counted, not checked). Each task returns its client, its last counter and its 5xx.
pub fn counting_load(
    app: &TestApp,
    clients: usize,
    pause: Duration,
    stop: &std::sync::Arc<std::sync::atomic::AtomicBool>,
) -> Vec<tokio::task::JoinHandle<(Client, i64, u32)>> {
    use std::sync::atomic::Ordering;
    (0..clients)
        .map(|_| {
            let mut client = app.client();
            let stop = std::sync::Arc::clone(stop);
            tokio::spawn(async move {
                let (mut last, mut server_errors) = (0, 0);
                while !stop.load(Ordering::Relaxed) {
                    let reply = client.post("/counter").await;
                    if reply.status >= 500 {
                        server_errors += 1;
                        continue;
                    }
                    let counter = reply.json["counter"].as_i64().expect("a counter");
                    assert_eq!(counter, last + 1, "strictly increasing, nothing lost");
                    last = counter;
                    tokio::time::sleep(pause).await;
                }
                (client, last, server_errors)
            })
        })
        .collect()
}

/// Counts from `from` up to `to` with `POST /counter`, checking each answer and where it was
/// served from.
pub async fn count_to(client: &mut Client, from: i64, to: i64, source: &str) {
    for expected in from..=to {
        let reply = client.post("/counter").await;
        assert_eq!(
            reply.json,
            serde_json::json!({"counter": expected, "source": source}),
            "counting to {to}"
        );
    }
}

/// Polls `GET /counter` until it is served from Redis; checks the value on the way and
/// returns how long it took. At most 5 s: the promise is "within 5 s of Redis's return".
pub async fn served_from_redis_again(client: &mut Client, counter: i64) -> Duration {
    let started = std::time::Instant::now();
    loop {
        let reply = client.get("/counter").await;
        assert_eq!(reply.status, 200, "{}", reply.text);
        assert_eq!(reply.json["counter"], counter, "no value lost");
        if reply.json["source"] == "redis" {
            let took = started.elapsed();
            println!("served from Redis again {took:?} after its return");
            return took;
        }
        assert!(
            started.elapsed() < Duration::from_secs(5),
            "not served from Redis within 5 s of its return"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Polls `check` every 50 ms until it holds; panics with `what` after `limit`. Returns how
/// long it took.
pub async fn wait_until<F, Fut>(limit: Duration, what: &str, mut check: F) -> Duration
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let started = std::time::Instant::now();
    loop {
        if check().await {
            return started.elapsed();
        }
        assert!(started.elapsed() < limit, "not within {limit:?}: {what}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// A cookie value the app's key ring accepts, carrying `payload_json` as its payload: for tests
/// of what the app does with a well-protected but malicious payload.
pub fn forge_private_cookie(name: &str, payload_json: &str) -> String {
    let key = cookie::Key::derive_from(SECRET.as_bytes());
    let mut jar = cookie::CookieJar::new();
    jar.private_mut(&key).add(cookie::Cookie::new(
        name.to_owned(),
        payload_json.to_owned(),
    ));
    jar.get(name).expect("just added").value().to_owned()
}
