//! The engine's promises, checked from outside: "nobody is logged out, nothing is lost, a logout
//! is a logout". Each scenario reproduces a known hole with the example apps, a real
//! redis-server and a client's cookie jar, and asserts what should hold: first a failing test,
//! then the fix.
//!
//! - a read of the session is a private response (`Vary: Cookie`, `Cache-Control: private`),
//!   with or without a `Set-Cookie`;
//! - a copy of an outage cookie, replayed once Redis is back, does not roll the session back;
//! - a session re-seeded from a copied cookie ends with its owner's logout;
//! - Redis out of memory does not bring a logged-out cookie back;
//! - a flood of logouts during an outage does not crowd out one user's logout;
//! - a logout that is the first request after a migration (tower-sessions) ends the old session.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use base64::Engine;
use conformance::{
    Client, Framework, Reply, TestApp, TestRedis, count_to, decrypt_cookie, defaults, redis_key_of,
    served_from_redis_again, session_keys, wait_until,
};
use resilient_session::Import;
use serde_json::{Value, json};
use test_redis::RedisServer;

conformance::scenarios!(
    reads_are_private_responses,
    a_stale_outage_cookie_does_not_roll_values_back,
    a_stale_outage_copy_arriving_first_costs_the_owner_nothing,
    a_reseeded_copy_ends_with_its_owners_logout,
    out_of_memory_never_serves_a_logged_out_cookie,
    a_flood_of_outage_logouts_does_not_drop_a_users_logout,
    logout_as_the_first_request_after_a_migration_removes_the_old_session,
);

/// The payload of the client's session cookie.
fn payload(app: &TestApp, client: &Client) -> Value {
    decrypt_cookie(app.store.cookie_name(), &client.cookie().expect("a cookie"))
}

/// The Redis key of the session the client's cookie names.
fn key_of(app: &TestApp, client: &Client) -> String {
    let id = payload(app, client)["i"]
        .as_str()
        .expect("a Redis id in the cookie")
        .to_owned();
    redis_key_of(&id)
}

/// Waits until the app's manager reaches Redis again (after a restart).
async fn until_connected(app: &TestApp) {
    let store = app.store.clone();
    wait_until(Duration::from_secs(5), "the manager reconnects", || {
        let store = store.clone();
        async move { store.manager().health().is_healthy }
    })
    .await;
}

/// The response may not be stored by a shared cache: it varies with the cookie and is private.
fn assert_private(reply: &Reply, what: &str) {
    let vary = reply.header("vary").unwrap_or_default();
    let cache_control = reply.header("cache-control").unwrap_or_default();
    assert!(
        vary.split(',')
            .any(|v| v.trim().eq_ignore_ascii_case("cookie")),
        "{what}: Vary should name Cookie, is {vary:?}"
    );
    assert!(
        cache_control
            .split(',')
            .any(|d| d.trim().eq_ignore_ascii_case("private")),
        "{what}: Cache-Control should be private, is {cache_control:?}"
    );
}

/// A response that depends on the session, even one without a `Set-Cookie` (no touch due), is
/// private: a shared cache must not hand one user's `/me` to another.
async fn reads_are_private_responses(framework: Framework) {
    let redis = RedisServer::start();
    let app = TestApp::start(framework, &redis, defaults).await;
    let mut client = app.client();
    client.login("ada", "admin").await;
    count_to(&mut client, 1, 1, "redis").await;

    let me = client.get("/me").await;
    assert_eq!(me.status, 200, "{}", me.text);
    assert!(
        me.set_cookies.is_empty(),
        "no touch due: {:?}",
        me.set_cookies
    );
    let counter = client.get("/counter").await;
    assert_eq!(counter.json, json!({"counter": 1, "source": "redis"}));
    assert!(counter.set_cookies.is_empty(), "{:?}", counter.set_cookies);
    let noop = client.get("/noop").await;
    assert_eq!(noop.status, 200);
    assert!(noop.set_cookies.is_empty(), "{:?}", noop.set_cookies);
    let noop_cache_control = noop.header("cache-control").unwrap_or_default();
    for (reply, what) in [
        (&me, "GET /me"),
        (&counter, "GET /counter"),
        (&noop, "GET /noop"),
    ] {
        println!(
            "{what}: status {}, Vary {:?}, Cache-Control {:?}, Set-Cookie {:?}",
            reply.status,
            reply.header("vary"),
            reply.header("cache-control"),
            reply.set_cookies
        );
    }

    assert_private(&me, "GET /me after login");
    assert_private(&counter, "GET /counter after login");
    // A handler that never reads the session says nothing about it: its response stays
    // cacheable.
    assert!(
        !noop_cache_control.to_lowercase().contains("private"),
        "GET /noop never touches the session, yet Cache-Control is {noop_cache_control:?}"
    );
}

/// A session counted to 5 in Redis, then to 6 and 7 in its cookie while Redis was down, Redis
/// back with its data: the server, the app, the owner, and a copy of the owner's counter-6
/// cookie.
async fn an_outage_copy(framework: Framework) -> (RedisServer, TestApp, Client, Client) {
    let mut redis = RedisServer::builder().persistent().start();
    let app = TestApp::start(framework, &redis, defaults).await;
    let mut client = app.client();
    client.login("ada", "admin").await;
    count_to(&mut client, 1, 5, "redis").await;

    redis.kill();
    count_to(&mut client, 6, 6, "cookie").await;
    let c1 = client.fork();
    count_to(&mut client, 7, 7, "cookie").await;

    redis.restart();
    (redis, app, client, c1)
}

/// A copy of a cookie written during an outage (counter 6), replayed after Redis is back and
/// the session moved on (counter 8), must not write its old value back into Redis.
async fn a_stale_outage_cookie_does_not_roll_values_back(framework: Framework) {
    let (redis, app, mut client, mut c1) = an_outage_copy(framework).await;
    served_from_redis_again(&mut client, 7).await;
    count_to(&mut client, 8, 8, "redis").await;

    // An old tab with the counter-6 outage cookie.
    let stale = c1.get("/counter").await;
    println!(
        "the stale copy (counter 6 in its cookie) reads {}, Set-Cookie {:?}",
        stale.text, stale.set_cookies
    );
    let now = client.get("/counter").await;
    let key = key_of(&app, &client);
    let stored: Option<String> = redis.query(&["HGET", &key, "counter"]);
    println!(
        "afterwards the owner reads {}; Redis has counter {stored:?} at {key}; keys {:?}",
        now.text,
        session_keys(&redis)
    );
    assert_eq!(
        stale.json["counter"], 8,
        "the stale outage copy should read the session as it is now (8)"
    );
    assert_eq!(
        now.json["counter"], 8,
        "the owner's counter was rolled back"
    );
    assert_eq!(
        stored.as_deref(),
        Some("8"),
        "Redis's counter was rolled back"
    );
}

/// The same outage, the other way round: the stale copy reaches Redis first. Its view lands
/// (it is newer than what Redis has), and the owner's later one, which descends from it (more
/// writes taken in while Redis was down), still lands over it: nothing the owner wrote is lost.
async fn a_stale_outage_copy_arriving_first_costs_the_owner_nothing(framework: Framework) {
    let (redis, app, mut client, mut c1) = an_outage_copy(framework).await;
    until_connected(&app).await;
    served_from_redis_again(&mut c1, 6).await;
    served_from_redis_again(&mut client, 7).await;
    count_to(&mut client, 8, 8, "redis").await;
    let stored: Option<String> = redis.query(&["HGET", &key_of(&app, &client), "counter"]);
    assert_eq!(stored.as_deref(), Some("8"));
    assert_eq!(
        c1.get("/counter").await.json["counter"],
        8,
        "and the copy reads the session as it is now"
    );
}

/// Redis restarts empty; a copy of the owner's cookie (a thief) comes first and re-seeds the
/// session from the cookie under a new id. The owner's logout, with the old cookie, must end
/// that re-seeded session too.
async fn a_reseeded_copy_ends_with_its_owners_logout(framework: Framework) {
    let mut redis = RedisServer::start();
    let app = TestApp::start(framework, &redis, defaults).await;
    let mut owner = app.client();
    owner.login("ada", "admin").await;
    let mut thief = owner.fork();
    let original = owner.cookie();

    redis.restart_empty();
    until_connected(&app).await;
    // The thief's requests until one is served from Redis: that one re-seeded the session.
    let started = Instant::now();
    let mut tries = 0;
    loop {
        tries += 1;
        let me = thief.get("/me").await;
        assert_eq!(me.status, 200, "the copy is logged in: {}", me.text);
        if me.json["source"] == "redis" {
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(5),
            "the copy is not served from Redis within 5 s: {}",
            me.text
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    println!(
        "the thief's GET /me #{tries} re-seeded the session; new cookie: {}; keys {:?}",
        thief.cookie() != original,
        session_keys(&redis)
    );

    let logout = owner.post("/logout").await;
    assert_eq!(logout.status, 204);
    let me = thief.get("/me").await;
    let keys = session_keys(&redis);
    println!(
        "after the owner's logout: the thief's GET /me is {} {}; session keys {keys:?}",
        me.status, me.text
    );
    assert_eq!(
        me.status, 401,
        "the re-seeded copy outlived its owner's logout: {}",
        me.text
    );
    assert!(
        keys.is_empty(),
        "the re-seeded session is still in Redis: {keys:?}"
    );
}

/// A cookie logged out with Redis up stays logged out when Redis then refuses writes (out of
/// memory): the copy must not be re-seeded, nor served from its cookie.
async fn out_of_memory_never_serves_a_logged_out_cookie(framework: Framework) {
    let redis = RedisServer::start();
    let app = TestApp::start(framework, &redis, defaults).await;
    let mut client = app.client();
    client.login("ada", "admin").await;
    let mut copy = client.fork();
    // The copy keeps sending this cookie, whatever the app answers (a 401 also removes it
    // from the jar: put it back before each request).
    let logged_out = copy.cookie();
    assert_eq!(client.post("/logout").await.status, 204);
    assert_eq!(copy.get("/me").await.status, 401, "logged out, Redis up");

    redis.run(&["CONFIG", "SET", "maxmemory-policy", "noeviction"]);
    redis.run(&["CONFIG", "SET", "maxmemory", "1"]);
    let mut answers = Vec::new();
    for _ in 0..3 {
        copy.set_cookie(logged_out.clone());
        let me = copy.get("/me").await;
        answers.push((me.status, me.text));
    }
    redis.run(&["CONFIG", "SET", "maxmemory", "0"]);
    println!("the logged-out copy's GET /me with Redis out of memory: {answers:?}");
    for (i, (status, text)) in answers.iter().enumerate() {
        assert_eq!(
            *status, 401,
            "request {i} with Redis out of memory serves a logged-out cookie: {text}"
        );
    }
}

/// Anonymous sessions that log out during an outage (more than the queue holds).
const FLOOD: usize = 10_500;
/// Client tasks at once.
const TASKS: usize = 50;

/// Runs `each` on every client, `TASKS` at a time; returns the clients.
async fn on_every_client<F, Fut>(clients: Vec<Client>, each: F) -> Vec<Client>
where
    F: Fn(Client) -> Fut + Clone + Send + 'static,
    Fut: std::future::Future<Output = Client> + Send,
{
    let per_task = clients.len().div_ceil(TASKS).max(1);
    let mut clients = clients.into_iter();
    let mut tasks = Vec::new();
    loop {
        let chunk: Vec<Client> = clients.by_ref().take(per_task).collect();
        if chunk.is_empty() {
            break;
        }
        let each = each.clone();
        tasks.push(tokio::spawn(async move {
            let mut done = Vec::with_capacity(chunk.len());
            for client in chunk {
                done.push(each(client).await);
            }
            done
        }));
    }
    let mut all = Vec::new();
    for task in tasks {
        all.extend(task.await.expect("a client task"));
    }
    all
}

/// 10,500 sessions log out during an outage, then a real user does: the user's logout must not
/// be dropped because the queue of logouts to replay is full. (About 12 s per framework alone,
/// 20 s when both run at once: run on both.)
async fn a_flood_of_outage_logouts_does_not_drop_a_users_logout(framework: Framework) {
    let mut redis = RedisServer::builder().persistent().start();
    let app = TestApp::start(framework, &redis, defaults).await;

    let started = Instant::now();
    let base = app.client();
    let fresh: Vec<Client> = (0..FLOOD).map(|_| base.fork()).collect();
    let anonymous = on_every_client(fresh, |mut client| async move {
        let reply = client.post("/counter").await;
        assert_eq!(reply.json, json!({"counter": 1, "source": "new"}));
        client
    })
    .await;
    assert_eq!(
        session_keys(&redis).len(),
        FLOOD,
        "each session is in Redis"
    );
    println!("{FLOOD} anonymous sessions made in {:?}", started.elapsed());

    let mut user = app.client();
    user.login("ada", "admin").await;
    let mut copy = user.fork();

    redis.kill();
    let started = Instant::now();
    on_every_client(anonymous, |mut client| async move {
        assert_eq!(client.post("/logout").await.status, 204);
        client
    })
    .await;
    println!(
        "{FLOOD} outage logouts in {:?}; stats {:?}",
        started.elapsed(),
        app.store.stats()
    );
    assert_eq!(user.post("/logout").await.status, 204);
    let before = app.store.stats();
    println!(
        "after the user's logout: pending {}, failed {}",
        before.revocations_pending, before.revocations_failed
    );

    redis.restart();
    let store = app.store.clone();
    let took = wait_until(
        Duration::from_secs(60),
        "the queued logouts are replayed",
        || {
            let store = store.clone();
            async move { store.stats().revocations_pending == 0 }
        },
    )
    .await;
    let after = app.store.stats();
    println!(
        "replayed in {took:?}: replayed {}, failed {}; {} session keys left",
        after.revocations_replayed,
        after.revocations_failed,
        session_keys(&redis).len()
    );
    let me = copy.get("/me").await;
    println!("the copy of the user's cookie: {} {}", me.status, me.text);
    assert_eq!(
        me.status, 401,
        "the user's outage logout was dropped: the copy is logged in: {}",
        me.text
    );
}

/// What tower-sessions-redis-store keeps at the session id: MessagePack of the record.
#[derive(serde::Serialize)]
struct Record {
    id: i128,
    data: HashMap<String, Value>,
    expiry_date: time::OffsetDateTime,
}

/// Puts a tower-sessions session in Redis (counter 3, user ada) the way
/// tower-sessions-redis-store writes it; returns its cookie header (`id=<key>`) and key.
fn old_session(redis: &RedisServer, id: i128) -> (String, String) {
    let key = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(id.to_le_bytes());
    let record = Record {
        id,
        data: HashMap::from([
            (
                "user".to_owned(),
                json!({"user_id": "ada", "role": "admin"}),
            ),
            ("counter".to_owned(), json!(3)),
        ]),
        expiry_date: time::OffsetDateTime::now_utc() + time::Duration::hours(1),
    };
    let bytes = rmp_serde::to_vec(&record).expect("encodes");
    let _: () = test_redis::redis::cmd("SET")
        .arg(&key)
        .arg(bytes)
        .query(&mut redis.connection())
        .expect("SET");
    (format!("id={key}"), key)
}

/// The first request of a migrated user is a logout: the old session (tower-sessions') must
/// end, its cookie be removed, and the old cookie must not bring it back afterwards.
async fn logout_as_the_first_request_after_a_migration_removes_the_old_session(
    framework: Framework,
) {
    let redis = RedisServer::start();
    let app = TestApp::start(framework, &redis, |c| {
        c.import_sessions(Import::tower_sessions("id"))
    })
    .await;
    let (old_cookie, old_key) = old_session(&redis, 42);

    let logout = app
        .client()
        .send_raw(reqwest::Method::POST, "/logout", &old_cookie)
        .await;
    let exists: i64 = redis.query(&["EXISTS", &old_key]);
    println!(
        "POST /logout with the old cookie: {}, Set-Cookie {:?}; old key exists: {exists}; keys {:?}",
        logout.status,
        logout.set_cookies,
        redis.keys("*")
    );
    // A stale tab, or a browser that ignored the removal, sends the old cookie again; then
    // whatever cookie of ours that answer set.
    let mut stale = app.client();
    let counter = stale.get_raw("/counter", &old_cookie).await;
    let me = stale.get("/me").await;
    println!(
        "then the old cookie: GET /counter {}, Set-Cookie {:?}; and with what it got, GET /me {} {}",
        counter.text, counter.set_cookies, me.status, me.text
    );

    assert_eq!(logout.status, 204);
    assert!(
        logout
            .set_cookies
            .iter()
            .any(|c| c.starts_with("id=;") && c.contains("Max-Age=0")),
        "the logout should remove the old cookie: Set-Cookie {:?}",
        logout.set_cookies
    );
    assert_eq!(exists, 0, "the old session is still in Redis at {old_key}");
    assert_eq!(
        counter.json["counter"], 0,
        "the old cookie brought the logged-out session back: {}",
        counter.text
    );
    assert_eq!(
        me.status, 401,
        "the old cookie logged the user in again: {}",
        me.text
    );
}
