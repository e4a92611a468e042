//! The `tracing` spans of a request and of its Redis operations, and what they never hold.
//!
//! A test binary of its own: tracing caches, per call site and process-wide, whether anyone
//! listens; another test running at the same time without a subscriber could make these call
//! sites look unwatched to the subscriber this test installs for its thread.

use resilient_session::{RedisManager, SessionEngine};
use test_redis::RedisServer;

mod common;
use common::{config, until_connected};

/// What a `fmt` subscriber wrote, shared with the test.
#[derive(Clone, Default)]
struct Written(std::sync::Arc<std::sync::Mutex<Vec<u8>>>);

impl std::io::Write for Written {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        self.0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .extend_from_slice(bytes);
        Ok(bytes.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[test]
fn requests_and_redis_operations_have_spans_without_ids() {
    use http::{Request, Response, header};
    use resilient_session::{Session, SessionLayer};
    use tower::{Layer, ServiceExt, service_fn};
    use tracing_subscriber::fmt::format::FmtSpan;

    let written = Written::default();
    let sink = written.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_max_level(tracing::Level::DEBUG)
        .with_span_events(FmtSpan::CLOSE)
        .with_ansi(false)
        .with_writer(move || sink.clone())
        .finish();
    let server = RedisServer::start();
    let cookie = tracing::subscriber::with_default(subscriber, || {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("runtime");
        runtime.block_on(async {
            let manager = RedisManager::builder()
                .url(server.url())
                .build()
                .expect("manager");
            until_connected(&manager).await;
            let store = SessionEngine::new(manager, config()).expect("store");
            let app =
                SessionLayer::new(store).layer(service_fn(|request: Request<()>| async move {
                    let session = request.extensions().get::<Session>().cloned();
                    let session = session.expect("the layer adds the session");
                    let visits: u64 = session.get("visits").await?.unwrap_or(0);
                    session.insert("visits", visits + 1).await?;
                    Ok::<_, resilient_session::Error>(Response::new(()))
                }));
            let first = app.clone().oneshot(Request::new(())).await.expect("served");
            let set_cookie = first.headers()[header::SET_COOKIE].to_str().expect("ASCII");
            let cookie = set_cookie.split(';').next().expect("name=value").to_owned();
            let request = Request::builder()
                .header(header::COOKIE, &cookie)
                .body(())
                .expect("a request");
            app.oneshot(request).await.expect("served");
            cookie
        })
    });
    let log = String::from_utf8(written.0.lock().expect("the log").clone()).expect("UTF-8");
    assert!(log.contains(r#"session{session.source="new"}"#), "{log}");
    assert!(log.contains(r#"session{session.source="redis"}"#), "{log}");
    assert!(
        log.contains(r#"redis{operation="session load" outcome="ok"}"#),
        "{log}"
    );
    assert!(
        log.contains(r#"redis{operation="session save" outcome="ok"}"#),
        "{log}"
    );
    let (_, value) = cookie.split_once('=').expect("name=value");
    assert!(!log.contains(value), "the cookie is never logged: {log}");
    let ids: Vec<String> = server.query(&["KEYS", "session:{*"]);
    for key in ids {
        let digest = key.trim_start_matches("session:{").trim_end_matches('}');
        assert!(!log.contains(digest), "no session key in spans: {log}");
    }
}
