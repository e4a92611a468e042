//! The end of a request: runs the save [`plan`](super::engine::save) against Redis.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use tokio::sync::OwnedMutexGuard;

use super::engine::State;
use super::engine::answer::Written;
use super::engine::save::{self, After, End, Local, Plan, Problem};
use super::response::ResponseHeaders;
use super::revocations::Target;
use super::store::now;
use super::{Session, SessionEngine, SessionId};
use crate::stats::Counters;
use crate::{Error, Result};

impl SessionEngine {
    /// See [`adapter::finish`](crate::adapter::finish).
    pub(crate) async fn finish(&self, session: &Session) -> ResponseHeaders {
        match self.try_finish(session) {
            Ok(headers) => headers,
            Err(later) => later.await,
        }
    }

    /// See [`adapter::try_finish`](crate::adapter::try_finish).
    pub(crate) fn try_finish(&self, session: &Session) -> Result<ResponseHeaders, FinishLater> {
        let Ok(mut state) = Arc::clone(&session.state).try_lock_owned() else {
            // Another task holds the session right now: wait for it, then plan.
            let (store, session) = (self.clone(), session.clone());
            return Err(FinishLater::new(async move {
                let mut state = session.state.lock_owned().await;
                let plan = store.plan(&mut state, now());
                store.finish_planned(&mut state, plan).await
            }));
        };
        let now = now();
        match self.plan(&mut state, now) {
            // A login's owner mark is for Redis, after the rest.
            Plan::Local(local) if state.owner.is_none() => {
                if let Err(err) = self.apply(&mut state, local, now) {
                    tracing::debug!(error = %err, "session not fully persisted");
                }
                Ok(self.headers(&state))
            }
            plan => {
                let store = self.clone();
                Err(FinishLater::new(async move {
                    store.finish_planned(&mut state, plan).await
                }))
            }
        }
    }

    async fn finish_planned(
        &self,
        state: &mut OwnedMutexGuard<State>,
        plan: Plan,
    ) -> ResponseHeaders {
        if let Err(err) = self.run(state, plan).await {
            tracing::debug!(error = %err, "session not fully persisted");
        }
        self.headers(state)
    }

    /// Persists what changed since the last call: Redis when it is available, the cookie when
    /// not. Idempotent: a second call with nothing new does nothing.
    pub(crate) async fn persist(&self, state: &mut State) -> Result<()> {
        let plan = self.plan(state, now());
        self.run(state, plan).await
    }

    /// What persisting takes; decided without I/O.
    fn plan(&self, state: &mut State, now: i64) -> Plan {
        let unread = state.phase == super::engine::Phase::Unloaded;
        if unread && self.quiet(state, now) && state.intent != super::engine::state::Intent::Destroy
        {
            // Unused, and the cookie's clear hint says no touch is due: no cryptography.
            return Plan::Local(Local::default());
        }
        self.verify(state, now);
        let legacy_key = self.legacy_key(state);
        let revoked_here = self.revoked_here(state);
        let mut ids = Ids::default();
        let plan = save::plan(state, self.ctx(now), revoked_here, legacy_key, &mut || {
            ids.next()
        });
        ids.checked(plan)
    }

    /// Runs `plan`, then what follows from Redis's answer.
    async fn run(&self, state: &mut State, plan: Plan) -> Result<()> {
        let now = now();
        let ctx = self.ctx(now);
        let mut plan = plan;
        // A save that found its session gone asks why, and may move it: at most twice.
        let mut writes = 0;
        let local = loop {
            match plan {
                Plan::Local(local) => break local,
                Plan::Touch { id, ttl } => {
                    let touched = self.backend().touch(&id, ttl).await.ok().flatten();
                    if touched.is_some() {
                        Counters::bump(&self.counters().touches);
                    }
                    plan = save::after_touch(state, touched, ctx);
                }
                Plan::Read => {
                    self.load(state).await;
                    plan = self.plan(state, now);
                }
                Plan::End(end) => {
                    self.end(state, end, now).await;
                    return Ok(());
                }
                Plan::Write(write) => {
                    writes += 1;
                    let written = self.write(&write).await;
                    let mut ids = Ids::default();
                    let after = save::after_write(state, &write, written, ctx, &mut || ids.next());
                    plan = match after {
                        After::Local(local) => Plan::Local(local),
                        After::Recheck(gone) if writes < 2 => {
                            let answer = self.gone(&gone).await;
                            let gates = save::Gates {
                                fail_closed: self.revocations().failing_closed(),
                                revoked_here: self.revoked_here(state),
                            };
                            save::after_recheck(state, &gone, answer, gates, ctx, &mut || {
                                ids.next()
                            })
                        }
                        After::Recheck(_) => {
                            save::ended(state);
                            Plan::Local(Local::default())
                        }
                    };
                    plan = ids.checked(plan);
                }
            }
        };
        self.reindex(state).await;
        let mut local = local;
        if let Some(payload) = &mut local.issue
            && let Some(id) = &payload.id
            && let Ok(epoch) = self.backend().epoch(id.digest(), false).await
        {
            payload.epoch = Some(epoch.to_string());
        }
        self.apply(state, local, now)
    }

    /// Runs a save script; what it did.
    async fn write(&self, write: &save::Write) -> Written {
        let mirrored = &self.config().mirrored_keys;
        match self
            .backend()
            .write(write, mirrored, |id| self.seal(id))
            .await
        {
            Ok(Written::Gone) => {
                tracing::debug!("session gone when its save came: asking why");
                Written::Gone
            }
            Ok(written) => written,
            Err(err) => {
                if err.is_unavailable() {
                    tracing::debug!(error = %err, "Redis unavailable: session changes go into the cookie");
                } else {
                    // Not an outage (a refused command, a bug): still, nothing is lost.
                    tracing::error!(error = %err, "could not save the session to Redis; it goes into the cookie");
                }
                Written::Failed
            }
        }
    }

    /// What is left without Redis: the cookie, a revocation to queue, the handler's problem.
    fn apply(&self, state: &mut State, local: Local, now: i64) -> Result<()> {
        let Local {
            issue,
            revoke,
            problem,
            fallback_write,
            retire,
            stale,
        } = local;
        if stale {
            Counters::bump(&self.counters().stale_changes_dropped);
        }
        if let Some(id) = revoke {
            let payload = state.valid_cookie().map(|c| Arc::clone(&c.payload));
            self.revoke_id_later(&id, payload.as_deref(), now);
        }
        if let Some(key) = retire {
            let until = self.policy().revocation_matters_until(now, now, true);
            self.revoke_later(Target::Legacy(key.into()), until, now);
        }
        let mut result = Ok(());
        if let Some(mut payload) = issue {
            if fallback_write {
                Counters::bump(&self.counters().fallback_writes);
            }
            if payload.epoch.is_none()
                && let Some(id) = &payload.id
            {
                payload.epoch = self
                    .backend()
                    .cached_epoch(id.digest())
                    .map(|e| e.to_string());
            }
            result = self.send(state, payload, now);
        }
        match problem {
            Some(Problem::FallbackExpired) => Err(Error::FallbackExpired),
            Some(Problem::Superseded) => Err(Error::SessionSuperseded),
            Some(Problem::NoRandomness) => Err(Error::Randomness {
                source: std::io::Error::other("no session id could be generated"),
            }),
            None => result,
        }
    }

    /// After a save reached Redis: the session joins the index of the owner a login named, or
    /// moves in its owner's index when the id changed (a login, a privilege change).
    async fn reindex(&self, state: &mut State) {
        let super::engine::Phase::Stored { id, created, .. } = &state.phase else {
            return;
        };
        let before = state.indexed.take();
        let moved = before.as_ref().filter(|(of, _)| of != id);
        let Some(owner) = state
            .owner
            .take()
            .or_else(|| moved.map(|(_, owner)| owner.clone()))
        else {
            state.indexed = before;
            return;
        };
        let replacing = moved.map(|(of, previous)| (*of.digest(), previous.name.as_str()));
        self.register_owner(id, *created, &owner, replacing).await;
        state.indexed = Some((id.clone(), owner));
    }

    /// A logout: the id revoked (with the successors its tombstones name), an imported app's
    /// key deleted; whatever Redis cannot take now is queued and replayed when it is back.
    async fn end(&self, state: &mut State, end: End, now: i64) {
        if let Some(id) = &end.revoke {
            // A tombstone as well as the `DEL`: no copy of the cookie can re-seed the session,
            // not even after Redis lost its data or failed over. (And out of its owner's index.)
            match self.revoke_chain(*id.digest()).await {
                Ok(_) => {}
                Err((left, err)) if left == *id.digest() => {
                    tracing::debug!(error = %err, "logout queued until Redis is available");
                    let payload = state.valid_cookie().map(|c| Arc::clone(&c.payload));
                    self.revoke_id_later(id, payload.as_deref(), now);
                }
                Err((left, err)) => {
                    tracing::debug!(error = %err, "a successor's logout queued until Redis is available");
                    let until = self.policy().revocation_matters_until(now, now, true);
                    self.revoke_later(Target::Session(left), until, now);
                }
            }
        }
        if let Some(key) = &end.retire
            && let Err(err) = self.backend().delete(key).await
        {
            tracing::debug!(error = %err, "an imported app's session is deleted when Redis is available");
            let until = self.policy().revocation_matters_until(now, now, true);
            self.revoke_later(Target::Legacy(key.as_str().into()), until, now);
        }
        // Only now: a logout interrupted midway is carried out again.
        save::ended(state);
    }
}

/// New ids for the planners. Should the OS generator fail, the planner gets a placeholder and
/// its whole decision is thrown away: nothing is written, no cookie sent, under an id that is
/// not random.
#[derive(Default)]
struct Ids {
    failed: bool,
}

impl Ids {
    fn next(&mut self) -> SessionId {
        SessionId::generate().unwrap_or_else(|err| {
            tracing::error!(error = %err, "cannot make a session id");
            self.failed = true;
            SessionId::placeholder()
        })
    }

    fn checked(self, plan: Plan) -> Plan {
        match plan {
            Plan::Local(local) => Plan::Local(self.checked_local(local)),
            _ if self.failed => Plan::Local(Local::failed()),
            plan => plan,
        }
    }

    fn checked_local(self, local: Local) -> Local {
        if self.failed { Local::failed() } else { local }
    }
}

/// The Redis part of finishing a request, planned already; see
/// [`adapter::try_finish`](crate::adapter::try_finish). A future of the headers to add to the response.
///
/// Should it be dropped before it is done (the client went away), what is left runs in a task
/// of its own, so a logout or a write still happens.
#[must_use = "the session is persisted only when this is awaited (or dropped: then in a task)"]
pub struct FinishLater {
    running: Option<Pin<Box<dyn Future<Output = ResponseHeaders> + Send>>>,
}

impl FinishLater {
    fn new(future: impl Future<Output = ResponseHeaders> + Send + 'static) -> Self {
        Self {
            running: Some(Box::pin(future)),
        }
    }
}

impl Future for FinishLater {
    type Output = ResponseHeaders;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<ResponseHeaders> {
        let Some(running) = self.running.as_mut() else {
            return Poll::Ready(ResponseHeaders::default());
        };
        let headers = std::task::ready!(running.as_mut().poll(cx));
        self.running = None;
        Poll::Ready(headers)
    }
}

impl Drop for FinishLater {
    fn drop(&mut self) {
        let Some(running) = self.running.take() else {
            return;
        };
        match tokio::runtime::Handle::try_current() {
            Ok(runtime) => drop(runtime.spawn(running)),
            Err(_) => tracing::warn!("a session was dropped unfinished outside a Tokio runtime"),
        }
    }
}

impl std::fmt::Debug for FinishLater {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FinishLater")
            .field("done", &self.running.is_none())
            .finish()
    }
}
