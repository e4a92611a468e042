//! A user's sessions: what an entry of the per-user index says once Redis answered for its
//! session, and when the entry may go.
//!
//! The index is a sorted set per owner: one member per session (its key digest, the handle),
//! scored by the session's absolute deadline (it cannot live longer, touched or not), so that
//! members past it are dropped by score; a member whose session is gone is dropped when the
//! index is read, one whose session moved (re-seeded, promoted) is replaced by its successor.

use serde_json::Value;

use super::Policy;
use crate::session::id::Digest;
use crate::session::tombstone::tombstone_of;

/// The hash field with the session's owner.
pub(crate) const OWNER_FIELD: &str = "\u{0}o";

/// The hash field with what the app recorded about the session at login (JSON).
pub(crate) const INFO_FIELD: &str = "\u{0}i";

/// What Redis answered for one member of an index.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct EntryAnswer {
    /// `CREATED_FIELD`, as stored.
    pub(crate) created: Option<Vec<u8>>,
    /// `INFO_FIELD`, as stored.
    pub(crate) info: Option<Vec<u8>>,
    /// `OWNER_FIELD`, as stored.
    pub(crate) owner: Option<Vec<u8>>,
    /// `PTTL` of the session's hash: -2 when it does not exist.
    pub(crate) pttl_ms: i64,
    /// The session's tombstone, if any.
    pub(crate) tombstone: Option<String>,
}

/// What one member of the index stands for.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Entry {
    /// A session of this owner: when it was created, last seen, and what the app recorded.
    Alive {
        created: i64,
        last_seen: i64,
        info: Value,
    },
    /// The session moved to another id: the member is replaced by its successor.
    Moved(Digest),
    /// Gone (ended, expired, or now someone else's): the member goes.
    Gone,
}

/// What a member of `owner`'s index stands for, given Redis's answer, at `now`.
pub(crate) fn entry(answer: &EntryAnswer, owner: &str, policy: &Policy, now: i64) -> Entry {
    if answer.pttl_ms == -2 {
        return match tombstone_of(answer.tombstone.as_deref(), |_| None).successor() {
            Some(successor) => Entry::Moved(successor),
            None => Entry::Gone,
        };
    }
    if answer.owner.as_deref() != Some(owner.as_bytes()) {
        // Logged in as someone else since, or the login's mark never landed.
        return Entry::Gone;
    }
    let created = answer
        .created
        .as_deref()
        .and_then(|c| std::str::from_utf8(c).ok()?.parse().ok())
        .unwrap_or(now);
    let idle = i64::try_from(policy.idle_secs()).unwrap_or(i64::MAX);
    // Each touch sets the TTL to the idle timeout: what is left of it says when that was.
    let ttl = if answer.pttl_ms < 0 {
        idle
    } else {
        answer.pttl_ms / 1000
    };
    let last_seen = (now - (idle - ttl).max(0)).clamp(created.min(now), now);
    let info = answer
        .info
        .as_deref()
        .and_then(|info| serde_json::from_slice(info).ok())
        .unwrap_or(Value::Null);
    Entry::Alive {
        created,
        last_seen,
        info,
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use serde_json::json;

    use super::*;
    use crate::{KeyRing, SessionConfig};

    fn policy() -> Policy {
        let keys = KeyRing::from_secret("owned-sessions-test-secret-of-32-bytes").expect("keys");
        Policy::new(&SessionConfig::new(keys).idle_timeout(Duration::from_secs(1000)))
    }

    fn alive(pttl_ms: i64) -> EntryAnswer {
        EntryAnswer {
            created: Some(b"500".to_vec()),
            info: Some(br#"{"user_agent":"curl"}"#.to_vec()),
            owner: Some(b"ada".to_vec()),
            pttl_ms,
            tombstone: None,
        }
    }

    #[test]
    fn entries() {
        let now = 2_000;
        let successor =
            Digest::parse("AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA").expect("a digest");
        let moved = format!("moved:{}:1", successor.to_text());
        let cases: Vec<(&str, EntryAnswer, Entry)> = vec![
            (
                "touched 100 s ago",
                alive(900_000),
                Entry::Alive {
                    created: 500,
                    last_seen: 1_900,
                    info: json!({"user_agent": "curl"}),
                },
            ),
            (
                "never older than its creation",
                alive(100_000),
                Entry::Alive {
                    created: 500,
                    last_seen: 1_100,
                    info: json!({"user_agent": "curl"}),
                },
            ),
            (
                "created later than now says (clock skew): seen now",
                EntryAnswer {
                    created: Some(b"3000".to_vec()),
                    ..alive(1_000_000)
                },
                Entry::Alive {
                    created: 3_000,
                    last_seen: 2_000,
                    info: json!({"user_agent": "curl"}),
                },
            ),
            (
                "info not JSON",
                EntryAnswer {
                    info: Some(b"{".to_vec()),
                    ..alive(1_000_000)
                },
                Entry::Alive {
                    created: 500,
                    last_seen: 2_000,
                    info: Value::Null,
                },
            ),
            (
                "another owner's now",
                EntryAnswer {
                    owner: Some(b"bob".to_vec()),
                    ..alive(1_000_000)
                },
                Entry::Gone,
            ),
            (
                "no owner mark",
                EntryAnswer {
                    owner: None,
                    ..alive(1_000_000)
                },
                Entry::Gone,
            ),
            (
                "ended",
                EntryAnswer {
                    pttl_ms: -2,
                    tombstone: Some("revoked".into()),
                    ..EntryAnswer::default()
                },
                Entry::Gone,
            ),
            (
                "expired",
                EntryAnswer {
                    pttl_ms: -2,
                    ..EntryAnswer::default()
                },
                Entry::Gone,
            ),
            (
                "moved",
                EntryAnswer {
                    pttl_ms: -2,
                    tombstone: Some(moved),
                    ..EntryAnswer::default()
                },
                Entry::Moved(successor),
            ),
        ];
        for (what, answer, expected) in cases {
            assert_eq!(entry(&answer, "ada", &policy(), now), expected, "{what}");
        }
    }
}
