//! Whatever a client sends as the session cookie, the engine neither panics nor trusts it:
//! property tests over random and tampered cookie values, through `open`, the first use and the
//! end of the request. Redis is unreachable on purpose (nothing listens on port 1): a cookie
//! that is refused costs no Redis command anyway.

use proptest::prelude::*;
use resilient_session::{RedisManager, SessionEngine, Source};

mod common;
use common::{config, cookie_header, finish, open};

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a runtime")
}

fn store() -> SessionEngine {
    let manager = RedisManager::builder()
        .url("redis://127.0.0.1:1")
        .build()
        .expect("a manager");
    SessionEngine::new(manager, config().mirrored_keys(["user"])).expect("a store")
}

/// Sends `value` as our cookie, used (`read`) or not: the session is never one of ours, and
/// the response removes the cookie if it says anything at all.
async fn refused(store: &SessionEngine, value: &str, read: bool) {
    let header = format!("{}={value}", store.cookie_name());
    let session = open(store, Some(&header));
    if read {
        let _ = session.get_value("user").await;
        assert_eq!(session.source().await, Source::New, "{value:?}");
    }
    if let Some(set) = finish(store, &session).await {
        assert!(set.contains("Max-Age=0"), "{value:?}: {set}");
    }
}

#[test]
fn clear_text_hints_from_the_far_past_or_future_are_refused_not_a_panic() {
    runtime().block_on(async {
        let store = store();
        for hint in [i64::MIN, -1, 0, i64::MAX] {
            for read in [false, true] {
                refused(&store, &format!("{hint}.x"), read).await;
            }
            let header = format!("{}={hint}.x", store.cookie_name());
            let unread = open(&store, Some(&header));
            let removal = finish(&store, &unread)
                .await
                .expect("verified, and removed");
            assert!(removal.contains("Max-Age=0"), "{hint}");
        }
    });
}

fn hint() -> impl Strategy<Value = String> {
    prop_oneof![
        any::<i64>().prop_map(|n| n.to_string()),
        Just(i64::MIN.to_string()),
        Just(i64::MAX.to_string()),
        (-1_000i64..1_000).prop_map(|n| n.to_string()),
        "[+0-9-]{1,25}",
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(128))]

    #[test]
    fn random_cookie_values(value in "[ -~]{0,300}", read in any::<bool>()) {
        runtime().block_on(async {
            refused(&store(), &value, read).await;
        });
    }

    /// Values shaped like ours, `{touched}.{anything}`, with the clear-text time at the edges of
    /// what a number can be as often as anywhere else.
    #[test]
    fn random_hints(hint in hint(), rest in "[ -~]{0,80}", read in any::<bool>()) {
        runtime().block_on(async {
            refused(&store(), &format!("{hint}.{rest}"), read).await;
        });
    }

    #[test]
    fn tampered_cookie_values(at in any::<prop::sample::Index>(), byte in 0x21u8..0x7f, read in any::<bool>()) {
        runtime().block_on(async {
            let store = store();
            // A cookie-only session (Redis is down), then one byte of its value changed.
            let session = open(&store, None);
            session.insert("user", "ada").await.expect("insert");
            let value = cookie_header(&finish(&store, &session).await.expect("a cookie"));
            let value = value.split_once('=').expect("name=value").1.to_owned();
            let mut bytes = value.clone().into_bytes();
            let at = at.index(bytes.len());
            bytes[at] = byte;
            let tampered = String::from_utf8(bytes).expect("ascii");
            if tampered != value && byte != b';' {
                refused(&store, &tampered, read).await;
            }
        });
    }
}
