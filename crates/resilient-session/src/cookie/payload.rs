//! What the session cookie carries, before encryption: a compact, versioned JSON object.
//!
//! | field | meaning |
//! | --- | --- |
//! | `v` | format version (2) |
//! | `i` | the Redis session id; absent in a cookie-only session |
//! | `p` | a cookie-only session's own random id: never a Redis key, only what a logout revokes |
//! | `c` | created, unix seconds (absolute lifetime) |
//! | `t` | touched: when Redis last confirmed the session, unix seconds (touch throttling, fallback age) |
//! | `e` | the Redis data epoch seen at that confirmation |
//! | `n` | the stamp of the state the cookie holds: the writes Redis made that it last saw, and the writes it took in since while Redis was down |
//! | `b` | the stamp of the Redis state the mirror's other values (those not in `w`) are from, when not `n` (a save that failed stamps the cookie past the state it loaded) |
//! | `m` | mirror: the values of the mirrored keys |
//! | `k` | which keys were mirrored when `m` was made (a fingerprint of their names): if they are not the ones mirrored now, a mirrored key missing from `m` is unknown |
//! | `u` | the mirror is not all here (it did not fit): a key missing from `m` and `d` is unknown |
//! | `q` | values of keys that are not mirrored are not all here (they did not fit, or the session took a new identity while Redis was down, from what it knew): such a key missing from `d` is unknown |
//! | `w` | mirrored keys whose value in `m` was written while Redis was down, until Redis has it |
//! | `d` | values of other keys written while Redis was down, until Redis has them |
//! | `x` | keys removed while Redis was down, until Redis has it |

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use serde_json::{Map, Value};

use crate::session::{SessionId, Stamp};

/// The format version this code writes and reads.
pub(crate) const VERSION: u8 = 2;

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
    #[serde(rename = "n", default, skip_serializing_if = "is_zero")]
    stamp: u64,
    #[serde(rename = "b", default, skip_serializing_if = "Option::is_none")]
    base: Option<u64>,
    #[serde(rename = "m", default, skip_serializing_if = "Map::is_empty")]
    pub(crate) mirror: Map<String, Value>,
    #[serde(rename = "k", default, skip_serializing_if = "is_zero_u32")]
    pub(crate) mirrored: u32,
    #[serde(rename = "u", default, skip_serializing_if = "std::ops::Not::not")]
    pub(crate) incomplete: bool,
    #[serde(rename = "q", default, skip_serializing_if = "std::ops::Not::not")]
    pub(crate) partial: bool,
    #[serde(rename = "w", default, skip_serializing_if = "Vec::is_empty")]
    pub(crate) written: Vec<String>,
    #[serde(rename = "d", default, skip_serializing_if = "Map::is_empty")]
    pub(crate) data: Map<String, Value>,
    #[serde(rename = "x", default, skip_serializing_if = "Vec::is_empty")]
    pub(crate) removed: Vec<String>,
}

fn is_zero(n: &u64) -> bool {
    *n == 0
}

fn is_zero_u32(n: &u32) -> bool {
    *n == 0
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
            stamp: 0,
            base: None,
            mirror: Map::new(),
            mirrored: 0,
            incomplete: false,
            partial: false,
            written: Vec::new(),
            data: Map::new(),
            removed: Vec::new(),
        }
    }

    /// Where the state this cookie holds stands in the session's history.
    pub(crate) fn stamp(&self) -> Stamp {
        Stamp::from_bits(self.stamp)
    }

    /// Sets the stamp; the mirror is then Redis's state at that stamp (see
    /// [`set_mirror_stamp`](Self::set_mirror_stamp)).
    pub(crate) fn set_stamp(&mut self, stamp: Stamp) {
        self.stamp = stamp.bits();
        self.base = None;
    }

    /// The stamp of the Redis state the mirror's values are from (those written while Redis was
    /// down aside): a Redis behind it lost writes it had confirmed to this cookie.
    pub(crate) fn mirror_stamp(&self) -> Stamp {
        self.base.map_or_else(|| self.stamp(), Stamp::from_bits)
    }

    /// The mirror is Redis's state at `stamp` (set after the stamp).
    pub(crate) fn set_mirror_stamp(&mut self, stamp: Stamp) {
        self.base = (stamp != self.stamp()).then_some(stamp.bits());
    }

    /// The fingerprint of a set of mirrored keys, as `k` holds it: 32 bits of SHA-256 of their
    /// names. Never 0 (which is "not known").
    pub(crate) fn fingerprint(mirrored: &std::collections::BTreeSet<String>) -> u32 {
        use sha2::{Digest, Sha256};
        let mut hasher = Sha256::new();
        for key in mirrored {
            hasher.update(key.as_bytes());
            hasher.update([0]);
        }
        let digest = hasher.finalize();
        u32::from_le_bytes([digest[0], digest[1], digest[2], digest[3]]).max(1)
    }

    /// Whether the cookie carries writes Redis does not have.
    pub(crate) fn has_pending(&self) -> bool {
        !self.written.is_empty() || !self.data.is_empty() || !self.removed.is_empty()
    }

    /// The keys the cookie wrote (or removed) while Redis was down.
    pub(crate) fn pending_keys(&self) -> impl Iterator<Item = &String> {
        self.written
            .iter()
            .chain(self.data.keys())
            .chain(self.removed.iter())
    }

    /// The id a logout of this session revokes: the Redis id, or a cookie-only session's own.
    pub(crate) fn revocable_id(&self) -> Option<&SessionId> {
        self.id.as_ref().or(self.provisional.as_ref())
    }

    /// The session as the cookie has it: the mirror, then what was written and removed while
    /// Redis was down.
    pub(crate) fn view(&self) -> Map<String, Value> {
        let mut values = self.mirror.clone();
        values.extend(self.data.iter().map(|(k, v)| (k.clone(), v.clone())));
        for key in &self.removed {
            values.remove(key);
        }
        values
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
        assert!(json.starts_with(r#"{"v":2,"i":""#), "{json}");
        for absent in [r#""d""#, r#""n""#, r#""u""#] {
            assert!(!json.contains(absent), "empty fields are left out: {json}");
        }
        assert_eq!(Payload::from_json(json.as_bytes()), Some(payload.clone()));
        payload.set_stamp(Stamp::new(7, 2));
        payload.incomplete = true;
        let json = payload.to_json();
        assert!(
            json.contains(&format!(r#""n":{}"#, Stamp::new(7, 2).bits()))
                && json.contains(r#""u":true"#),
            "{json}"
        );
        assert_eq!(Payload::from_json(json.as_bytes()), Some(payload));
    }

    #[test]
    fn malformed_or_foreign_payloads_are_refused() {
        for json in [
            "",
            "{}",
            "null",
            r#"{"v":1,"c":1,"t":1}"#,
            r#"{"v":3,"c":1,"t":1}"#,
            r#"{"v":2,"c":"x","t":1}"#,
            r#"{"v":2,"c":1,"t":1,"n":-1}"#,
            r#"{"v":2,"i":"not-an-id","c":1,"t":1}"#,
            r#"{"v":2,"i":"session:*","c":1,"t":1}"#,
        ] {
            assert_eq!(Payload::from_json(json.as_bytes()), None, "{json}");
        }
        assert!(Payload::from_json(br#"{"v":2,"c":1,"t":1}"#).is_some());
    }

    #[test]
    fn fingerprints_tell_mirror_sets_apart() {
        let set = |keys: &[&str]| keys.iter().map(|k| (*k).to_owned()).collect();
        let user = Payload::fingerprint(&set(&["user"]));
        assert_eq!(user, Payload::fingerprint(&set(&["user"])));
        assert_ne!(user, Payload::fingerprint(&set(&["user", "mfa_pending"])));
        assert_ne!(
            Payload::fingerprint(&set(&["ab", "c"])),
            Payload::fingerprint(&set(&["a", "bc"]))
        );
        assert_ne!(Payload::fingerprint(&set(&[])), 0);
    }

    #[test]
    fn the_view_is_the_mirror_with_the_outage_writes_over_it() {
        let mut payload = Payload::new(None, 1);
        payload.mirror.insert("user".into(), "ada".into());
        payload.mirror.insert("role".into(), "admin".into());
        payload.data.insert("cart".into(), 3.into());
        payload.removed.push("role".into());
        let view = payload.view();
        assert_eq!(view.len(), 2);
        assert_eq!(view["user"], "ada");
        assert_eq!(view["cart"], 3);
        assert!(payload.has_pending());
    }
}
