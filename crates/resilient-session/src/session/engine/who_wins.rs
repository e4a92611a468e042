//! The rules of the engine as tables, without a Redis: who wins, cookie or Redis (the load),
//! and what the end of a request writes (the save). Each row is a case of the README's
//! "When Redis goes down".

use std::collections::BTreeSet;
use std::sync::Arc;

use serde_json::{Map, Value, json};

use super::answer::{GoneAnswer, Hash, HashAnswer, LegacyAnswer, Tombstone, Unavailable, Written};
use super::load::{Answer, LoadInput, Loaded, Loader, Query, Step};
use super::save::{self, After, Ctx, Gates, Local, Plan, Predecessor, Problem};
use super::state::{
    Basis, ClientCookie, Cookie, Data, Intent, Known, Legacy, Outgoing, Phase, State,
};
use super::{Policy, Stamp};
use crate::cookie::Payload;
use crate::session::SessionId;
use crate::{KeyRing, SessionConfig};

const NOW: i64 = 1_800_000_000;
const EPOCH: &str = "epoch-now";

fn policy() -> Policy {
    Policy::new(&SessionConfig::new(
        KeyRing::from_secret("w".repeat(32)).expect("valid"),
    ))
}

fn mirrored() -> BTreeSet<String> {
    ["user".to_owned()].into()
}

fn fingerprint() -> u32 {
    Payload::fingerprint(&mirrored())
}

fn id(n: u8) -> SessionId {
    SessionId::parse(&format!("{}{}A", char::from(b'A' + n), "a".repeat(41))).expect("an id")
}

fn values(json: Value) -> Map<String, Value> {
    match json {
        Value::Object(map) => map,
        _ => panic!("an object"),
    }
}

/// A cookie for the Redis session `id(1)`, confirmed `age` seconds ago, at `stamp`, mirroring
/// `user` = ada; `tweak` changes it.
fn cookie(age: i64, stamp: Stamp, tweak: impl FnOnce(&mut Payload)) -> Cookie {
    let mut payload = Payload::new(Some(id(1)), NOW - age);
    payload.epoch = Some(EPOCH.into());
    payload.set_stamp(stamp);
    payload.mirror.insert("user".into(), json!("ada"));
    payload.mirrored = fingerprint();
    tweak(&mut payload);
    Cookie {
        payload: Arc::new(payload),
        newest_key: true,
    }
}

fn fresh() -> Cookie {
    cookie(10, Stamp::new(5, 0), |_| {})
}

/// Runs a load: the first step, then `answers` one by one. Returns the questions asked and what
/// is served.
fn load(
    cookie: Option<Cookie>,
    tweak: impl FnOnce(&mut LoadInput<'_>),
    answers: Vec<Answer>,
) -> (Vec<Query>, Loaded) {
    let mirrored = mirrored();
    let mut input = LoadInput {
        cookie,
        legacy_key: None,
        revoked_here: false,
        fail_closed: false,
        mirrored: &mirrored,
        fingerprint: fingerprint(),
        policy: policy(),
        now: NOW,
    };
    tweak(&mut input);
    let mut loader = Loader::new(input);
    let mut asked = Vec::new();
    let mut step = loader.start();
    let mut answers = answers.into_iter();
    loop {
        match step {
            Step::Done(loaded) => {
                assert!(
                    answers.next().is_none(),
                    "answers left over after {asked:?}"
                );
                return (asked, loaded);
            }
            Step::Ask(query) => {
                asked.push(query);
                let answer = answers
                    .next()
                    .unwrap_or_else(|| panic!("no answer for {asked:?}"));
                step = loader.answer(answer);
            }
        }
    }
}

fn found(json: Value, stamp: Stamp) -> Answer {
    Answer::Hash(HashAnswer::Found(Hash {
        values: values(json),
        stamp,
        created: None,
    }))
}

fn gone(tombstone: Tombstone, epoch: &str) -> Answer {
    Answer::Gone(GoneAnswer::Known {
        tombstone,
        epoch: epoch.into(),
    })
}

fn moved_to(n: u8) -> Tombstone {
    Tombstone::Moved {
        digest: *id(n).digest(),
        id: Some(id(n)),
    }
}

/// What a row expects a load to serve.
#[derive(Debug, PartialEq)]
enum Serves {
    /// From Redis at this id, with these values.
    Redis(SessionId, Value),
    /// From the cookie, Redis unavailable.
    Cookie(Value),
    /// Moving from the cookie under a new id, claiming this one.
    Moving(SessionId, Value),
    /// Nothing known; the cookie stays.
    Detached,
    /// The session is over: fresh, and the cookie goes.
    Over,
    /// The cookie predates a login: nothing served, the cookie left alone.
    Superseded,
    /// A fresh session.
    New,
}

fn serves(loaded: &Loaded) -> Serves {
    let data = Value::Object(loaded.data.values.clone());
    match &loaded.phase {
        Phase::Stored { id, .. } => Serves::Redis(id.clone(), data),
        Phase::Fallback => Serves::Cookie(data),
        Phase::Moving { from, .. } => Serves::Moving(from.clone(), data),
        Phase::Detached => Serves::Detached,
        Phase::Superseded => Serves::Superseded,
        Phase::New if loaded.over => Serves::Over,
        Phase::New => Serves::New,
        other => panic!("unexpected {other:?}"),
    }
}

/// A row of a load table: the case, the cookie, Redis's answers, what should be asked, and what
/// should be served.
type Row = (&'static str, Cookie, Vec<Answer>, Vec<Query>, Serves);

/// Runs each row's load: the questions asked, and what is served.
fn check_loads(rows: Vec<Row>) {
    for (case, cookie, answers, expected_queries, expected) in rows {
        let (asked, loaded) = load(Some(cookie), |_| {}, answers);
        assert_eq!(asked, expected_queries, "{case}: what was asked");
        assert_eq!(serves(&loaded), expected, "{case}");
    }
}

#[test]
fn who_wins_cookie_or_redis() {
    let ada = json!({"user": "ada"});
    let in_redis = json!({"user": "ada", "cart": 2});
    let with_outage_writes = |p: &mut Payload| {
        p.data.insert("cart".into(), json!(3));
        p.set_stamp(Stamp::new(5, 1));
    };
    let old_key = |cookie: Cookie| Cookie {
        newest_key: false,
        ..cookie
    };
    let hash = |id_: SessionId| Query::Hash {
        id: id_,
        touch: None,
    };
    let gone_q = |id_: SessionId| Query::Gone { id: id_ };
    let rows: Vec<Row> = vec![
        (
            "Redis has the session: Redis's data",
            fresh(),
            vec![found(in_redis.clone(), Stamp::new(5, 0))],
            vec![hash(id(1))],
            Serves::Redis(id(1), in_redis.clone()),
        ),
        (
            "Redis has it, the cookie's outage writes are newer: they land on it",
            cookie(10, Stamp::new(5, 0), with_outage_writes),
            vec![found(in_redis.clone(), Stamp::new(5, 0))],
            vec![hash(id(1))],
            Serves::Redis(id(1), json!({"user": "ada", "cart": 3})),
        ),
        (
            "a stale outage cookie (Redis wrote since): dropped, Redis's values stand",
            cookie(10, Stamp::new(5, 0), with_outage_writes),
            vec![found(json!({"user": "ada", "cart": 8}), Stamp::new(6, 0))],
            vec![hash(id(1))],
            Serves::Redis(id(1), json!({"user": "ada", "cart": 8})),
        ),
        (
            "a failed-over Redis that lost writes it had confirmed to the cookie: the cookie's \
             mirror lands too, with what it wrote",
            cookie(10, Stamp::new(9, 1), |p| {
                p.mirror.insert("user".into(), json!("bob"));
                p.data.insert("cart".into(), json!(5));
            }),
            vec![found(in_redis.clone(), Stamp::new(7, 0))],
            vec![hash(id(1))],
            Serves::Redis(id(1), json!({"user": "bob", "cart": 5})),
        ),
        (
            "a failed-over Redis that lost a save of nothing but a merged view (it left the hash \
             at the view's stamp): the mirror lands",
            cookie(10, Stamp::new(5, 1), |p| {
                p.mirror.insert("user".into(), json!("bob"));
            }),
            vec![found(in_redis.clone(), Stamp::new(5, 0))],
            vec![hash(id(1))],
            Serves::Redis(id(1), json!({"user": "bob", "cart": 2})),
        ),
        (
            "a failed save's cookie, stamped past the state it loaded (7 writes), and another \
             request wrote since (8): only what the cookie wrote lands, its mirror is older",
            cookie(10, Stamp::new(8, 1), |p| {
                p.set_mirror_stamp(Stamp::new(7, 0));
                p.data.insert("cart".into(), json!(5));
            }),
            vec![found(json!({"user": "bob"}), Stamp::new(8, 0))],
            vec![hash(id(1))],
            Serves::Redis(id(1), json!({"user": "bob", "cart": 5})),
        ),
        (
            "an older key's view is never applied",
            old_key(cookie(10, Stamp::new(5, 0), with_outage_writes)),
            vec![found(in_redis.clone(), Stamp::new(5, 0))],
            vec![hash(id(1))],
            Serves::Redis(id(1), in_redis.clone()),
        ),
        (
            "Redis unavailable: the cookie stands in",
            cookie(10, Stamp::new(5, 0), with_outage_writes),
            vec![Answer::Hash(HashAnswer::Unavailable)],
            vec![hash(id(1))],
            Serves::Cookie(json!({"user": "ada", "cart": 3})),
        ),
        (
            "Redis unavailable, the cookie too old to stand in: nothing known",
            cookie(3601, Stamp::new(5, 0), |_| {}),
            vec![Answer::Hash(HashAnswer::Unavailable)],
            vec![Query::Hash {
                id: id(1),
                touch: Some(7 * 24 * 3600),
            }],
            Serves::Detached,
        ),
        (
            "Redis unavailable, an older key's cookie: it does not stand in",
            old_key(fresh()),
            vec![Answer::Hash(HashAnswer::Unavailable)],
            vec![hash(id(1))],
            Serves::Detached,
        ),
        (
            "no session, same epoch: it ended",
            fresh(),
            vec![
                Answer::Hash(HashAnswer::Missing),
                gone(Tombstone::None, EPOCH),
            ],
            vec![hash(id(1)), gone_q(id(1))],
            Serves::Over,
        ),
        (
            "no session, a new epoch: re-seeded from the cookie",
            fresh(),
            vec![
                Answer::Hash(HashAnswer::Missing),
                gone(Tombstone::None, "epoch-after-restart"),
            ],
            vec![hash(id(1)), gone_q(id(1))],
            Serves::Moving(id(1), ada.clone()),
        ),
        (
            "no session, a new epoch, but a cookie too old: ended",
            cookie(3601, Stamp::new(5, 0), |_| {}),
            vec![
                Answer::Hash(HashAnswer::Missing),
                gone(Tombstone::None, "epoch-after-restart"),
            ],
            vec![
                Query::Hash {
                    id: id(1),
                    touch: Some(7 * 24 * 3600),
                },
                gone_q(id(1)),
            ],
            Serves::Over,
        ),
        (
            "no session, a new epoch, an older key: never re-seeded from it",
            old_key(fresh()),
            vec![
                Answer::Hash(HashAnswer::Missing),
                gone(Tombstone::None, "epoch-after-restart"),
            ],
            vec![hash(id(1)), gone_q(id(1))],
            Serves::Over,
        ),
        (
            "no session, logged out (a tombstone): ended, whatever the epoch",
            fresh(),
            vec![
                Answer::Hash(HashAnswer::Missing),
                gone(
                    Tombstone::Revoked { successor: None },
                    "epoch-after-restart",
                ),
            ],
            vec![hash(id(1)), gone_q(id(1))],
            Serves::Over,
        ),
        (
            "no session, a login took it: the old cookie never follows, nor is it removed \
             (the browser has the login's)",
            fresh(),
            vec![
                Answer::Hash(HashAnswer::Missing),
                gone(Tombstone::Cycled, EPOCH),
            ],
            vec![hash(id(1)), gone_q(id(1))],
            Serves::Superseded,
        ),
        (
            "no session, another copy re-seeded it: followed to its successor",
            fresh(),
            vec![
                Answer::Hash(HashAnswer::Missing),
                gone(moved_to(2), "epoch-after-restart"),
                found(ada.clone(), Stamp::new(5, 0)),
            ],
            vec![
                hash(id(1)),
                gone_q(id(1)),
                Query::Hash {
                    id: id(2),
                    touch: Some(7 * 24 * 3600),
                },
            ],
            Serves::Redis(id(2), ada.clone()),
        ),
        (
            "a successor lost in its turn: re-seeded, claiming it",
            fresh(),
            vec![
                Answer::Hash(HashAnswer::Missing),
                gone(moved_to(2), EPOCH),
                Answer::Hash(HashAnswer::Missing),
                gone(Tombstone::None, EPOCH),
            ],
            vec![
                hash(id(1)),
                gone_q(id(1)),
                Query::Hash {
                    id: id(2),
                    touch: Some(7 * 24 * 3600),
                },
                gone_q(id(2)),
            ],
            Serves::Moving(id(2), ada.clone()),
        ),
        (
            "a successor that cannot be opened is not followed",
            fresh(),
            vec![
                Answer::Hash(HashAnswer::Missing),
                gone(
                    Tombstone::Moved {
                        digest: *id(2).digest(),
                        id: None,
                    },
                    EPOCH,
                ),
            ],
            vec![hash(id(1)), gone_q(id(1))],
            Serves::Over,
        ),
        (
            "Redis said gone but cannot say why (out of memory, down): the cookie is not served",
            fresh(),
            vec![
                Answer::Hash(HashAnswer::Missing),
                Answer::Gone(GoneAnswer::Unavailable),
            ],
            vec![hash(id(1)), gone_q(id(1))],
            Serves::Detached,
        ),
        (
            "corrupt data in Redis: deleted (with a tombstone), a fresh session",
            fresh(),
            vec![
                Answer::Hash(HashAnswer::Corrupt("not JSON".into())),
                Answer::Discarded,
            ],
            vec![
                hash(id(1)),
                Query::Discard {
                    id: id(1),
                    reason: "not JSON".into(),
                },
            ],
            Serves::Over,
        ),
    ];
    check_loads(rows);
}

#[test]
fn sessions_begun_during_an_outage() {
    let cookie_only = |age: i64| {
        cookie(age, Stamp::new(0, 2), |p| {
            p.id = None;
            p.provisional = Some(id(7));
        })
    };
    let own = || Query::Tombstone { id: id(7) };
    let rows: Vec<Row> = vec![
        (
            "no tombstone: it moves to Redis, claiming its own id",
            cookie_only(10),
            vec![Answer::Tombstone(Ok(Tombstone::None))],
            vec![own()],
            Serves::Moving(id(7), json!({"user": "ada"})),
        ),
        (
            "Redis unavailable: the cookie is all there is",
            cookie_only(10),
            vec![Answer::Tombstone(Err(Unavailable))],
            vec![own()],
            Serves::Cookie(json!({"user": "ada"})),
        ),
        (
            "logged out meanwhile",
            cookie_only(10),
            vec![Answer::Tombstone(Ok(Tombstone::Revoked {
                successor: None,
            }))],
            vec![own()],
            Serves::Over,
        ),
        (
            "another copy moved it: followed",
            cookie_only(10),
            vec![
                Answer::Tombstone(Ok(moved_to(2))),
                found(json!({"user": "ada"}), Stamp::new(0, 2)),
            ],
            vec![
                own(),
                Query::Hash {
                    id: id(2),
                    touch: Some(7 * 24 * 3600),
                },
            ],
            Serves::Redis(id(2), json!({"user": "ada"})),
        ),
        (
            "too old to stand on its own: over, without asking",
            cookie_only(3601),
            vec![],
            vec![],
            Serves::Over,
        ),
    ];
    check_loads(rows);
}

#[test]
fn what_the_process_knows_comes_first() {
    let (asked, loaded) = load(Some(fresh()), |input| input.revoked_here = true, vec![]);
    assert!(asked.is_empty(), "a logout waiting here: no Redis command");
    assert_eq!(serves(&loaded), Serves::Over);

    let (_, loaded) = load(
        Some(fresh()),
        |input| input.fail_closed = true,
        vec![Answer::Hash(HashAnswer::Unavailable)],
    );
    assert_eq!(
        serves(&loaded),
        Serves::Detached,
        "failing closed: no cookie stands in"
    );

    let (asked, loaded) = load(None, |_| {}, vec![]);
    assert!(asked.is_empty());
    assert_eq!(serves(&loaded), Serves::New);

    let (asked, loaded) = load(
        None,
        |input| input.legacy_key = Some("old:1".into()),
        vec![Answer::Legacy(LegacyAnswer::Found {
            values: values(json!({"counter": 3})),
            deadline: Some(NOW + 3600),
        })],
    );
    assert_eq!(
        asked,
        vec![Query::Legacy {
            key: "old:1".into()
        }]
    );
    let Phase::Imported { old_key, created } = &loaded.phase else {
        panic!("imported: {loaded:?}");
    };
    assert_eq!(old_key, "old:1");
    assert_eq!(
        *created,
        NOW + 3600 - 30 * 24 * 3600,
        "the old deadline is kept"
    );
    assert!(loaded.legacy_gone);
}

#[test]
fn fallback_knows_the_mirror_and_the_outage_writes_only() {
    let cookie = cookie(10, Stamp::new(5, 1), |p| {
        p.data.insert("cart".into(), json!(3));
        p.removed.push("coupon".into());
    });
    let (_, loaded) = load(
        Some(cookie),
        |_| {},
        vec![Answer::Hash(HashAnswer::Unavailable)],
    );
    let data = &loaded.data;
    assert_eq!(data.get("user"), Ok(Some(&json!("ada"))));
    assert_eq!(data.get("cart"), Ok(Some(&json!(3))));
    assert_eq!(data.get("coupon"), Ok(None), "removed while Redis was down");
    assert!(
        data.get("mfa_pending").is_err(),
        "not carried: unknown, not absent"
    );

    let cut = cookie_with_cut_mirror();
    let (_, loaded) = load(
        Some(cut),
        |_| {},
        vec![Answer::Hash(HashAnswer::Unavailable)],
    );
    assert!(
        loaded.data.get("user").is_err(),
        "a mirror that did not fit is unknown"
    );
}

fn cookie_with_cut_mirror() -> Cookie {
    cookie(10, Stamp::new(5, 0), |p| {
        p.mirror.clear();
        p.incomplete = true;
    })
}

#[test]
fn the_stale_outage_cookie_of_a_long_outage_never_rolls_values_back() {
    // Counter at 5 (stamp 5), Redis down: one write gives C1 (5.1), the next C2 (5.2).
    let c1 = cookie(10, Stamp::new(5, 1), |p| {
        p.mirror.insert("counter".into(), json!(6));
        p.written.push("counter".into());
    });
    let c2 = cookie(10, Stamp::new(5, 2), |p| {
        p.mirror.insert("counter".into(), json!(7));
        p.written.push("counter".into());
    });
    let redis = json!({"user": "ada", "counter": 5});
    // Redis back: C2 lands (stamp 5 < 5.2), the write after it takes Redis to 6 with 8.
    let (_, loaded) = load(Some(c2), |_| {}, vec![found(redis, Stamp::new(5, 0))]);
    assert_eq!(loaded.data.values["counter"], 7);
    assert_eq!(
        loaded.phase,
        Phase::Stored {
            id: id(1),
            stamp: Stamp::new(5, 0),
            created: NOW - 10,
            confirmed: NOW - 10,
            merged: Some(Stamp::new(5, 0)),
        }
    );
    // Then one request with C1: 5.1 is older than 6, nothing of it is applied.
    let (_, loaded) = load(
        Some(c1),
        |_| {},
        vec![found(
            json!({"user": "ada", "counter": 8}),
            Stamp::new(6, 0),
        )],
    );
    assert_eq!(loaded.data.values["counter"], 8);
    assert!(!loaded.data.is_dirty(), "nothing to write back");
    assert!(loaded.notes.stale_view || !loaded.data.is_dirty());
}

// ---- The save ---------------------------------------------------------------------------

fn ctx(mirrored: &BTreeSet<String>) -> Ctx<'_> {
    Ctx {
        policy: policy(),
        mirrored,
        fingerprint: fingerprint(),
        now: NOW,
    }
}

/// A request's state after its load.
fn state(cookie: Option<Cookie>, phase: Phase, data: Value) -> State {
    let mut state = State::new(None, None);
    state.had_cookie = cookie.is_some();
    state.cookie = cookie.map_or(ClientCookie::None, ClientCookie::Valid);
    state.phase = phase;
    state.data = Data {
        values: values(data),
        ..Data::default()
    };
    state
}

fn stored(stamp: Stamp) -> Phase {
    Phase::Stored {
        id: id(1),
        stamp,
        created: NOW - 10,
        confirmed: NOW - 10,
        merged: None,
    }
}

fn ids() -> impl FnMut() -> SessionId {
    let mut n = 10;
    move || {
        n += 1;
        id(n)
    }
}

fn local_of(after: After) -> Local {
    match after {
        After::Local(local) => local,
        other => panic!("no question expected: {other:?}"),
    }
}

fn plan(state: &mut State) -> Plan {
    plan_with(state, None)
}

fn plan_with(state: &mut State, legacy_key: Option<String>) -> Plan {
    let mirrored = mirrored();
    save::plan(state, ctx(&mirrored), false, legacy_key, &mut ids())
}

#[test]
fn writes_go_to_redis_field_by_field() {
    let mut state = state(
        Some(fresh()),
        stored(Stamp::new(5, 0)),
        json!({"user": "ada", "cart": 2}),
    );
    state.data.set("cart", json!(3));
    state.data.remove("coupon");
    let Plan::Write(write) = plan(&mut state) else {
        panic!("a write");
    };
    assert_eq!(write.id, id(1));
    assert!(!write.create, "only if the session still exists");
    assert_eq!(write.set, [("cart".to_owned(), "3".to_owned())]);
    assert_eq!(write.delete, ["coupon"]);
    assert_eq!(write.floor, Stamp::new(5, 0), "above what the cookie saw");
    assert_eq!(write.guarded, None);
    assert_eq!(write.predecessor, None);
}

#[test]
fn a_merged_view_is_written_only_if_redis_is_still_where_it_was_merged() {
    let cookie = cookie(10, Stamp::new(5, 1), |p| {
        p.data.insert("cart".into(), json!(3));
    });
    let (_, loaded) = load(
        Some(cookie.clone()),
        |_| {},
        vec![found(
            json!({"user": "ada", "cart": 2, "theme": "dark"}),
            Stamp::new(5, 0),
        )],
    );
    let mut state = state(Some(cookie), loaded.phase, json!({}));
    state.data = loaded.data;
    state.data.set("theme", json!("light"));
    let Plan::Write(write) = plan(&mut state) else {
        panic!("a write");
    };
    assert_eq!(
        write.set,
        [("theme".to_owned(), "\"light\"".to_owned())],
        "the handler's"
    );
    let guarded = write.guarded.expect("the view's part");
    assert_eq!(guarded.expected, Stamp::new(5, 0));
    assert_eq!(
        guarded.view,
        Stamp::new(5, 1),
        "where a save of the view alone leaves it"
    );
    assert_eq!(guarded.set, [("cart".to_owned(), "3".to_owned())]);
}

#[test]
fn a_login_writes_a_new_id_and_retires_the_old_one() {
    let mut login = state(
        Some(fresh()),
        stored(Stamp::new(5, 0)),
        json!({"user": "ada"}),
    );
    login.intent.cycle();
    login.data.set("user", json!("bob"));
    let Plan::Write(write) = plan(&mut login) else {
        panic!("a write");
    };
    assert_ne!(write.id, id(1));
    assert!(write.create);
    // The script copies the old session as it is then; the login's changes go over it.
    assert_eq!(write.set, [("user".to_owned(), "\"bob\"".to_owned())]);
    assert_eq!(
        write.loaded,
        Some(Stamp::new(5, 0)),
        "it says if it missed writes"
    );
    assert_eq!(
        write.predecessor,
        Some(Predecessor::Cycle {
            old: id(1),
            tombstone_secs: 3600 + 300,
            copy: true,
        })
    );

    // A view merged at load is guarded, as in an update; a login that cleared the session
    // copies nothing.
    let mut merged = state(
        Some(fresh()),
        Phase::Stored {
            id: id(1),
            stamp: Stamp::new(5, 0),
            created: NOW - 10,
            confirmed: NOW - 10,
            merged: Some(Stamp::new(5, 0)),
        },
        json!({"user": "ada", "cart": 3}),
    );
    merged.data.merged.insert("cart".into());
    merged.intent.cycle();
    let Plan::Write(write) = plan(&mut merged) else {
        panic!("a write");
    };
    assert!(write.set.is_empty());
    let guarded = write.guarded.expect("guarded");
    assert_eq!(
        (guarded.expected, guarded.set),
        (Stamp::new(5, 0), vec![("cart".to_owned(), "3".to_owned())])
    );

    let mut cleared = state(
        Some(fresh()),
        stored(Stamp::new(5, 0)),
        json!({"user": "ada", "cart": 3}),
    );
    cleared.data.clear();
    cleared.data.set("user", json!("bob"));
    cleared.intent.cycle();
    let Plan::Write(write) = plan(&mut cleared) else {
        panic!("a write");
    };
    assert_eq!(write.set, [("user".to_owned(), "\"bob\"".to_owned())]);
    assert!(matches!(
        write.predecessor,
        Some(Predecessor::Cycle { copy: false, .. })
    ));
}

#[test]
fn a_moving_session_claims_its_old_id_once() {
    for (login, followable, stamp) in [(false, true, Some(Stamp::new(5, 1))), (true, false, None)] {
        let mut state = state(
            Some(fresh()),
            Phase::Moving {
                from: id(1),
                stamp: Stamp::new(5, 1),
                created: NOW - 10,
                confirmed: NOW - 10,
                basis: Basis::Cookie,
            },
            json!({"user": "ada"}),
        );
        if login {
            state.intent.cycle();
        }
        let Plan::Write(write) = plan(&mut state) else {
            panic!("a write");
        };
        let Some(Predecessor::Claim {
            old,
            followable: f,
            tombstone_secs,
        }) = write.predecessor
        else {
            panic!("a claim: {write:?}");
        };
        assert_eq!(old, id(1));
        assert_eq!(f, followable, "a login's old cookie never follows");
        assert!(tombstone_secs >= 3600 + 300);
        assert_eq!(write.stamp, stamp, "a move continues the cookie's history");
    }
}

#[test]
fn a_detached_session_keeps_no_changes_and_says_so() {
    let mut state = state(Some(fresh()), Phase::Detached, json!({}));
    state.data.known = Known::Only(BTreeSet::new());
    state.data.set("cart", json!(1));
    assert_eq!(
        plan(&mut state),
        Plan::Local(Local {
            problem: Some(Problem::FallbackExpired),
            ..Local::default()
        })
    );
}

#[test]
fn outage_writes_ride_in_the_cookie() {
    let mut state = state(Some(fresh()), Phase::Fallback, json!({"user": "ada"}));
    state.data.known = Known::Only(["user".to_owned()].into());
    state.data.set("user", json!("bob"));
    state.data.set("cart", json!(3));
    state.data.remove("coupon");
    let Plan::Local(local) = plan(&mut state) else {
        panic!("no Redis command");
    };
    let payload = local.issue.expect("a cookie");
    assert!(local.fallback_write);
    assert_eq!(payload.id, Some(id(1)), "the same identity");
    assert_eq!(payload.mirror["user"], "bob");
    assert_eq!(payload.data["cart"], 3);
    assert!(
        !payload.data.contains_key("user"),
        "mirrored keys ride once"
    );
    assert_eq!(payload.removed, ["coupon"]);
    assert_eq!(payload.stamp(), Stamp::new(5, 1), "one more outage write");
    assert_eq!(
        payload.touched,
        NOW - 10,
        "Redis has not confirmed it since"
    );
}

#[test]
fn a_login_during_an_outage_gets_an_identity_of_its_own() {
    let mut fallback = state(Some(fresh()), Phase::Fallback, json!({"user": "ada"}));
    fallback.intent.cycle();
    let Plan::Local(local) = plan(&mut fallback) else {
        panic!("no Redis command");
    };
    let payload = local.issue.expect("a cookie");
    assert_eq!(payload.id, None);
    assert!(payload.provisional.is_some() && payload.provisional != Some(id(1)));
    assert_eq!(local.revoke, Some(id(1)), "the old identity is revoked");
    assert_eq!(payload.stamp(), Stamp::new(0, 1));
    assert_eq!(payload.touched, NOW - 10, "the old identity's window");

    // On a session nothing could be read of (too old to stand in): a new session, nothing of
    // the old one carried, a window of its own.
    let mirrored = mirrored();
    let too_old = cookie(4000, Stamp::new(5, 0), |_| {});
    let mut detached = state(Some(too_old), Phase::Detached, json!({}));
    detached.data.known = Known::Only(BTreeSet::new());
    detached.intent.cycle();
    detached.data.set("user", json!("bob"));
    let Plan::Write(write) = plan(&mut detached) else {
        panic!("Redis may be back: tried first");
    };
    let local = local_of(save::after_write(
        &mut detached,
        &write,
        Written::Failed,
        ctx(&mirrored),
        &mut ids(),
    ));
    let payload = local.issue.expect("a cookie-only session");
    assert_eq!(local.revoke, Some(id(1)));
    assert_eq!(payload.touched, NOW, "a window of its own");
    assert!(!payload.partial && !payload.incomplete, "{payload:?}");
}

#[test]
fn an_empty_session_ends_but_only_if_everything_is_known() {
    let mut known = state(
        Some(fresh()),
        stored(Stamp::new(5, 0)),
        json!({"user": "ada"}),
    );
    known.data.clear();
    assert!(
        matches!(plan(&mut known), Plan::End(_)),
        "an empty session is no session"
    );

    let mut unknown = state(Some(fresh()), Phase::Fallback, json!({"user": "ada"}));
    unknown.data.known = Known::Only(["user".to_owned()].into());
    unknown.data.clear();
    let Plan::Local(local) = plan(&mut unknown) else {
        panic!("no logout of what the cookie does not carry");
    };
    assert_eq!(local.issue.expect("a cookie").removed, ["user"]);
}

#[test]
fn a_logout_revokes_the_session_and_an_imported_apps_key() {
    let mut logout = state(Some(fresh()), Phase::Unloaded, json!({}));
    logout.intent = Intent::Destroy;
    let Plan::End(end) = plan(&mut logout) else {
        panic!("an end");
    };
    assert_eq!(end.revoke, Some(id(1)));

    // The first request after a migration is a logout: the old app's key goes too.
    let mut first = state(None, Phase::Unloaded, json!({}));
    first.legacy = Legacy::Present("old-cookie".into());
    first.intent = Intent::Destroy;
    let Plan::End(end) = plan_with(&mut first, Some("old:key".into())) else {
        panic!("an end");
    };
    assert_eq!((end.revoke, end.retire.as_deref()), (None, Some("old:key")));
    save::ended(&mut first);
    assert_eq!(first.legacy, Legacy::Remove, "and its cookie");

    let mut imported = state(
        None,
        Phase::Imported {
            old_key: "old:key".into(),
            created: NOW,
        },
        json!({"counter": 3}),
    );
    imported.intent = Intent::Destroy;
    let Plan::End(end) = plan(&mut imported) else {
        panic!("an end");
    };
    assert_eq!(
        end.retire.as_deref(),
        Some("old:key"),
        "a logout after an import"
    );
}

#[test]
fn unused_sessions_are_touched_when_due() {
    let mirrored = mirrored();
    let rows = [(10, false, false), (300, false, true), (300, true, false)];
    for (age, revoked_here, touch) in rows {
        let mut state = state(
            Some(cookie(age, Stamp::new(5, 0), |_| {})),
            Phase::Unloaded,
            json!({}),
        );
        let plan = save::plan(&mut state, ctx(&mirrored), revoked_here, None, &mut ids());
        assert_eq!(
            matches!(plan, Plan::Touch { .. }),
            touch,
            "confirmed {age} s ago, revoked here: {revoked_here}"
        );
    }
    // Due, but a touch could not re-issue the cookie (outage writes Redis lacks, an older
    // key): read instead, once.
    let pending = cookie(300, Stamp::new(5, 1), |p| p.written.push("user".into()));
    let older = Cookie {
        newest_key: false,
        ..cookie(300, Stamp::new(5, 0), |_| {})
    };
    for cookie in [pending, older] {
        let mut state = state(Some(cookie), Phase::Unloaded, json!({}));
        let plan = save::plan(&mut state, ctx(&mirrored), false, None, &mut ids());
        assert_eq!(plan, Plan::Read);
    }
}

#[test]
fn a_read_reissues_the_cookie_only_when_what_it_holds_changed() {
    let rows: Vec<(&str, Cookie, Phase, Value, bool)> = vec![
        (
            "nothing changed",
            fresh(),
            stored(Stamp::new(5, 0)),
            json!({"user": "ada"}),
            false,
        ),
        (
            "touched at load",
            fresh(),
            Phase::Stored {
                id: id(1),
                stamp: Stamp::new(5, 0),
                created: NOW - 10,
                confirmed: NOW,
                merged: None,
            },
            json!({"user": "ada"}),
            true,
        ),
        (
            "another stamp",
            fresh(),
            stored(Stamp::new(6, 0)),
            json!({"user": "ada"}),
            true,
        ),
        (
            "another mirror",
            fresh(),
            stored(Stamp::new(5, 0)),
            json!({"user": "bob"}),
            true,
        ),
        (
            "an outage view dropped",
            cookie(10, Stamp::new(5, 1), |p| {
                p.data.insert("cart".into(), json!(1));
            }),
            stored(Stamp::new(6, 0)),
            json!({"user": "ada"}),
            true,
        ),
        (
            "a mirror that did not fit stays out",
            cookie_with_cut_mirror(),
            stored(Stamp::new(5, 0)),
            json!({"user": "ada"}),
            false,
        ),
    ];
    for (case, cookie, phase, data, reissue) in rows {
        let mut state = state(Some(cookie), phase, data);
        let Plan::Local(local) = plan(&mut state) else {
            panic!("{case}: no Redis command for a read");
        };
        assert_eq!(local.issue.is_some(), reissue, "{case}");
        if let Some(payload) = local.issue {
            assert!(!payload.has_pending(), "{case}");
        }
    }
}

#[test]
fn after_the_save_script() {
    let mirrored = mirrored();
    let ctx = ctx(&mirrored);
    let write_of = |state: &mut State| match plan(state) {
        Plan::Write(write) => write,
        other => panic!("a write: {other:?}"),
    };
    // The state after the script answered its write.
    let answered = |state: &mut State, written: Written| {
        let write = write_of(state);
        local_of(save::after_write(state, &write, written, ctx, &mut ids()))
    };

    // Written: the cookie names the hash and its new stamp.
    let mut state1 = state(
        Some(fresh()),
        stored(Stamp::new(5, 0)),
        json!({"user": "ada"}),
    );
    state1.data.set("cart", json!(1));
    let local = answered(&mut state1, Written::Yes(Stamp::new(6, 0)));
    let payload = local.issue.expect("a cookie");
    assert_eq!(
        (payload.stamp(), payload.touched, payload.id),
        (Stamp::new(6, 0), NOW, Some(id(1)))
    );
    assert!(!state1.data.is_dirty());

    // Gone while the request ran: why? A logout ended it (nothing comes back); a login
    // superseded it (the cookie is left alone); Redis lost it (it moves, with the changes).
    let rows: Vec<(&str, GoneAnswer, Phase, Outgoing, bool)> = vec![
        (
            "logged out",
            GoneAnswer::Known {
                tombstone: Tombstone::Revoked { successor: None },
                epoch: EPOCH.into(),
            },
            Phase::Ended,
            Outgoing::Remove,
            false,
        ),
        (
            "a login took it",
            GoneAnswer::Known {
                tombstone: Tombstone::Cycled,
                epoch: EPOCH.into(),
            },
            Phase::Superseded,
            Outgoing::Keep,
            false,
        ),
        (
            "expired, deleted",
            GoneAnswer::Known {
                tombstone: Tombstone::None,
                epoch: EPOCH.into(),
            },
            Phase::Ended,
            Outgoing::Remove,
            false,
        ),
        (
            "Redis lost it",
            GoneAnswer::Known {
                tombstone: Tombstone::None,
                epoch: "epoch-after-restart".into(),
            },
            Phase::Moving {
                from: id(1),
                stamp: Stamp::new(5, 0),
                created: NOW - 10,
                confirmed: NOW - 10,
                basis: Basis::Redis,
            },
            Outgoing::Keep,
            true,
        ),
    ];
    for (case, answer, phase, outgoing, moves) in rows {
        let mut state2 = state(
            Some(fresh()),
            stored(Stamp::new(5, 0)),
            json!({"user": "ada"}),
        );
        state2.data.set("cart", json!(1));
        let write = write_of(&mut state2);
        let after = save::after_write(&mut state2, &write, Written::Gone, ctx, &mut ids());
        assert_eq!(after, After::Recheck(id(1)), "{case}: asks why");
        let next = save::after_recheck(
            &mut state2,
            &id(1),
            answer,
            Gates::default(),
            ctx,
            &mut ids(),
        );
        assert_eq!(state2.phase, phase, "{case}");
        assert_eq!(state2.outgoing, outgoing, "{case}");
        match next {
            Plan::Write(write) => {
                assert!(moves, "{case}: {write:?}");
                assert!(
                    write.set.contains(&("cart".to_owned(), "1".to_owned())),
                    "kept"
                );
                assert!(matches!(write.predecessor, Some(Predecessor::Claim { .. })));
            }
            Plan::Local(_) => assert!(!moves, "{case}"),
            other => panic!("{case}: {other:?}"),
        }
    }

    // Taken by another copy's move: this request's changes ride in the cookie, to merge later.
    let mut state3 = state(
        Some(fresh()),
        Phase::Moving {
            from: id(1),
            stamp: Stamp::new(5, 0),
            created: NOW - 10,
            confirmed: NOW - 10,
            basis: Basis::Cookie,
        },
        json!({"user": "ada"}),
    );
    state3.data.set("cart", json!(1));
    let local = answered(&mut state3, Written::Taken(moved_to(2)));
    let payload = local.issue.expect("a cookie");
    assert_eq!(payload.id, Some(id(1)));
    assert_eq!(
        payload.stamp(),
        Stamp::new(5, 1),
        "newer than the move: merged by the next request"
    );

    // Failed: a login falls back to a cookie-only identity of its own.
    let mut state4 = state(
        Some(fresh()),
        stored(Stamp::new(5, 0)),
        json!({"user": "ada"}),
    );
    state4.intent.cycle();
    let local = answered(&mut state4, Written::Failed);
    assert_eq!(local.revoke, Some(id(1)));
    assert!(local.issue.expect("a cookie").provisional.is_some());

    // Failed (the answer lost: perhaps written, perhaps not): the cookie's stamp goes past
    // anything the write could have left, so Redis never wins over these changes.
    let mut state6 = state(
        Some(fresh()),
        stored(Stamp::new(5, 0)),
        json!({"user": "ada"}),
    );
    state6.data.set("cart", json!(1));
    let local = answered(&mut state6, Written::Failed);
    let payload = local.issue.expect("a cookie");
    assert_eq!(payload.id, Some(id(1)));
    assert_eq!(payload.data["cart"], 1);
    assert_eq!(payload.stamp(), Stamp::new(6, 1));
    assert_eq!(
        payload.mirror_stamp(),
        Stamp::new(5, 0),
        "its mirror is the state it loaded"
    );
    // The same on a hash whose stamp carries outage writes (a merged view left it there): past
    // what another request's write makes of it too.
    let mut state7 = state(
        Some(cookie(10, Stamp::new(5, 1), |_| {})),
        stored(Stamp::new(5, 1)),
        json!({"user": "ada"}),
    );
    state7.data.set("cart", json!(1));
    let local = answered(&mut state7, Written::Failed);
    let payload = local.issue.expect("a cookie");
    assert!(payload.stamp() > Stamp::new(6, 1), "{:?}", payload.stamp());
    assert!(
        payload.stamp() > Stamp::new(6, 0),
        "newer than the write, had it landed"
    );

    // Failed import: the imported data rides in a cookie of ours; the old key goes later.
    let mut state5 = state(
        None,
        Phase::Imported {
            old_key: "old".into(),
            created: NOW,
        },
        json!({"counter": 3}),
    );
    state5.legacy = Legacy::Remove;
    let local = answered(&mut state5, Written::Failed);
    assert_eq!(local.retire.as_deref(), Some("old"));
    let payload = local.issue.expect("a cookie-only session");
    assert_eq!(payload.data["counter"], 3);
    assert_eq!(state5.legacy, Legacy::Remove);
}

#[test]
fn a_save_that_finds_its_session_gone_moves_it_only_as_a_load_would() {
    let mirrored = mirrored();
    let ctx = ctx(&mirrored);
    let older_key = Cookie {
        newest_key: false,
        ..fresh()
    };
    let no_epoch = cookie(10, Stamp::new(5, 0), |p| p.epoch = None);
    let closed = Gates {
        fail_closed: true,
        ..Gates::default()
    };
    let revoked_here = Gates {
        revoked_here: true,
        ..Gates::default()
    };
    let lost = "epoch-after-restart";
    // The cookie, the id the request had loaded (its own, or a successor it followed), what
    // this process knows, the data epoch now; whether the session moves (else it ended).
    let rows: Vec<(&str, Cookie, SessionId, Gates, &str, bool)> = vec![
        (
            "its own id, a new epoch: lost",
            fresh(),
            id(1),
            Gates::default(),
            lost,
            true,
        ),
        (
            "its own id, the same epoch: ended",
            fresh(),
            id(1),
            Gates::default(),
            EPOCH,
            false,
        ),
        (
            "a successor it followed: lost",
            fresh(),
            id(2),
            Gates::default(),
            EPOCH,
            true,
        ),
        ("failing closed", fresh(), id(1), closed, lost, false),
        (
            "logged out in this process",
            fresh(),
            id(1),
            revoked_here,
            lost,
            false,
        ),
        (
            "a cookie of an older key",
            older_key,
            id(1),
            Gates::default(),
            lost,
            false,
        ),
        (
            "a cookie that saw no epoch",
            no_epoch,
            id(1),
            Gates::default(),
            lost,
            false,
        ),
    ];
    for (case, cookie, at, gates, epoch, moves) in rows {
        let mut state = state(
            Some(cookie),
            Phase::Stored {
                id: at.clone(),
                stamp: Stamp::new(5, 0),
                created: NOW - 10,
                confirmed: NOW - 10,
                merged: None,
            },
            json!({"user": "ada"}),
        );
        state.data.set("cart", json!(1));
        let answer = GoneAnswer::Known {
            tombstone: Tombstone::None,
            epoch: epoch.into(),
        };
        match save::after_recheck(&mut state, &at, answer, gates, ctx, &mut ids()) {
            Plan::Write(write) => {
                assert!(moves, "{case}: {write:?}");
                assert!(
                    matches!(&write.predecessor, Some(Predecessor::Claim { old, .. }) if *old == at),
                    "{case}: claims the id that was lost"
                );
            }
            other => {
                assert!(!moves, "{case}: {other:?}");
                assert_eq!(state.phase, Phase::Ended, "{case}");
            }
        }
    }
}

#[test]
fn the_rest_of_the_request_goes_on_from_the_cookie_a_save_issued() {
    let mirrored = mirrored();
    let ctx = ctx(&mirrored);
    let moving = Phase::Moving {
        from: id(1),
        stamp: Stamp::new(5, 0),
        created: NOW - 10,
        confirmed: NOW - 10,
        basis: Basis::Redis,
    };
    // A move lost to another copy's, and a save Redis did not answer: the changes ride in the
    // cookie, which keeps the epoch that tells a data loss later.
    for (case, phase, written) in [
        ("move taken", moving, Written::Taken(moved_to(2))),
        ("failed", stored(Stamp::new(5, 0)), Written::Failed),
    ] {
        let mut state = state(Some(fresh()), phase, json!({"user": "ada"}));
        state.data.set("a", json!(1));
        let Plan::Write(write) = plan(&mut state) else {
            panic!("{case}: a write");
        };
        let local = local_of(save::after_write(
            &mut state,
            &write,
            written,
            ctx,
            &mut ids(),
        ));
        let payload = local.issue.expect("a cookie");
        assert_eq!(payload.epoch.as_deref(), Some(EPOCH), "{case}");
        assert_eq!(payload.data["a"], 1, "{case}");
        assert_eq!(state.phase, Phase::Fallback, "{case}");
        // The executor makes it the request's cookie; the end of the request (after an
        // explicit save) has nothing to add, and does not replace it.
        state.cookie = ClientCookie::Valid(Cookie::issued(payload));
        assert_eq!(plan(&mut state), Plan::Local(Local::default()), "{case}");
        // A later change adds to what the cookie carries.
        state.data.set("b", json!(2));
        let Plan::Local(local) = plan(&mut state) else {
            panic!("{case}: into the cookie");
        };
        let payload = local.issue.expect("a cookie");
        assert_eq!(
            (payload.data["a"].clone(), payload.data["b"].clone()),
            (json!(1), json!(2)),
            "{case}"
        );
    }
}

#[test]
fn an_older_keys_content_is_never_re_issued_under_the_newest_key() {
    let mirrored = mirrored();
    let ctx = ctx(&mirrored);
    let older = |cookie: Cookie| Cookie {
        newest_key: false,
        ..cookie
    };
    // A touch of an unused session: re-issued for the newest key only, and only when Redis is
    // at the cookie's stamp (another tab wrote, or the cookie has writes Redis has not: its
    // mirror is not vouched for anew); else read, and re-issued from what Redis has.
    let reissued = |touched: &Plan| matches!(touched, Plan::Local(local) if local.issue.is_some());
    let outage_writes = cookie(10, Stamp::new(5, 1), |p| p.written.push("user".into()));
    let rows = [
        (fresh(), Some(Stamp::new(5, 0)), Some(true)),
        (older(fresh()), Some(Stamp::new(5, 0)), None),
        (fresh(), Some(Stamp::new(6, 0)), None),
        (outage_writes, Some(Stamp::new(5, 0)), None),
        (fresh(), None, Some(false)),
    ];
    for (cookie, touched, expected) in rows {
        let state = state(Some(cookie), Phase::Unloaded, json!({}));
        let after = save::after_touch(&state, touched, ctx);
        match expected {
            Some(reissue) => assert_eq!(reissued(&after), reissue, "{touched:?}"),
            None => assert_eq!(after, Plan::Read, "{touched:?}"),
        }
    }
    // A read: an older key's cookie is re-issued, from what Redis has.
    let forged = older(cookie(10, Stamp::new(9, 3), |p| {
        p.mirror.insert("user".into(), json!("mallory"));
        p.written.push("user".into());
    }));
    let mut read = state(
        Some(forged.clone()),
        stored(Stamp::new(5, 0)),
        json!({"user": "ada"}),
    );
    let Plan::Local(local) = plan(&mut read) else {
        panic!("no Redis command for a read");
    };
    let payload = local.issue.expect("re-issued under the newest key");
    assert_eq!(payload.mirror["user"], "ada");
    assert_eq!(payload.stamp(), Stamp::new(5, 0));
    assert!(!payload.has_pending());
    // A failed save: the cookie comes from Redis's state and this request's changes.
    let mut failed = state(
        Some(forged),
        stored(Stamp::new(5, 0)),
        json!({"user": "ada"}),
    );
    failed.data.set("cart", json!(1));
    let Plan::Write(write) = plan(&mut failed) else {
        panic!("a write");
    };
    assert_eq!(
        write.floor,
        Stamp::default(),
        "an older key's stamp is nothing to be above"
    );
    let local = local_of(save::after_write(
        &mut failed,
        &write,
        Written::Failed,
        ctx,
        &mut ids(),
    ));
    let payload = local.issue.expect("into the cookie");
    assert_eq!(payload.mirror["user"], "ada", "not the older key's");
    assert_eq!(payload.data["cart"], 1);
    assert_eq!(
        payload.stamp(),
        Stamp::new(6, 1),
        "past Redis's, not past the forged one"
    );
}

#[test]
fn a_save_over_writes_it_had_not_seen_takes_the_mirror_redis_has() {
    let mirrored = mirrored();
    let ctx = ctx(&mirrored);
    let mut state = state(
        Some(fresh()),
        stored(Stamp::new(5, 0)),
        json!({"user": "ada"}),
    );
    state.data.set("cart", json!(1));
    let Plan::Write(write) = plan(&mut state) else {
        panic!("a write");
    };
    assert_eq!(write.loaded, Some(Stamp::new(5, 0)), "the script compares");
    let local = local_of(save::after_write(
        &mut state,
        &write,
        Written::MovedOn {
            stamp: Stamp::new(7, 0),
            mirror: vec![("user".to_owned(), Some(json!("bob")))],
        },
        ctx,
        &mut ids(),
    ));
    let payload = local.issue.expect("a cookie");
    assert_eq!(payload.stamp(), Stamp::new(7, 0));
    assert_eq!(
        payload.mirror["user"], "bob",
        "what Redis has, not what this request loaded"
    );
    assert!(!local.stale, "nothing merged was dropped");
}

#[test]
fn a_superseded_cookie_keeps_no_changes_unless_it_logs_in() {
    let mut write = state(Some(fresh()), Phase::Superseded, json!({}));
    write.data.set("seen", json!(true));
    assert_eq!(
        plan(&mut write),
        Plan::Local(Local {
            problem: Some(Problem::Superseded),
            ..Local::default()
        })
    );
    let mut login = state(Some(fresh()), Phase::Superseded, json!({}));
    login.data.set("user", json!("ada"));
    login.intent.cycle();
    let Plan::Write(write) = plan(&mut login) else {
        panic!("a login starts a session of its own");
    };
    assert!(write.create && write.predecessor.is_none() && write.supersedes.is_none());
}

#[test]
fn a_login_during_an_outage_keeps_the_mirror_known_and_the_rest_unknown() {
    let mirrored = mirrored();
    let ctx = ctx(&mirrored);
    let mut state = state(Some(fresh()), Phase::Fallback, json!({"user": "ada"}));
    state.data.known = Known::Only(["user".to_owned()].into());
    state.intent.cycle();
    let Plan::Local(local) = save::plan(&mut state, ctx, false, None, &mut ids()) else {
        panic!("no Redis command");
    };
    let payload = local.issue.expect("a new identity");
    assert!(payload.partial && !payload.incomplete, "{payload:?}");
    let cookie = Cookie::issued(payload);
    let (_, loaded) = load(
        Some(cookie),
        |_| {},
        vec![Answer::Tombstone(Err(Unavailable))],
    );
    assert_eq!(loaded.data.get("user"), Ok(Some(&json!("ada"))));
    assert_eq!(
        loaded.data.get("counter"),
        Err(super::state::Unknown),
        "not mirrored, not carried: unknown"
    );
    let mirrored_absent = state_with_mirror(&["user", "role"]);
    assert_eq!(
        mirrored_absent.get("role"),
        Ok(None),
        "mirrored and absent: known"
    );
}

/// Served from a cookie-only session of a new identity taken while Redis was down, with
/// `mirrored` mirrored and only `user` set.
fn state_with_mirror(mirrored: &[&str]) -> Data {
    let mirrored: BTreeSet<String> = mirrored.iter().map(|k| (*k).to_owned()).collect();
    let ctx = Ctx {
        policy: policy(),
        mirrored: &mirrored,
        fingerprint: Payload::fingerprint(&mirrored),
        now: NOW,
    };
    let mut state = state(Some(fresh()), Phase::Fallback, json!({"user": "ada"}));
    state.data.known = Known::Only(mirrored.clone());
    state.intent.cycle();
    let Plan::Local(local) = save::plan(&mut state, ctx, false, None, &mut ids()) else {
        panic!("no Redis command");
    };
    let cookie = Cookie::issued(local.issue.expect("a new identity"));
    let mut loader = Loader::new(LoadInput {
        cookie: Some(cookie),
        legacy_key: None,
        revoked_here: false,
        fail_closed: false,
        mirrored: &mirrored,
        fingerprint: Payload::fingerprint(&mirrored),
        policy: policy(),
        now: NOW,
    });
    assert!(matches!(loader.start(), Step::Ask(Query::Tombstone { .. })));
    let Step::Done(loaded) = loader.answer(Answer::Tombstone(Err(Unavailable))) else {
        panic!("served");
    };
    loaded.data
}
