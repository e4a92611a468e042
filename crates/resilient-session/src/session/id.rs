//! Session ids, their digests, and the Redis keys derived from them.
//!
//! An id is 256 bits from the operating system's CSPRNG, written as 43 characters of unpadded
//! base64url. Anything else does not parse, so a forged or damaged id never reaches Redis: no key
//! injection (`*`, `:`, CR/LF), no wasted round trip. Redis never sees the id itself: the key is
//! `{namespace}:{SHA-256 of the id, base64url}`, so whoever reads Redis (a dump, `MONITOR`, a
//! replica) learns no cookie that would log them in. The braces are there: they are a Redis
//! Cluster hash tag, so that a session's hash and its tombstone live in the same slot.
//!
//! What only needs the keys (a logout waiting for Redis, a tombstone naming a successor) keeps
//! the [`Digest`], never the id.

use std::fmt;
use std::sync::{Arc, OnceLock};

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use sha2::{Digest as _, Sha256};

use crate::{Error, Result};

const ID_BYTES: usize = 32;
const ID_CHARS: usize = 43;

/// A session id. Its `Debug` output is redacted: ids never reach a log line. Clones share
/// the text and the digest (a request hands its id around a few times).
#[derive(Clone)]
pub(crate) struct SessionId(Arc<Id>);

struct Id {
    text: String,
    digest: OnceLock<Digest>,
}

impl PartialEq for SessionId {
    fn eq(&self, other: &Self) -> bool {
        self.0.text == other.0.text
    }
}

impl Eq for SessionId {}

impl SessionId {
    /// A new random id.
    pub(crate) fn generate() -> Result<Self> {
        let mut bytes = [0u8; ID_BYTES];
        getrandom::fill(&mut bytes).map_err(|err| Error::Randomness {
            source: std::io::Error::other(err),
        })?;
        Ok(Self::new(URL_SAFE_NO_PAD.encode(bytes)))
    }

    /// Parses an id from a cookie; `None` unless it is exactly what [`generate`](Self::generate)
    /// makes.
    pub(crate) fn parse(text: &str) -> Option<Self> {
        if text.len() != ID_CHARS {
            return None;
        }
        // 43 characters decode to at most 33 bytes; exactly 32 for an id.
        let mut bytes = [0u8; ID_BYTES + 1];
        let decoded = URL_SAFE_NO_PAD.decode_slice(text, &mut bytes).ok()?;
        (decoded == ID_BYTES).then(|| Self::new(text.to_owned()))
    }

    /// An id that is not random, handed out only when the OS generator failed, to a decision
    /// that is then thrown away (see the save executor).
    pub(crate) fn placeholder() -> Self {
        Self::new("A".repeat(ID_CHARS))
    }

    fn new(text: String) -> Self {
        Self(Arc::new(Id {
            text,
            digest: OnceLock::new(),
        }))
    }

    pub(crate) fn as_str(&self) -> &str {
        &self.0.text
    }

    /// SHA-256 of the id, computed once per id.
    pub(crate) fn digest(&self) -> &Digest {
        self.0.digest.get_or_init(|| Digest::of(&self.0.text))
    }

    /// The Redis key of this session (see [`Digest::redis_key`]).
    pub(crate) fn redis_key(&self, namespace: &str) -> String {
        self.digest().redis_key(namespace)
    }

    /// The key of this session's tombstone (see [`Digest::tombstone_key`]).
    pub(crate) fn tombstone_key(&self, namespace: &str) -> String {
        self.digest().tombstone_key(namespace)
    }
}

impl fmt::Debug for SessionId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("SessionId(<redacted>)")
    }
}

/// SHA-256 of a session id: all the Redis side ever needs, and not a credential.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) struct Digest([u8; 32]);

impl Digest {
    fn of(id: &str) -> Self {
        Self(Sha256::digest(id.as_bytes()).into())
    }

    /// The digest as written in keys and tombstones: base64url, 43 characters.
    pub(crate) fn to_text(self) -> String {
        URL_SAFE_NO_PAD.encode(self.0)
    }

    /// Parses what [`to_text`](Self::to_text) wrote.
    pub(crate) fn parse(text: &str) -> Option<Self> {
        let bytes = URL_SAFE_NO_PAD.decode(text).ok()?;
        bytes.try_into().ok().map(Self)
    }

    /// `<namespace>:{<base64url(sha256(id))>}`, the digest as the hash tag.
    pub(crate) fn redis_key(&self, namespace: &str) -> String {
        self.key(namespace, ":{")
    }

    /// `<namespace>:revoked:{<base64url(sha256(id))>}`, in the slot of the session's hash.
    pub(crate) fn tombstone_key(&self, namespace: &str) -> String {
        self.key(namespace, ":revoked:{")
    }

    /// `<namespace><infix><digest>}`, in one allocation: keys are made on every request.
    fn key(&self, namespace: &str, infix: &str) -> String {
        let mut key = String::with_capacity(namespace.len() + infix.len() + ID_CHARS + 1);
        key.push_str(namespace);
        key.push_str(infix);
        URL_SAFE_NO_PAD.encode_string(self.0, &mut key);
        key.push('}');
        key
    }
}

impl fmt::Debug for Digest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Not a secret, but a stable handle on a session: kept out of logs all the same.
        f.write_str("Digest(..)")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_ids_parse_and_differ() {
        let a = SessionId::generate().expect("random");
        let b = SessionId::generate().expect("random");
        assert_ne!(a, b);
        assert_eq!(a.as_str().len(), ID_CHARS);
        assert_eq!(SessionId::parse(a.as_str()), Some(a));
    }

    #[test]
    fn anything_else_is_rejected() {
        let valid = SessionId::generate().expect("random");
        let mut cases = vec![
            String::new(),
            "short".to_owned(),
            "*".repeat(ID_CHARS),
            format!("{}:", &valid.as_str()[..ID_CHARS - 1]),
            format!("{}\r", &valid.as_str()[..ID_CHARS - 1]),
            format!("{}\n", &valid.as_str()[..ID_CHARS - 1]),
            format!("{}=", &valid.as_str()[..ID_CHARS - 1]),
            format!("{}+", &valid.as_str()[..ID_CHARS - 1]),
            format!("{}A", valid.as_str()),
            "é".repeat(ID_CHARS),
        ];
        cases.push(valid.as_str()[..ID_CHARS - 1].to_owned());
        for case in cases {
            assert_eq!(SessionId::parse(&case), None, "{case:?} must not parse");
        }
    }

    #[test]
    fn the_redis_key_hides_the_id() {
        let id = SessionId::generate().expect("random");
        let key = id.redis_key("session");
        assert_eq!(key, format!("session:{{{}}}", id.digest().to_text()));
        assert!(!key.contains(id.as_str()));
        assert_eq!(
            id.tombstone_key("session"),
            key.replacen("session:", "session:revoked:", 1)
        );
        assert_eq!(key, id.redis_key("session"), "stable");
        assert_eq!(format!("{id:?}"), "SessionId(<redacted>)");
    }

    #[test]
    fn digests_round_trip_as_text() {
        let digest = *SessionId::generate().expect("random").digest();
        assert_eq!(Digest::parse(&digest.to_text()), Some(digest));
        assert_eq!(digest.to_text().len(), ID_CHARS);
        assert_eq!(Digest::parse("short"), None);
        assert_eq!(Digest::parse(&"*".repeat(ID_CHARS)), None);
    }
}
