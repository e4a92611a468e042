//! A model-based test of the engine's promises: random sequences of requests from an owner's
//! browser and from copies of its cookie (saved cookies, a thief), parallel tabs, logins and
//! logouts, interleaved with Redis outages, restarts with and without its data; after each step
//! the engine (driven directly, against a real redis-server) is checked against a small model:
//!
//! - nothing the owner was told it wrote is lost: each of its reads returns what it last wrote
//!   (a key that is not mirrored may be unknown while Redis is down, never wrong; it is lost
//!   only with Redis's data when no cookie carries it);
//! - no copy works after its session's logout (or after a login it predates) once Redis is
//!   reachable and has seen it, unless Redis lost its data (tombstones included) since: the
//!   revocation horizon;
//! - no session forks: Redis never holds two sessions of one lineage, nor one of a lineage
//!   that ended.
//!
//! Bounded: a few dozen cases of up to 30 steps, each against its own redis-server.

use std::time::{Duration, Instant};

use proptest::prelude::*;
use resilient_session::adapter;
use resilient_session::{RedisManager, Session, SessionConfig, SessionEngine, Source};
use test_redis::RedisServer;

mod common;
use common::{config, until_connected};

/// What the owner's browser or a copy does, or what happens to Redis.
#[derive(Debug, Clone)]
enum Step {
    /// A read of the session, by the owner (0) or a copy (the others, in the order they were
    /// saved, round and round).
    Read(usize),
    /// The owner counts (`counter`, mirrored).
    Count,
    /// The owner writes `note` (not mirrored) without reading it.
    Note(u8),
    /// The owner logs in (a new id, a new user).
    Login,
    /// The owner logs out.
    Logout,
    /// A copy of the owner's cookie is saved.
    Copy,
    /// Two tabs of the owner at once: a count and a read.
    Tabs,
    Outage,
    /// Redis back with its data.
    Recover,
    /// Redis back without its data.
    Lose,
}

fn step() -> impl Strategy<Value = Step> {
    prop_oneof![
        5 => (0..4usize).prop_map(Step::Read),
        5 => Just(Step::Count),
        1 => any::<u8>().prop_map(Step::Note),
        1 => Just(Step::Login),
        1 => Just(Step::Logout),
        4 => Just(Step::Copy),
        1 => Just(Step::Tabs),
        3 => Just(Step::Outage),
        3 => Just(Step::Recover),
        1 => Just(Step::Lose),
    ]
}

/// A cookie jar of one cookie.
#[derive(Debug, Clone, Default)]
struct Jar(Option<String>);

/// What one copy of the owner's cookie stands for.
#[derive(Debug, Clone)]
struct Copy {
    jar: Jar,
    /// The owner's lineage and login when it was saved.
    lineage: u32,
    login: u32,
    /// The owner's moves (see [`Model::moves`]) and Redis's data losses before it was saved.
    moves: u32,
    losses: u32,
    /// Redis's data losses when the copy may first have re-seeded the session.
    reseeded_at: Option<u32>,
}

/// An end of what copies may stand for: a logout (a lineage ends) or a login (the identity
/// before it ends). Either ends the identity the owner had after its login number `login`:
/// copies saved with an earlier one were ended by that login, and that login's own `Ending`.
#[derive(Debug, Clone)]
struct Ending {
    lineage: u32,
    login: u32,
    /// A login (the lineage goes on), not a logout.
    by_login: bool,
    /// Redis has it (it was up, or the logout was replayed since).
    reached_redis: bool,
    /// Redis lost its data after it reached Redis: the tombstone went too.
    forgotten: bool,
    /// The owner's moves before it.
    moves: u32,
}

/// What must hold.
#[derive(Debug)]
struct Model {
    redis_up: bool,
    lineage: u32,
    login: u32,
    /// The owner's session exists (it wrote something since it last logged out).
    exists: bool,
    counter: Option<i64>,
    user: Option<String>,
    note: Option<u8>,
    /// The owner's cookie carries `note` (written while Redis was unavailable, not in Redis yet).
    note_in_cookie: bool,
    endings: Vec<Ending>,
    /// Times the owner's id may have moved without an ending: its first request after Redis
    /// came back (a re-seed after a loss, the promotion of a session begun during the outage).
    moves: u32,
    may_move: bool,
    /// Redis has the owner's counter: a request of the owner was served with Redis up since
    /// Redis was last down or lost its data (it landed what the cookie carried). Then no copy
    /// may change it.
    counter_in_redis: bool,
    losses: u32,
    /// The owner's moves before Redis last lost its data: a copy saved before one of them found
    /// the owner's session through a "moved" tombstone that went with the data.
    moves_before_last_loss: u32,
}

impl Model {
    fn new() -> Self {
        Self {
            redis_up: true,
            lineage: 0,
            login: 0,
            exists: false,
            counter: None,
            user: None,
            note: None,
            note_in_cookie: false,
            endings: Vec::new(),
            moves: 0,
            may_move: false,
            counter_in_redis: false,
            losses: 0,
            moves_before_last_loss: 0,
        }
    }

    /// What the owner's requests write in `lineage`: the lineage, and the login it is at (an
    /// identity: at most one session of it may exist).
    fn lineage_key(&self) -> String {
        format!("g{}.{}", self.lineage, self.login)
    }

    /// Whether a copy saved as `copy` must be anonymous now (only asked while Redis is up).
    ///
    /// With no move between the copy and the end, the end revoked the copy's own id. With one,
    /// the copy reaches the end through the "moved" tombstones, which a later loss of Redis's
    /// data takes away (the revocation horizon).
    fn copy_is_over(&self, copy: &Copy) -> bool {
        self.endings.iter().any(|ending| {
            let covers = ending.lineage == copy.lineage && ending.login == copy.login;
            let reachable = copy.moves == ending.moves || self.losses == copy.losses;
            covers && ending.reached_redis && !ending.forgotten && reachable
        })
    }

    fn ending(&self, by_login: bool) -> Ending {
        Ending {
            lineage: self.lineage,
            login: self.login,
            by_login,
            reached_redis: self.redis_up,
            forgotten: false,
            moves: self.moves,
        }
    }

    /// A request of the owner was served from `source`.
    fn served(&mut self, source: Source) {
        self.counter_in_redis = self.redis_up && matches!(source, Source::Redis | Source::New);
    }

    /// The owner sends a request: its first since Redis came back may move its id (then
    /// `true`).
    fn owner_request(&mut self) -> bool {
        let moves = std::mem::take(&mut self.may_move);
        if moves {
            self.moves += 1;
        }
        moves
    }
}

/// What a request saw.
#[derive(Debug)]
struct Seen {
    counter: Result<Option<i64>, String>,
    user: Result<Option<String>, String>,
    lineage: Result<Option<String>, String>,
    note: Result<Option<u8>, String>,
    source: Source,
}

fn mirrored() -> SessionConfig {
    config().mirrored_keys(["user", "counter", "lineage"])
}

async fn store(server: &RedisServer) -> SessionEngine {
    let manager = RedisManager::builder()
        .url(server.url())
        .breaker_backoff(Duration::from_millis(20))
        .breaker_max_backoff(Duration::from_millis(50))
        .build()
        .expect("manager");
    until_connected(&manager).await;
    SessionEngine::new(manager, mirrored()).expect("store")
}

fn open(store: &SessionEngine, jar: &Jar) -> Session {
    adapter::open(store, jar.0.as_deref().map(str::as_bytes))
}

async fn finish(store: &SessionEngine, jar: &mut Jar, session: &Session) {
    if let Some(set) = adapter::finish(store, session).await.session_cookie() {
        let name_value = set.split(';').next().unwrap_or_default();
        jar.0 = (!set.contains("Max-Age=0")).then(|| name_value.to_owned());
    }
}

fn text<T>(result: resilient_session::Result<Option<T>>) -> Result<Option<T>, String> {
    result.map_err(|err| err.to_string())
}

async fn read(session: &Session) -> Seen {
    Seen {
        counter: text(session.get::<i64>("counter").await),
        user: text(session.get::<String>("user").await),
        lineage: text(session.get::<String>("lineage").await),
        note: text(session.get::<u8>("note").await),
        source: session.source().await,
    }
}

/// The owner's count: `counter` + 1. Returns what it read and where it came from.
async fn count(session: &Session, lineage: &str) -> (Option<i64>, Source) {
    let counter: Option<i64> = session
        .get("counter")
        .await
        .expect("a mirrored key is known");
    session
        .insert("counter", counter.unwrap_or(0) + 1)
        .await
        .expect("insert");
    session.insert("lineage", lineage).await.expect("insert");
    (counter, session.source().await)
}

/// Waits until Redis is reachable again and every queued logout is replayed.
async fn settled(store: &SessionEngine) {
    until_connected(store.manager()).await;
    let deadline = Instant::now() + Duration::from_secs(10);
    while store.stats().revocations_pending > 0 {
        assert!(
            Instant::now() < deadline,
            "logouts not replayed: {:?}",
            store.stats()
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    // The breaker closes on a probe of its own; a request or two may still fall back.
    let deadline = Instant::now() + Duration::from_secs(10);
    while store.manager().health().breaker != resilient_session::BreakerState::Closed {
        assert!(Instant::now() < deadline, "breaker still open");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

/// The session hashes in Redis: their `lineage` and `counter` fields (the values are JSON).
fn sessions(server: &RedisServer) -> Vec<(Option<String>, Option<i64>)> {
    let keys: Vec<String> = server.query(&["KEYS", "session:{*"]);
    let field = |key: &str, name: &str| -> Option<serde_json::Value> {
        let json: Option<String> = server.query(&["HGET", key, name]);
        json.and_then(|json| serde_json::from_str(&json).ok())
    };
    keys.iter()
        .map(|key| {
            let lineage = field(key, "lineage").and_then(|v| v.as_str().map(str::to_owned));
            let counter = field(key, "counter").and_then(|v| v.as_i64());
            (lineage, counter)
        })
        .collect()
}

async fn run(steps: Vec<Step>) -> Result<(), TestCaseError> {
    let mut server = RedisServer::builder().persistent().start();
    let store = store(&server).await;
    let mut model = Model::new();
    let mut owner = Jar::default();
    let mut copies: Vec<Copy> = Vec::new();

    for (n, step) in steps.iter().enumerate() {
        let at = format!("step {n} ({step:?}) of {steps:?}");
        match step {
            Step::Read(index) => {
                let which = index % (copies.len() + 1);
                if which == 0 {
                    model.owner_request();
                    let session = open(&store, &owner);
                    let seen = read(&session).await;
                    finish(&store, &mut owner, &session).await;
                    check_owner(&model, &seen, &at)?;
                    model.served(seen.source);
                    if seen.source == Source::Redis {
                        model.note_in_cookie = false;
                    }
                } else {
                    let copy = &mut copies[which - 1];
                    let session = open(&store, &copy.jar);
                    let seen = read(&session).await;
                    let mut jar = copy.jar.clone();
                    finish(&store, &mut jar, &session).await;
                    copy.jar = jar;
                    check_copy(&model, copy, &seen, &at)?;
                    if model.redis_up && copy.losses < model.losses {
                        // Redis lost its data since the copy was saved: it may have re-seeded
                        // the session under an id of its own, which the owner finds only
                        // through a tombstone.
                        copy.reseeded_at.get_or_insert(model.losses);
                    }
                }
            }
            Step::Count => {
                model.owner_request();
                let session = open(&store, &owner);
                let (before, source) = count(&session, &model.lineage_key()).await;
                finish(&store, &mut owner, &session).await;
                prop_assert_eq!(before, model.counter, "the owner's count read back: {}", at);
                model.counter = Some(model.counter.unwrap_or(0) + 1);
                model.exists = true;
                model.served(source);
                if source == Source::Redis {
                    model.note_in_cookie = false;
                }
            }
            Step::Note(value) => {
                model.owner_request();
                let session = open(&store, &owner);
                session.insert("note", value).await.expect("insert");
                session
                    .insert("lineage", model.lineage_key())
                    .await
                    .expect("insert");
                let source = session.source().await;
                finish(&store, &mut owner, &session).await;
                model.note = Some(*value);
                model.exists = true;
                model.served(source);
                model.note_in_cookie =
                    source != Source::Redis && source != Source::New || !model.redis_up;
            }
            Step::Login => {
                model.owner_request();
                let user = format!("u{}", model.login + 1);
                let session = open(&store, &owner);
                let _ = session.get_value("user").await;
                let source = session.source().await;
                session.cycle_id().await;
                session.insert("user", &user).await.expect("insert");
                let identity = format!("g{}.{}", model.lineage, model.login + 1);
                session.insert("lineage", identity).await.expect("insert");
                finish(&store, &mut owner, &session).await;
                if source == Source::Cookie && !model.note_in_cookie {
                    // A login while Redis is down starts from what the cookie carries.
                    model.note = None;
                }
                if model.exists {
                    model.endings.push(model.ending(true));
                }
                model.login += 1;
                model.user = Some(user);
                model.served(source);
                model.exists = true;
                // A login with Redis up lands everything there; its cookie carries the mirror.
                model.note_in_cookie &= !model.redis_up;
            }
            Step::Logout => {
                model.owner_request();
                let session = open(&store, &owner);
                session.destroy().await;
                finish(&store, &mut owner, &session).await;
                prop_assert!(owner.0.is_none(), "the logout removes the cookie: {}", at);
                if model.exists {
                    model.endings.push(model.ending(false));
                }
                model.lineage += 1;
                model.exists = false;
                model.counter = None;
                model.user = None;
                model.note = None;
                model.note_in_cookie = false;
            }
            Step::Copy => {
                if owner.0.is_some() {
                    copies.push(Copy {
                        jar: owner.clone(),
                        lineage: model.lineage,
                        login: model.login,
                        moves: model.moves,
                        losses: model.losses,
                        reseeded_at: None,
                    });
                }
            }
            Step::Tabs => {
                let may_move = model.owner_request();
                let counting = open(&store, &owner);
                let reading = open(&store, &owner);
                let lineage = model.lineage_key();
                let ((before, source), seen) =
                    tokio::join!(count(&counting, &lineage), read(&reading));
                let (mut read_jar, mut count_jar) = (owner.clone(), owner.clone());
                tokio::join!(
                    finish(&store, &mut count_jar, &counting),
                    finish(&store, &mut read_jar, &reading)
                );
                // The browser keeps the last cookie it is sent: the count's.
                owner = if count_jar.0 != owner.0 {
                    count_jar
                } else {
                    read_jar
                };
                prop_assert_eq!(before, model.counter, "the tab's count read back: {}", at);
                let counter = seen
                    .counter
                    .clone()
                    .map_err(|e| TestCaseError::fail(format!("{e}: {at}")))?;
                let after = Some(model.counter.unwrap_or(0) + 1);
                prop_assert!(
                    counter == model.counter || counter == after,
                    "the other tab read {:?}, expected {:?} or {:?}: {}",
                    counter,
                    model.counter,
                    after,
                    at
                );
                model.counter = after;
                model.exists = true;
                model.served(source);
                // Both tabs may move the session: if the count lost the move, it rides in the
                // cookie (with what the cookie carried) until the owner's next request. Which
                // tab won is seen in Redis.
                let landed = model.redis_up
                    && (!may_move
                        || sessions(&server)
                            .iter()
                            .any(|(l, c)| l.as_deref() == Some(lineage.as_str()) && *c == after));
                model.counter_in_redis &= landed;
                if source == Source::Redis && landed {
                    model.note_in_cookie = false;
                }
            }
            Step::Outage => {
                if model.redis_up {
                    server.kill();
                    model.redis_up = false;
                    model.counter_in_redis = false;
                }
            }
            Step::Recover => {
                if !model.redis_up {
                    server.restart();
                    model.redis_up = true;
                    model.may_move = true;
                    settled(&store).await;
                    for ending in &mut model.endings {
                        ending.reached_redis = true;
                    }
                }
            }
            Step::Lose => {
                for ending in &mut model.endings {
                    // A tombstone Redis had goes with its data; a logout still queued is
                    // replayed after the restart.
                    if ending.reached_redis {
                        ending.forgotten = true;
                    }
                }
                server.restart_empty();
                model.counter_in_redis = false;
                model.redis_up = true;
                model.may_move = true;
                model.losses += 1;
                model.moves_before_last_loss = model.moves;
                settled(&store).await;
                for ending in &mut model.endings {
                    ending.reached_redis = true;
                }
                if !model.note_in_cookie {
                    model.note = None;
                }
            }
        }
        if model.redis_up {
            check_redis(&model, &copies, &server, &at)?;
        }
    }
    Ok(())
}

/// The owner reads exactly what it wrote.
fn check_owner(model: &Model, seen: &Seen, at: &str) -> Result<(), TestCaseError> {
    prop_assert_eq!(
        &seen.counter,
        &Ok(model.counter),
        "the owner's counter: {}",
        at
    );
    prop_assert_eq!(
        &seen.user,
        &Ok(model.user.clone()),
        "the owner's user: {}",
        at
    );
    let lineage = model.exists.then(|| model.lineage_key());
    prop_assert_eq!(&seen.lineage, &Ok(lineage), "the owner's lineage: {}", at);
    match &seen.note {
        Ok(note) => prop_assert_eq!(*note, model.note, "the owner's note: {}", at),
        // Not carried by the cookie while Redis is down: unknown is honest.
        Err(_) => prop_assert!(
            seen.source == Source::Cookie && !model.note_in_cookie,
            "the owner's note unknown ({:?}, served from {:?}): {}",
            seen.note,
            seen.source,
            at
        ),
    }
    Ok(())
}

/// A copy never reads the future, and is anonymous once its session is over for Redis.
fn check_copy(model: &Model, copy: &Copy, seen: &Seen, at: &str) -> Result<(), TestCaseError> {
    if model.redis_up && model.copy_is_over(copy) {
        prop_assert_eq!(
            seen.source,
            Source::New,
            "a copy after its session ended: {}",
            at
        );
        prop_assert_eq!(&seen.user, &Ok(None), "{}", at);
        prop_assert_eq!(&seen.counter, &Ok(None), "{}", at);
        return Ok(());
    }
    if copy.lineage == model.lineage
        && let Ok(Some(counter)) = seen.counter
    {
        prop_assert!(
            counter <= model.counter.unwrap_or(0),
            "a copy read {}: {}",
            counter,
            at
        );
    }
    Ok(())
}

/// No forks, nothing of a lineage that ended, and the owner's counter as the owner wrote it.
///
/// A fork is the revocation horizon's, and allowed, only when a copy of the owner's identity
/// and the owner lost their way to each other: a move one of them would have followed (the
/// owner's, or the copy's own re-seed) went with Redis's data.
fn check_redis(
    model: &Model,
    copies: &[Copy],
    server: &RedisServer,
    at: &str,
) -> Result<(), TestCaseError> {
    let lost_its_way = copies.iter().any(|copy| {
        let owners_move_lost = copy.moves < model.moves_before_last_loss;
        let own_move_lost = copy.reseeded_at.is_some_and(|at| at < model.losses);
        copy.lineage == model.lineage
            && copy.login == model.login
            && (owners_move_lost || own_move_lost)
    });
    let sessions = sessions(server);
    let lineages: Vec<Option<String>> = sessions.iter().map(|(l, _)| l.clone()).collect();
    if model.exists && model.counter_in_redis {
        let counters: Vec<Option<i64>> = sessions
            .iter()
            .filter(|(l, _)| l.as_deref() == Some(model.lineage_key().as_str()))
            .map(|(_, c)| *c)
            .collect();
        // The owner's session has it; so does every other of its identity, unless a copy forked
        // one off (the fork holds what the copy carried).
        let holds = |c: &Option<i64>| *c == model.counter;
        prop_assert!(
            if lost_its_way {
                counters.iter().any(holds)
            } else {
                counters.iter().all(holds)
            },
            "Redis has the owner's counter at {:?}, the owner wrote {:?}: {}",
            counters,
            model.counter,
            at
        );
    }
    let current = lineages
        .iter()
        .filter(|l| l.as_deref() == Some(model.lineage_key().as_str()))
        .count();
    prop_assert!(
        current <= 1 || lost_its_way,
        "{} sessions of the owner's identity: {}",
        current,
        at
    );
    for ending in &model.endings {
        // A copy of the lineage that nothing in Redis ends (it lost its way to the logout, or
        // to a login before it) re-seeds its identity: the revocation horizon.
        let escaped = copies
            .iter()
            .any(|copy| copy.lineage == ending.lineage && !model.copy_is_over(copy));
        if ending.by_login || ending.forgotten || !ending.reached_redis || escaped {
            continue;
        }
        let ended = format!("g{}.", ending.lineage);
        prop_assert!(
            !lineages
                .iter()
                .any(|l| l.as_deref().is_some_and(|l| l.starts_with(&ended))),
            "a session of lineage {} outlived its logout: {}",
            ended,
            at
        );
    }
    Ok(())
}

/// Cases per run: `MODEL_CASES` (64 by default: about ten seconds).
fn cases() -> u32 {
    std::env::var("MODEL_CASES")
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or(64)
}

/// Sequences the property test once found failing, kept.
#[test]
fn sequences_once_found_failing() {
    use Step::{Copy, Count, Login, Logout, Lose, Note, Outage, Read, Recover, Tabs};
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("a runtime");
    // A stale copy re-seeds after Redis lost its data; the owner's newer cookie follows it and
    // must not read the copy's older counter.
    let found = [
        vec![Tabs, Copy, Tabs, Lose, Read(1), Read(0)],
        // A copy saved before a move re-seeds after the logout of the moved session is
        // replayed into an empty Redis: the move went with the data (the revocation horizon).
        vec![
            Count,
            Lose,
            Copy,
            Copy,
            Read(0),
            Outage,
            Logout,
            Lose,
            Read(1),
        ],
        // What a login landed in Redis goes with Redis's data.
        vec![Outage, Note(0), Recover, Login, Lose, Read(0)],
        // A copy from before a login re-seeds once the login's tombstone went with the data,
        // though the lineage's logout was replayed after.
        vec![Count, Copy, Login, Outage, Logout, Lose, Read(1)],
        // A copy re-seeds, Redis loses that too, and the owner re-seeds its own: two sessions.
        vec![Count, Copy, Lose, Read(1), Lose, Count, Read(1)],
        // Tabs that both move a session begun during an outage: the count that lost the move
        // carries its cookie's note on, past a loss of Redis's data.
        vec![Outage, Note(1), Recover, Tabs, Lose, Outage, Read(0)],
    ];
    for steps in found {
        if let Err(failure) = runtime.block_on(run(steps)) {
            panic!("{failure}");
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig {
        cases: cases(),
        max_shrink_iters: 256,
        // A failure prints its minimal sequence; no file is written into the checkout.
        failure_persistence: None,
        ..ProptestConfig::default()
    })]

    #[test]
    fn the_promises_hold_whatever_the_order_of_events(steps in prop::collection::vec(step(), 1..30)) {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .expect("a runtime");
        runtime.block_on(run(steps))?;
    }
}
