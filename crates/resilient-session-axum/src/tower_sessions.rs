//! [`TowerSessionLayer`]: a `tower_sessions::Session` in every request, backed by ours, so that
//! the crates built on tower-sessions (axum-login, axum-messages) run on our layer, the cookie
//! fallback included.

use std::collections::HashMap;
use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex, PoisonError};
use std::task::{Context, Poll};

use http::{Request, Response, StatusCode};
use resilient_session::Session;
use serde_json::{Map, Value};
use tower_layer::Layer;
use tower_service::Service;
use tower_sessions_core::session::{Id, Record};
use tower_sessions_core::session_store;

/// The tower-sessions session type this layer provides: tower-sessions 0.14's, the one
/// axum-login 0.18 and axum-messages 0.8 take.
pub use tower_sessions_core::Session as TowerSession;

/// Puts a [`tower_sessions::Session`](TowerSession) into every request's extensions, backed by
/// the request's own [`Session`]: what a crate built on tower-sessions reads and writes through
/// it is read from and written to our session. axum-login's `AuthManager` and axum-messages'
/// `MessagesManagerLayer` then run unchanged, and a user stays logged in while Redis is down
/// (mirror the auth crate's key: [`AXUM_LOGIN_KEY`]).
///
/// Goes inside [`SessionLayer`](crate::SessionLayer) (added after it with `Router::layer`, so
/// that it runs within it) and outside the layers that use the tower-sessions session.
///
/// What the tower-sessions calls do on our session:
///
/// | tower-sessions | ours |
/// | --- | --- |
/// | first read | the session is loaded with every key it knows ([`Session::known_entries`]) |
/// | `insert`, `remove`, `clear`, `save` | the same keys changed ([`Session::apply_changes`]), all or nothing |
/// | `cycle_id` (axum-login's login) | [`Session::cycle_id`]: a new id, the data kept |
/// | `flush`, `delete` (axum-login's logout) | [`Session::destroy`]: the session ends, everywhere |
/// | `flush`, then new data | [`Session::clear`] and [`Session::cycle_id`]: a new session that carries nothing of the old |
///
/// Like tower-sessions, it keeps no changes of a request answered with a server error, but a
/// logout in it still ends the session. Loading is lazy as in tower-sessions, but axum-login and
/// axum-messages read the session on every request they serve: one `HGETALL` each.
///
/// Differences to know:
/// - While the session is served from its cookie, the keys the cookie does not carry look
///   absent to tower-sessions' code (its store cannot say "unknown"); a read-modify-write of
///   such a key would overwrite the value Redis holds. Mirror what the auth crates keep.
/// - `Session::id()` is a random value of the request (a new one after `cycle_id`), not the
///   session's id, which never leaves our layer; `set_expiry` has no effect (our
///   [`SessionConfig`](crate::SessionConfig) sets the lifetimes).
/// - This is tower-sessions 0.14's `Session`; the core crate's `TowerSessionsStore` implements
///   tower-sessions 0.15's store trait, a type of another version.
/// - After the response, the session refuses to save.
///
#[derive(Debug, Clone, Copy, Default)]
pub struct TowerSessionLayer {
    _private: (),
}

/// The key axum-login keeps its data at (its default `data_key`): mirror it
/// ([`SessionConfig::mirrored_keys`](crate::SessionConfig::mirrored_keys)) so that a logged-in
/// user stays logged in while Redis is unavailable.
pub const AXUM_LOGIN_KEY: &str = "axum-login.data";

/// The key axum-messages keeps the pending messages at. It needs no mirroring: messages
/// written while Redis is down ride in the cookie until they are read.
pub const AXUM_MESSAGES_KEY: &str = "axum-messages.data";

impl TowerSessionLayer {
    /// The layer; see the [type docs](Self).
    pub fn new() -> Self {
        Self::default()
    }
}

impl<S> Layer<S> for TowerSessionLayer {
    type Service = TowerSessionService<S>;

    fn layer(&self, inner: S) -> Self::Service {
        TowerSessionService { inner }
    }
}

/// The service [`TowerSessionLayer`] wraps around the app.
#[derive(Debug, Clone)]
pub struct TowerSessionService<S> {
    inner: S,
}

impl<S, ReqBody, ResBody> Service<Request<ReqBody>> for TowerSessionService<S>
where
    S: Service<Request<ReqBody>, Response = Response<ResBody>> + Clone + Send + 'static,
    S::Future: Send + 'static,
    ReqBody: Send + 'static,
    ResBody: Default + Send,
{
    type Response = Response<ResBody>;
    type Error = S::Error;
    type Future = Pin<Box<dyn Future<Output = Result<Self::Response, Self::Error>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut request: Request<ReqBody>) -> Self::Future {
        // The service that was polled ready serves this request; its clone waits for the next.
        let clone = self.inner.clone();
        let mut inner = std::mem::replace(&mut self.inner, clone);
        let Some(ours) = request.extensions().get::<Session>().cloned() else {
            tracing::error!("TowerSessionLayer needs SessionLayer around it: no session");
            return Box::pin(async { Ok(status(StatusCode::INTERNAL_SERVER_ERROR)) });
        };
        let bridge = Arc::new(Bridge::new(ours));
        let session = TowerSession::new(Some(Id::default()), Arc::clone(&bridge), None);
        *bridge.lock(&bridge.session) = Some(session.clone());
        request.extensions_mut().insert(session.clone());
        Box::pin(async move {
            // However the request ends, the store lets go of the session that holds it.
            let _release = Release(Arc::clone(&bridge));
            let response = inner.call(request).await?;
            match bridge
                .finish(&session, response.status().is_server_error())
                .await
            {
                Ok(()) => Ok(response),
                Err(err) => {
                    tracing::error!(error = %err, "the tower-sessions session was not saved");
                    Ok(status(StatusCode::INTERNAL_SERVER_ERROR))
                }
            }
        })
    }
}

fn status<B: Default>(code: StatusCode) -> Response<B> {
    let mut response = Response::new(B::default());
    *response.status_mut() = code;
    response
}

/// Ends the request for the bridge: it refuses to save, and lets go of the session.
struct Release(Arc<Bridge>);

impl Drop for Release {
    fn drop(&mut self) {
        self.0.lock(&self.0.state).finished = true;
        self.0.lock(&self.0.session).take();
    }
}

/// A tower-sessions store for one request, over that request's session.
struct Bridge {
    ours: Session,
    /// The tower-sessions session served, while the request runs: a `delete` tells `cycle_id`
    /// (which drops the id first) from `flush` by it.
    session: Mutex<Option<TowerSession>>,
    state: Mutex<BridgeState>,
}

#[derive(Default)]
struct BridgeState {
    /// What tower-sessions was last given or saved: changes are what differs from it. `None`
    /// until it loads (a `clear` needs no load): then it is what ours knows.
    seen: Option<Map<String, Value>>,
    /// What tower-sessions deleted, and has not created again since.
    deleted: Option<Deleted>,
    /// The request is over.
    finished: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Deleted {
    /// By `cycle_id`: the same session, under a new id.
    ForNewId,
    /// By `flush` or `delete`: the session is over.
    Ended,
}

impl fmt::Debug for Bridge {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Bridge").finish_non_exhaustive()
    }
}

fn backend(err: impl fmt::Display) -> session_store::Error {
    session_store::Error::Backend(err.to_string())
}

impl Bridge {
    fn new(ours: Session) -> Self {
        Self {
            ours,
            session: Mutex::new(None),
            state: Mutex::new(BridgeState::default()),
        }
    }

    fn lock<'a, T>(&self, mutex: &'a Mutex<T>) -> std::sync::MutexGuard<'a, T> {
        mutex.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn check_running(&self) -> session_store::Result<()> {
        if self.lock(&self.state).finished {
            return Err(backend("the request is over: the session is not saved"));
        }
        Ok(())
    }

    /// At the end of the request: what tower-sessions would persist, persisted into ours.
    async fn finish(
        &self,
        session: &TowerSession,
        server_error: bool,
    ) -> session_store::Result<()> {
        if !server_error && session.is_modified() {
            if session.is_empty().await {
                // tower-sessions keeps no empty session; neither do we.
                self.ours.clear().await;
                self.lock(&self.state).seen = Some(Map::new());
            } else {
                session.save().await.map_err(backend)?;
            }
        }
        let deleted = self.lock(&self.state).deleted.take();
        if deleted == Some(Deleted::Ended) {
            self.ours.destroy().await;
        }
        Ok(())
    }

    /// Our session changed so that it holds `data`, for the keys tower-sessions knows.
    async fn apply(&self, data: &HashMap<String, Value>) -> session_store::Result<()> {
        let seen = self.lock(&self.state).seen.clone();
        let before = match seen {
            Some(seen) => seen,
            None => self.ours.known_entries().await,
        };
        let after: Map<String, Value> = data.iter().map(|(k, v)| (k.clone(), v.clone())).collect();
        self.ours
            .apply_changes(&before, &after)
            .await
            .map_err(backend)?;
        self.lock(&self.state).seen = Some(after);
        Ok(())
    }
}

#[async_trait::async_trait]
impl session_store::SessionStore for Bridge {
    async fn create(&self, record: &mut Record) -> session_store::Result<()> {
        self.check_running()?;
        let deleted = self.lock(&self.state).deleted.take();
        match deleted {
            // After `cycle_id`: the same session under a new id.
            Some(Deleted::ForNewId) => self.ours.cycle_id().await,
            // After `flush`: a new session, with nothing of the old one.
            Some(Deleted::Ended) => {
                self.ours.clear().await;
                self.ours.cycle_id().await;
                self.lock(&self.state).seen = Some(Map::new());
            }
            None => {}
        }
        self.apply(&record.data).await
    }

    async fn save(&self, record: &Record) -> session_store::Result<()> {
        self.check_running()?;
        self.apply(&record.data).await
    }

    async fn load(&self, _id: &Id) -> session_store::Result<Option<Record>> {
        self.check_running()?;
        let entries = self.ours.known_entries().await;
        let data: HashMap<String, Value> = entries
            .iter()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        self.lock(&self.state).seen = Some(entries);
        // Always a record, an empty one included: a session tower-sessions thinks has no id
        // would skip the store on `flush`, and a logout would not reach ours.
        Ok(Some(Record {
            id: Id::default(),
            data,
            // Ours keeps the expiry; tower-sessions sets this again before any save.
            expiry_date: time::OffsetDateTime::now_utc(),
        }))
    }

    async fn delete(&self, _id: &Id) -> session_store::Result<()> {
        self.check_running()?;
        // `cycle_id` drops the id before it deletes; `flush` and `delete` delete with it.
        let id_dropped = self
            .lock(&self.session)
            .as_ref()
            .is_some_and(|session| session.id().is_none());
        self.lock(&self.state).deleted = Some(if id_dropped {
            Deleted::ForNewId
        } else {
            Deleted::Ended
        });
        Ok(())
    }
}
