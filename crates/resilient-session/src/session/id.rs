//! Session ids and the Redis keys derived from them.
//!
//! An id is 256 bits from the operating system's CSPRNG, written as 43 characters of unpadded
//! base64url. Anything else does not parse, so a forged or damaged id never reaches Redis: no key
//! injection (`*`, `:`, CR/LF), no wasted round trip. Redis never sees the id itself: the key is
//! `{namespace}:{SHA-256 of the id, base64url}`, so whoever reads Redis (a dump, `MONITOR`, a
//! replica) learns no cookie that would log them in. The braces are there: they are a Redis
//! Cluster hash tag, so that a session's hash and its tombstone live in the same slot.

use std::fmt;
use std::sync::OnceLock;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use sha2::{Digest, Sha256};

use crate::{Error, Result};

const ID_BYTES: usize = 32;
const ID_CHARS: usize = 43;

/// A session id. Its `Debug` output is redacted: ids never reach a log line.
#[derive(Clone)]
pub(crate) struct SessionId(String, OnceLock<String>);

impl PartialEq for SessionId {
    fn eq(&self, other: &Self) -> bool {
        self.0 == other.0
    }
}

impl Eq for SessionId {}

impl SessionId {
    /// A new random id.
    pub(crate) fn generate() -> Result<Self> {
        let mut bytes = [0u8; ID_BYTES];
        getrandom::fill(&mut bytes).map_err(|err| {
            Error::Config(format!("the OS random number generator failed: {err}"))
        })?;
        Ok(Self(URL_SAFE_NO_PAD.encode(bytes), OnceLock::new()))
    }

    /// Parses an id from a cookie; `None` unless it is exactly what [`generate`](Self::generate)
    /// makes.
    pub(crate) fn parse(text: &str) -> Option<Self> {
        if text.len() != ID_CHARS {
            return None;
        }
        let bytes = URL_SAFE_NO_PAD.decode(text).ok()?;
        (bytes.len() == ID_BYTES).then(|| Self(text.to_owned(), OnceLock::new()))
    }

    pub(crate) fn as_str(&self) -> &str {
        &self.0
    }

    /// The Redis key of this session: `<namespace>:{<base64url(sha256(id))>}`, with the
    /// digest as the hash tag.
    pub(crate) fn redis_key(&self, namespace: &str) -> String {
        format!("{namespace}:{{{}}}", self.digest())
    }

    /// The key of this session's tombstone, in the slot of its hash:
    /// `<namespace>:revoked:{<base64url(sha256(id))>}`.
    pub(crate) fn tombstone_key(&self, namespace: &str) -> String {
        format!("{namespace}:revoked:{{{}}}", self.digest())
    }

    /// base64url(SHA-256(id)), computed once per id.
    fn digest(&self) -> &str {
        self.1
            .get_or_init(|| URL_SAFE_NO_PAD.encode(Sha256::digest(self.0.as_bytes())))
    }
}

impl fmt::Debug for SessionId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("SessionId(<redacted>)")
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
        assert!(key.starts_with("session:"));
        assert!(!key.contains(id.as_str()));
        assert_eq!(
            id.tombstone_key("session"),
            key.replacen("session:", "session:revoked:", 1)
        );
        assert_eq!(key, id.redis_key("session"), "stable");
        assert_eq!(format!("{id:?}"), "SessionId(<redacted>)");
    }
}
