//! Tombstones: what a logout, a login or a move leaves on an old id, as the text Redis holds.
//!
//! `revoked` (a logout; `revoked:<digest>` when the session had moved to that one, which the
//! logout revokes too), `cycled:<new digest>` (a login: no copy of the old cookie follows it;
//! the digest lets a retried attempt recognise its own), `moved:<new digest>:<new id, sealed>` (a
//! re-seed or promotion: copies follow it to the new id, logouts follow it to end the new
//! session too; the id is sealed with the cookie keys, so whoever reads Redis learns no id).

use super::SessionId;
use super::engine::answer::Tombstone;
use super::id::Digest;

pub(crate) const REVOKED: &str = "revoked";
const MOVED: &str = "moved";
const CYCLED: &str = "cycled";

/// What a sealed successor id is bound to (see [`CookieCodec::seal`](crate::cookie::CookieCodec)).
pub(crate) const SUCCESSOR: &str = "successor";

/// How a tombstone value reads: `revoked`, `revoked:<digest>`, `cycled:<digest>`,
/// `moved:<digest>:<sealed id>`. `open` unseals a successor's id.
pub(crate) fn tombstone_of(
    value: Option<&str>,
    open: impl Fn(&str) -> Option<SessionId>,
) -> Tombstone {
    let Some(value) = value else {
        return Tombstone::None;
    };
    if value == REVOKED {
        return Tombstone::Revoked { successor: None };
    }
    let mut parts = value.splitn(3, ':');
    match (
        parts.next(),
        parts.next().and_then(Digest::parse),
        parts.next(),
    ) {
        (Some(REVOKED), Some(digest), None) => Tombstone::Revoked {
            successor: Some(digest),
        },
        (Some(MOVED), Some(digest), sealed) => {
            let id = sealed.and_then(&open).filter(|id| *id.digest() == digest);
            Tombstone::Moved { digest, id }
        }
        // Anything else, older formats included, ends the session without naming a successor.
        _ => Tombstone::Cycled,
    }
}

/// The tombstone a login leaves on the old id: `cycled:<new digest>` (the digest lets a
/// retried attempt recognise its own).
pub(crate) fn cycled_value(successor: &SessionId) -> String {
    format!("{CYCLED}:{}", successor.digest().to_text())
}

/// The tombstone a move leaves on the old id: `moved:<new digest>:<new id, sealed>`.
pub(crate) fn moved_value(successor: &SessionId, sealed: &str) -> String {
    format!("{MOVED}:{}:{sealed}", successor.digest().to_text())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tombstones_read_as_written() {
        let successor = SessionId::generate().expect("random");
        let open = |sealed: &str| (sealed == "sealed").then(|| successor.clone());
        assert_eq!(tombstone_of(None, open), Tombstone::None);
        assert_eq!(
            tombstone_of(Some("revoked"), open),
            Tombstone::Revoked { successor: None }
        );
        assert_eq!(
            tombstone_of(
                Some(&format!("revoked:{}", successor.digest().to_text())),
                open
            ),
            Tombstone::Revoked {
                successor: Some(*successor.digest())
            }
        );
        assert_eq!(
            tombstone_of(Some(&cycled_value(&successor)), open),
            Tombstone::Cycled
        );
        assert_eq!(
            tombstone_of(Some(&moved_value(&successor, "sealed")), open),
            Tombstone::Moved {
                digest: *successor.digest(),
                id: Some(successor.clone()),
            }
        );
        // A sealed id that does not open, or names another session, is not followed.
        assert_eq!(
            tombstone_of(Some(&moved_value(&successor, "other")), open),
            Tombstone::Moved {
                digest: *successor.digest(),
                id: None,
            }
        );
        let elsewhere = SessionId::generate().expect("random");
        let wrong = format!("moved:{}:sealed", elsewhere.digest().to_text());
        assert_eq!(
            tombstone_of(Some(&wrong), open),
            Tombstone::Moved {
                digest: *elsewhere.digest(),
                id: None,
            }
        );
        for other in ["moved", "moved:short", "moved:abc123", "anything"] {
            assert_eq!(
                tombstone_of(Some(other), open),
                Tombstone::Cycled,
                "{other}"
            );
        }
    }
}
