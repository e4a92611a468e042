//! [`Import`]: carrying live sessions over from tower-sessions or actix-session.

use std::collections::HashMap;
use std::fmt;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use cookie::{Cookie, CookieJar, Key};
use serde::Deserialize;
use serde_json::{Map, Value};

/// Where live sessions are imported from, for
/// [`SessionConfig::import_sessions`](crate::SessionConfig::import_sessions).
///
/// Configured with the old app's cookie name and Redis key prefix (and its cookie key when its
/// cookies were signed or private), the layer recognises a request that carries only the old
/// cookie. On that request's first use of the session it reads the old session (`GET`: one
/// round trip), moves its data into a new session of ours (written at the end of the request
/// like any new session, the old key deleted in the same round trip), and replaces the old
/// cookie with ours. The user stays logged in; the next request carries our cookie and costs
/// nothing extra. Nothing is deleted before our copy is written.
///
/// | old store | cookie value | Redis value at `prefix + value` |
/// | --- | --- | --- |
/// | tower-sessions + tower-sessions-redis-store 0.16 | the session id (22 chars), plain by default | MessagePack of `{id, data, expiry_date}` |
/// | actix-session 0.11 `RedisSessionStore` | the session key (64 chars), private (encrypted) by default | JSON `{"key": "<json>"}`; also `{"v": 1, "state": {…}}` |
///
/// When Redis is unavailable (or refuses the read) the old session stays where it is, and so
/// does the old cookie: the request is served without it, changes are not kept, and a later
/// request imports it. Two requests importing the same old session at once each make a copy;
/// the browser keeps the last cookie it is sent, the other copy expires unused. Data that fails
/// [`max_session_bytes`](crate::SessionConfig::max_session_bytes) or the
/// [validator](crate::SessionConfig::validate) is not imported (nor deleted). A cookie of that
/// name which does not parse as the old app's (or fails its signature) is left alone and sends
/// nothing to Redis.
///
/// ```
/// use resilient_session::Import;
///
/// // tower-sessions' defaults: cookie `id`, plain, no key prefix.
/// let from_tower = Import::tower_sessions("id");
/// // actix-session's defaults: cookie `id`, private, with the app's key.
/// let key = cookie::Key::from(&[7u8; 64]);
/// let from_actix = Import::actix_session("id", key).key_prefix("");
/// # let _ = (from_tower, from_actix);
/// ```
#[derive(Clone)]
#[must_use]
pub struct Import {
    from: Legacy,
    cookie_name: String,
    key_prefix: String,
    protection: Protection,
    path: String,
    domain: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Legacy {
    TowerSessions,
    ActixSession,
}

#[derive(Clone)]
enum Protection {
    Plain,
    Signed(Key),
    Private(Key),
}

/// An imported app's session, decoded.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct OldSession {
    pub(crate) values: Map<String, Value>,
    /// When it would have ended, unix seconds, if its value says.
    pub(crate) deadline: Option<i64>,
}

/// A tower-sessions record as tower-sessions-redis-store writes it (MessagePack).
#[derive(Deserialize)]
struct TowerRecord {
    #[allow(dead_code)] // read to keep the fields in order; the key already names the session
    id: i128,
    data: HashMap<String, Value>,
    expiry_date: time::OffsetDateTime,
}

impl Import {
    /// Sessions of tower-sessions with tower-sessions-redis-store, whose cookie is
    /// `cookie_name` (tower-sessions' default: `id`). Plain cookies, no key prefix, unless
    /// [`signed`](Self::signed), [`private`](Self::private) or
    /// [`key_prefix`](Self::key_prefix) say otherwise.
    pub fn tower_sessions(cookie_name: impl Into<String>) -> Self {
        Self::new(Legacy::TowerSessions, cookie_name.into(), Protection::Plain)
    }

    /// Sessions of actix-session's `RedisSessionStore`, whose cookie is `cookie_name`
    /// (actix-session's default: `id`) and was made private (encrypted, actix-session's default)
    /// with `key`, the app's `actix_web::cookie::Key` (build ours from the same master bytes:
    /// `cookie::Key::from(master)`). [`signed`](Self::signed) for `CookieContentSecurity::Signed`.
    pub fn actix_session(cookie_name: impl Into<String>, key: Key) -> Self {
        Self::new(
            Legacy::ActixSession,
            cookie_name.into(),
            Protection::Private(key),
        )
    }

    fn new(from: Legacy, cookie_name: String, protection: Protection) -> Self {
        Self {
            from,
            cookie_name,
            key_prefix: String::new(),
            protection,
            path: "/".into(),
            domain: None,
        }
    }

    /// The prefix of the old Redis keys (tower-sessions-redis-store has none; actix-session's
    /// `cache_keygen` may add one). Default empty.
    pub fn key_prefix(mut self, prefix: impl Into<String>) -> Self {
        self.key_prefix = prefix.into();
        self
    }

    /// The old cookies were signed (HMAC) with `key`.
    pub fn signed(mut self, key: Key) -> Self {
        self.protection = Protection::Signed(key);
        self
    }

    /// The old cookies were private (encrypted) with `key`.
    pub fn private(mut self, key: Key) -> Self {
        self.protection = Protection::Private(key);
        self
    }

    /// The old cookie's `Path` and `Domain`, to remove it (default `/`, no domain).
    pub fn cookie_scope(mut self, path: impl Into<String>, domain: Option<String>) -> Self {
        self.path = path.into();
        self.domain = domain;
        self
    }

    pub(crate) fn cookie_name(&self) -> &str {
        &self.cookie_name
    }

    /// The Redis key of the old session an old cookie value stands for; `None` when the value
    /// is not a cookie that app could have issued (forged, tampered, malformed): no Redis
    /// command is sent for it.
    pub(crate) fn redis_key(&self, value: &str) -> Option<String> {
        // Both old apps percent-encode the value they set (`Cookie::encoded`).
        let cookie = Cookie::parse_encoded(format!("{}={value}", self.cookie_name)).ok()?;
        let value = cookie.value().to_owned();
        let jar = CookieJar::new();
        let id = match &self.protection {
            Protection::Plain => value,
            Protection::Signed(key) => jar.signed(key).verify(cookie)?.value().to_owned(),
            Protection::Private(key) => jar.private(key).decrypt(cookie)?.value().to_owned(),
        };
        let valid = match self.from {
            // `Id`: 128 bits, base64url without padding.
            Legacy::TowerSessions => {
                id.len() == 22 && URL_SAFE_NO_PAD.decode(&id).is_ok_and(|b| b.len() == 16)
            }
            // `SessionKey`: 64 alphanumeric characters.
            Legacy::ActixSession => id.len() == 64 && id.bytes().all(|b| b.is_ascii_alphanumeric()),
        };
        valid.then(|| format!("{}{id}", self.key_prefix))
    }

    /// The old session from its Redis value; `Ok(None)` when it has expired.
    pub(crate) fn decode(
        &self,
        bytes: &[u8],
        now: time::OffsetDateTime,
    ) -> Result<Option<OldSession>, String> {
        let mut deadline = None;
        let values: Map<String, Value> = match self.from {
            Legacy::TowerSessions => {
                let record: TowerRecord = rmp_serde::from_slice(bytes)
                    .map_err(|err| format!("not a tower-sessions record: {err}"))?;
                if record.expiry_date <= now {
                    return Ok(None);
                }
                deadline = Some(record.expiry_date.unix_timestamp());
                record.data.into_iter().collect()
            }
            Legacy::ActixSession => {
                let value: Value = serde_json::from_slice(bytes)
                    .map_err(|err| format!("not an actix-session state: {err}"))?;
                // `{"v": <number>, "state": {…}}`; anything else is the state itself (0.11).
                let versioned = |object: &Map<String, Value>| {
                    object.len() == 2
                        && object.get("v").is_some_and(Value::is_number)
                        && object.get("state").is_some_and(Value::is_object)
                };
                let state = match value {
                    Value::Object(mut object) if versioned(&object) => {
                        object.remove("state").unwrap_or_default()
                    }
                    other => other,
                };
                let Value::Object(state) = state else {
                    return Err("an actix-session state is a JSON object".into());
                };
                state
                    .into_iter()
                    .map(|(key, value)| (key, unwrap_json_string(value)))
                    .collect()
            }
        };
        // Keys starting with NUL are reserved in our sessions.
        let values = values
            .into_iter()
            .filter(|(key, _)| !key.starts_with('\0'))
            .collect();
        Ok(Some(OldSession { values, deadline }))
    }

    /// A `Set-Cookie` header removing the old cookie; `Secure` when ours is (and always for a
    /// `__Host-` or `__Secure-` name, which browsers require it for).
    pub(crate) fn removal(&self, secure: bool) -> String {
        let prefixed = ["__Host-", "__Secure-"]
            .iter()
            .any(|prefix| self.cookie_name.starts_with(prefix));
        let mut cookie = Cookie::build((self.cookie_name.clone(), ""))
            .path(self.path.clone())
            .secure(secure || prefixed)
            .max_age(cookie::time::Duration::ZERO)
            .expires(cookie::time::OffsetDateTime::UNIX_EPOCH)
            .build();
        if let Some(domain) = &self.domain {
            cookie.set_domain(domain.clone());
        }
        cookie.to_string()
    }
}

/// actix-session 0.11 stores each value as a JSON string of its JSON: `"3"`, `"{\"a\":1}"`.
fn unwrap_json_string(value: Value) -> Value {
    match value {
        Value::String(text) => serde_json::from_str(&text).unwrap_or(Value::String(text)),
        other => other,
    }
}

impl fmt::Debug for Import {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // The key stays out.
        let protection = match self.protection {
            Protection::Plain => "plain",
            Protection::Signed(_) => "signed",
            Protection::Private(_) => "private",
        };
        f.debug_struct("Import")
            .field("from", &self.from)
            .field("cookie_name", &self.cookie_name)
            .field("key_prefix", &self.key_prefix)
            .field("protection", &protection)
            .finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn later() -> time::OffsetDateTime {
        time::OffsetDateTime::now_utc() + time::Duration::hours(1)
    }

    #[test]
    fn tower_ids_are_checked_before_any_key_is_made() {
        let import = Import::tower_sessions("id").key_prefix("old:");
        let id = URL_SAFE_NO_PAD.encode(7i128.to_le_bytes());
        assert_eq!(import.redis_key(&id), Some(format!("old:{id}")));
        for bad in [
            "",
            "*",
            "short",
            &format!("{id}x"),
            "a:b\r\nFLUSHALL\r\n12345",
        ] {
            assert_eq!(import.redis_key(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn signed_and_private_cookies_are_verified_with_the_key() {
        let key = Key::from(&[3u8; 64]);
        let id = "a".repeat(64);
        let mut jar = CookieJar::new();
        jar.private_mut(&key).add(Cookie::new("id", id.clone()));
        let private = jar.get("id").expect("added").value().to_owned();
        let import = Import::actix_session("id", key.clone());
        assert_eq!(import.redis_key(&private), Some(id.clone()));
        let encoded = Cookie::new("id", private.clone()).encoded().to_string();
        let encoded = encoded.trim_start_matches("id=");
        assert_ne!(encoded, private, "base64 has characters to escape");
        assert_eq!(
            import.redis_key(encoded),
            Some(id.clone()),
            "percent-encoded"
        );
        assert_eq!(import.redis_key(&id), None, "plain value refused");
        let other = Import::actix_session("id", Key::from(&[4u8; 64]));
        assert_eq!(other.redis_key(&private), None, "another key refused");

        let mut jar = CookieJar::new();
        jar.signed_mut(&key).add(Cookie::new("id", id.clone()));
        let signed = jar.get("id").expect("added").value().to_owned();
        let import = Import::actix_session("id", key.clone()).signed(key);
        assert_eq!(import.redis_key(&signed), Some(id));
    }

    #[test]
    fn actix_states_old_and_new() {
        let import = Import::actix_session("id", Key::from(&[3u8; 64]));
        let plain = br#"{"counter":"3","user":"{\"user_id\":\"ada\"}","note":"not json"}"#;
        let OldSession { values, deadline } = import
            .decode(plain, later())
            .expect("decodes")
            .expect("live");
        assert_eq!(deadline, None, "actix-session keeps it in the key's TTL");
        assert_eq!(values["counter"], 3);
        assert_eq!(values["user"]["user_id"], "ada");
        assert_eq!(values["note"], "not json");
        let versioned = br#"{"v":1,"state":{"counter":4}}"#;
        let values = import
            .decode(versioned, later())
            .expect("decodes")
            .expect("live")
            .values;
        assert_eq!(values["counter"], 4);
        // A 0.11 state that happens to have keys `v` and `state` is still a 0.11 state.
        let lookalike = br#"{"v":"\"x\"","state":"\"y\""}"#;
        let values = import
            .decode(lookalike, later())
            .expect("decodes")
            .expect("live")
            .values;
        assert_eq!(values["v"], "x");
        assert_eq!(values["state"], "y");
        assert!(import.decode(b"[1,2]", later()).is_err());
        assert!(import.decode(b"\xff", later()).is_err());
    }

    #[test]
    fn tower_records_decode_and_expire() {
        #[derive(serde::Serialize)]
        struct Record {
            id: i128,
            data: HashMap<String, Value>,
            expiry_date: time::OffsetDateTime,
        }
        let record = Record {
            id: 9,
            data: HashMap::from([("counter".to_owned(), Value::from(2))]),
            expiry_date: later(),
        };
        let bytes = rmp_serde::to_vec(&record).expect("encodes");
        let import = Import::tower_sessions("id");
        let OldSession { values, deadline } = import
            .decode(&bytes, time::OffsetDateTime::now_utc())
            .expect("decodes")
            .expect("live");
        assert_eq!(values["counter"], 2);
        assert_eq!(deadline, Some(record.expiry_date.unix_timestamp()));
        let expired = import.decode(&bytes, later() + time::Duration::seconds(1));
        assert_eq!(expired.expect("decodes"), None);
        assert!(import.decode(b"garbage", later()).is_err());
    }

    #[test]
    fn removal_expires_the_old_cookie() {
        let removal = Import::tower_sessions("id").removal(false);
        assert!(removal.starts_with("id=;"), "{removal}");
        assert!(
            removal.contains("Max-Age=0") && removal.contains("Path=/"),
            "{removal}"
        );
        assert!(!removal.contains("Secure"), "{removal}");
        assert!(
            Import::tower_sessions("id")
                .removal(true)
                .contains("Secure")
        );
        let host = Import::tower_sessions("__Host-id").removal(false);
        assert!(host.contains("Secure"), "{host}");
    }
}
