//! What the session cookie carries, before encryption: a compact, versioned JSON object.
//!
//! | field | meaning |
//! | --- | --- |
//! | `v` | format version (1) |
//! | `i` | the Redis session id; absent in a cookie-only session |
//! | `p` | a cookie-only session's own random id: never a Redis key, only what a logout revokes |
//! | `c` | created, unix seconds (absolute lifetime) |
//! | `t` | touched: when Redis last confirmed the session, unix seconds (touch throttling, fallback age) |
//! | `e` | the Redis data epoch seen at that confirmation |
//! | `m` | mirror: the values of the mirrored keys |
//! | `d` | data written while Redis was down, until Redis has it |
//! | `x` | keys removed while Redis was down, until Redis has it |
//! | `b` | a random name for the batch in `d` and `x`, so Redis merges each batch once |

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use serde_json::{Map, Value};

use crate::session::SessionId;

/// The format version this code writes and reads.
pub(crate) const VERSION: u8 = 1;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub(crate) struct Payload {
    #[serde(rename = "v")]
    pub(crate) version: u8,
    #[serde(rename = "i", default, skip_serializing_if = "Option::is_none")]
    pub(crate) id: Option<SessionId>,
    #[serde(rename = "p", default, skip_serializing_if = "Option::is_none")]
    pub(crate) provisional: Option<SessionId>,
    #[serde(rename = "c")]
    pub(crate) created: i64,
    #[serde(rename = "t")]
    pub(crate) touched: i64,
    #[serde(rename = "e", default, skip_serializing_if = "Option::is_none")]
    pub(crate) epoch: Option<String>,
    #[serde(rename = "m", default, skip_serializing_if = "Map::is_empty")]
    pub(crate) mirror: Map<String, Value>,
    #[serde(rename = "d", default, skip_serializing_if = "Map::is_empty")]
    pub(crate) data: Map<String, Value>,
    #[serde(rename = "x", default, skip_serializing_if = "Vec::is_empty")]
    pub(crate) removed: Vec<String>,
    #[serde(rename = "b", default, skip_serializing_if = "Option::is_none")]
    pub(crate) batch: Option<String>,
}

impl Payload {
    pub(crate) fn new(id: Option<SessionId>, now: i64) -> Self {
        Self {
            version: VERSION,
            id,
            provisional: None,
            created: now,
            touched: now,
            epoch: None,
            mirror: Map::new(),
            data: Map::new(),
            removed: Vec::new(),
            batch: None,
        }
    }

    /// Whether the cookie carries changes Redis does not have yet.
    pub(crate) fn has_pending(&self) -> bool {
        !self.data.is_empty() || !self.removed.is_empty()
    }

    /// The id a logout of this session revokes: the Redis id, or a cookie-only session's own.
    pub(crate) fn revocable_id(&self) -> Option<&SessionId> {
        self.id.as_ref().or(self.provisional.as_ref())
    }

    pub(crate) fn to_json(&self) -> String {
        // Serialising maps of JSON values with string keys cannot fail.
        serde_json::to_string(self).unwrap_or_default()
    }

    /// Parses a decrypted payload; `None` for anything malformed or of another version.
    pub(crate) fn from_json(json: &[u8]) -> Option<Self> {
        let payload: Self = serde_json::from_slice(json).ok()?;
        (payload.version == VERSION).then_some(payload)
    }
}

impl Serialize for SessionId {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(self.as_str())
    }
}

impl<'de> Deserialize<'de> for SessionId {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = std::borrow::Cow::<str>::deserialize(deserializer)?;
        SessionId::parse(&text).ok_or_else(|| serde::de::Error::custom("not a session id"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_and_stays_compact() {
        let mut payload = Payload::new(Some(SessionId::generate().expect("random")), 1_700_000_000);
        payload.mirror.insert("user".into(), Value::from("ada"));
        let json = payload.to_json();
        assert!(json.starts_with(r#"{"v":1,"i":""#), "{json}");
        assert!(
            !json.contains(r#""d""#),
            "empty fields are left out: {json}"
        );
        assert_eq!(Payload::from_json(json.as_bytes()), Some(payload));
    }

    #[test]
    fn malformed_or_foreign_payloads_are_refused() {
        for json in [
            "",
            "{}",
            "null",
            r#"{"v":2,"c":1,"t":1}"#,
            r#"{"v":1,"c":"x","t":1}"#,
            r#"{"v":1,"i":"not-an-id","c":1,"t":1}"#,
            r#"{"v":1,"i":"session:*","c":1,"t":1}"#,
        ] {
            assert_eq!(Payload::from_json(json.as_bytes()), None, "{json}");
        }
        assert!(Payload::from_json(br#"{"v":1,"c":1,"t":1}"#).is_some());
    }
}
