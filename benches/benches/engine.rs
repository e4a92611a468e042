//! The session layer's CPU and allocations per request, in-process and with no network: each
//! library's middleware and the same two handlers (`GET /counter` reads the counter,
//! `POST /counter` increments it), driven through the framework's service interface with a
//! cookie jar, no HTTP server, no socket.
//!
//! - `ours_axum`, `ours_actix`: our example apps with Redis unreachable, so every request is
//!   served from the session cookie: open, load from the cookie, the handler, finish and seal.
//!   This is our engine and cookie codec without the Redis client.
//! - `tower_sessions`: axum + tower-sessions on its `MemoryStore` (no cookie sealing: its cookie
//!   is the id).
//! - `actix_session`: actix-web + actix-session on its `CookieSessionStore` (the state sealed in
//!   the cookie, like ours in an outage).
//!
//! `cargo bench -p session-bench --bench engine`; allocations are counted by divan's
//! `AllocProfiler`.

use std::cell::RefCell;
use std::collections::BTreeMap;
use std::net::SocketAddr;

use actix_web::dev::{Service, ServiceResponse};
use actix_web::{App, test as actix_test};
use axum::Router;
use axum::body::Body;
use divan::Bencher;
use http_body_util::BodyExt as _;
use hyper::Method;
use hyper::header::{COOKIE, SET_COOKIE};
use session_bench::servers::{actix_session, ours, tower_sessions};
use tower::ServiceExt as _;

#[global_allocator]
static ALLOC: divan::AllocProfiler = divan::AllocProfiler::system();

fn main() {
    divan::main();
}

/// `read` is `GET /counter`, `write` is `POST /counter`.
const ROUTES: [&str; 2] = ["read", "write"];

/// Nothing listens on port 1: our store finds Redis unavailable and serves from the cookie.
const UNREACHABLE: &str = "redis://127.0.0.1:1/";

/// How many requests run before measuring: our breaker open, every session in its steady state.
const WARM_UP: usize = 200;

fn is_write(route: &str) -> bool {
    route == "write"
}

/// The cookies a client keeps: what the last `Set-Cookie` of each name said.
#[derive(Default)]
struct Jar(RefCell<BTreeMap<String, String>>);

impl Jar {
    fn header(&self) -> Option<String> {
        let cookies = self.0.borrow();
        (!cookies.is_empty()).then(|| {
            cookies
                .iter()
                .map(|(name, value)| format!("{name}={value}"))
                .collect::<Vec<_>>()
                .join("; ")
        })
    }

    /// Takes in the `Set-Cookie` header values of an answer.
    fn update<'a>(&self, set_cookies: impl Iterator<Item = &'a [u8]>) {
        let mut cookies = self.0.borrow_mut();
        for set in set_cookies {
            let Some(pair) = std::str::from_utf8(set)
                .ok()
                .and_then(|s| s.split(';').next())
            else {
                continue;
            };
            if let Some((name, value)) = pair.split_once('=') {
                if value.is_empty() {
                    cookies.remove(name);
                } else {
                    cookies.insert(name.to_owned(), value.to_owned());
                }
            }
        }
    }
}

/// One request through an axum router, the cookie jar kept up to date.
async fn axum_request(router: &Router, route: &str, jar: &Jar) {
    let mut request = axum::http::Request::builder()
        .method(if is_write(route) {
            Method::POST
        } else {
            Method::GET
        })
        .uri("/counter");
    if let Some(cookie) = jar.header() {
        request = request.header(COOKIE, cookie);
    }
    let request = request.body(Body::empty()).expect("a valid request");
    let response = router.clone().oneshot(request).await.expect("infallible");
    assert!(response.status().is_success(), "{}", response.status());
    jar.update(
        response
            .headers()
            .get_all(SET_COOKIE)
            .iter()
            .map(|value| value.as_bytes()),
    );
    let body = response.into_body().collect().await.expect("a body");
    divan::black_box(body.to_bytes());
}

/// One request through an actix-web service, the cookie jar kept up to date.
async fn actix_request<S, B>(service: &S, route: &str, jar: &Jar)
where
    S: Service<actix_http::Request, Response = ServiceResponse<B>, Error = actix_web::Error>,
    B: actix_web::body::MessageBody,
{
    let mut request = if is_write(route) {
        actix_test::TestRequest::post()
    } else {
        actix_test::TestRequest::get()
    }
    .uri("/counter");
    if let Some(cookie) = jar.header() {
        request = request.insert_header(("cookie", cookie));
    }
    let response = actix_test::call_service(service, request.to_request()).await;
    assert!(response.status().is_success(), "{}", response.status());
    jar.update(
        response
            .headers()
            .get_all("set-cookie")
            .map(|value| value.as_bytes()),
    );
    divan::black_box(actix_test::read_body(response).await);
}

fn tokio_runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a runtime")
}

/// Warms `router` up with one client, then measures that client's requests.
fn bench_axum(bencher: Bencher, runtime: &tokio::runtime::Runtime, router: Router, route: &str) {
    let jar = Jar::default();
    runtime.block_on(async {
        // A session with a counter first, so that a read has something to read.
        axum_request(&router, "write", &jar).await;
        for _ in 0..WARM_UP {
            axum_request(&router, route, &jar).await;
        }
    });
    bencher.bench_local(|| runtime.block_on(axum_request(&router, route, &jar)));
}

#[divan::bench(args = ROUTES)]
fn ours_axum(bencher: Bencher, route: &str) {
    let runtime = tokio_runtime();
    let router = runtime.block_on(async {
        let addr = SocketAddr::from(([127, 0, 0, 1], 3000));
        example_axum::router(ours::store(addr, UNREACHABLE.into()).expect("a store"))
    });
    bench_axum(bencher, &runtime, router, route);
}

#[divan::bench(args = ROUTES)]
fn tower_sessions(bencher: Bencher, route: &str) {
    let runtime = tokio_runtime();
    let router = tower_sessions::router(::tower_sessions::MemoryStore::default(), false);
    bench_axum(bencher, &runtime, router, route);
}

#[divan::bench(args = ROUTES)]
fn ours_actix(bencher: Bencher, route: &str) {
    let system = actix_web::rt::System::new();
    let jar = Jar::default();
    let service = system.block_on(async {
        let addr = SocketAddr::from(([127, 0, 0, 1], 3000));
        let store = ours::store(addr, UNREACHABLE.into()).expect("a store");
        let service = actix_test::init_service(example_actix::app(store)).await;
        actix_request(&service, "write", &jar).await;
        for _ in 0..WARM_UP {
            actix_request(&service, route, &jar).await;
        }
        service
    });
    bencher.bench_local(|| system.block_on(actix_request(&service, route, &jar)));
}

#[divan::bench(args = ROUTES)]
fn actix_session(bencher: Bencher, route: &str) {
    let system = actix_web::rt::System::new();
    let jar = Jar::default();
    let service = system.block_on(async {
        let store = ::actix_session::storage::CookieSessionStore::default();
        let app = App::new()
            .wrap(actix_session::middleware(store, false))
            .configure(actix_session::routes);
        let service = actix_test::init_service(app).await;
        actix_request(&service, "write", &jar).await;
        for _ in 0..WARM_UP {
            actix_request(&service, route, &jar).await;
        }
        service
    });
    bencher.bench_local(|| system.block_on(actix_request(&service, route, &jar)));
}
