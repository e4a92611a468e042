//! Turns a [`Payload`] into a `Set-Cookie` header and a `Cookie` header back into a payload.
//!
//! Private mode encrypts the payload with AES-256-GCM (in the cookie crate's private-jar format,
//! each key's cipher set up once), with the cookie's name as associated data. Signed mode signs `name=base64url(payload)` with
//! HMAC-SHA256 (the cookie crate's signed jar) and sends only `mac ‖ base64url(payload)`. Either
//! way a value is bound to its cookie's name: it does not verify under another name.
//!
//! The value starts with the payload's `touched` time in the clear, `{touched}.{protected}`:
//! a request that does not use its session reads only that to know whether a touch is due, and
//! skips the cryptography. It is a hint: nothing is done on it without verifying the payload,
//! which must hold the same time.
//!
//! A request may carry our cookie more than once (set for several paths or domains); at most
//! [`MAX_VALUES`] of them are tried, each against every key of the ring, so that a request
//! stuffed with cookies costs a bounded amount of cryptography.
//!
//! The same keys seal the one other secret the engine hands to Redis: the id of the session a
//! re-seeded one moved to, in its tombstone (bound to another name, so it never verifies as a
//! cookie).

use std::fmt::Write as _;
use std::time::Duration;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use cookie::{Cookie, CookieJar};

use super::KeyRing;
use super::aead::Sealer;
use super::payload::Payload;
use crate::config::{CookieMode, SameSite, SessionConfig};

/// Browsers keep at most 4096 bytes of a cookie's name and value; we never emit more.
pub(crate) const MAX_COOKIE_BYTES: usize = 4096;

/// Length of the base64 HMAC-SHA256 tag the signed jar prepends.
const MAC_CHARS: usize = 44;

/// Most values of our cookie tried per request.
pub(crate) const MAX_VALUES: usize = 3;

#[derive(Debug, Clone)]
pub(crate) struct CookieCodec {
    name: String,
    mode: CookieMode,
    keys: KeyRing,
    sealer: Sealer,
    /// The `Set-Cookie` attributes after the value, up to `Max-Age`: the same for every cookie.
    attributes: String,
    secure: bool,
    http_only: bool,
    same_site: SameSite,
    path: String,
    domain: Option<String>,
}

/// The values of our cookie in a request, not verified yet.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct RawCookie {
    values: Vec<String>,
}

/// A verified cookie's payload, and whether the newest key of the ring protected it.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Opened {
    pub(crate) payload: Payload,
    /// Protected by the newest key. A cookie of an older key still finds its session in Redis,
    /// but is never trusted on its own (fallback, re-seeding, promotion): a retired key may be
    /// a leaked one.
    pub(crate) newest_key: bool,
}

impl RawCookie {
    /// When the (first) value says Redis last confirmed the session. Unverified: a hint for
    /// skipping work, never a reason to do any.
    pub(crate) fn touched_hint(&self) -> Option<i64> {
        let (hint, _) = self.values.first()?.split_once('.')?;
        hint.parse().ok()
    }

    /// Every value was too long to be a cookie of ours (and so was not kept).
    pub(crate) fn too_long(&self) -> bool {
        self.values.is_empty()
    }
}

/// The payload does not fit in [`MAX_COOKIE_BYTES`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct TooLarge {
    pub(crate) bytes: usize,
}

/// The cookies of a request that matter: ours, and an imported app's (see
/// [`Import`](crate::session::Import)).
#[derive(Debug, Default)]
pub(crate) struct Found {
    pub(crate) ours: Option<RawCookie>,
    pub(crate) legacy: Option<String>,
}

impl CookieCodec {
    pub(crate) fn new(config: &SessionConfig) -> Self {
        let mut codec = Self {
            name: config.full_cookie_name(),
            mode: config.mode,
            keys: config.keys.clone(),
            sealer: Sealer::new(&config.keys),
            attributes: String::new(),
            secure: config.secure,
            http_only: config.http_only,
            same_site: config.same_site,
            path: config.path.clone(),
            domain: config.domain.clone(),
        };
        let empty = codec.attributes(String::new()).to_string();
        codec.attributes = empty[codec.name.len() + 1..].to_owned();
        codec
    }

    pub(crate) fn name(&self) -> &str {
        &self.name
    }

    /// Our cookie's values among the request's `Cookie` headers, unverified. Values too long
    /// to be ours are counted as present but not kept.
    pub(crate) fn find<'a>(
        &self,
        headers: impl IntoIterator<Item = &'a [u8]>,
        legacy_name: Option<&str>,
    ) -> Found {
        let mut values = Vec::new();
        let mut present = false;
        let mut legacy = None;
        for header in headers {
            let Ok(header) = std::str::from_utf8(header) else {
                continue;
            };
            for cookie in Cookie::split_parse(header).flatten() {
                let fits = cookie.name().len() + 1 + cookie.value().len() <= MAX_COOKIE_BYTES;
                if cookie.name() == self.name {
                    present = true;
                    if fits && values.len() < MAX_VALUES {
                        values.push(cookie.value().to_owned());
                    }
                } else if legacy.is_none() && fits && Some(cookie.name()) == legacy_name {
                    legacy = Some(cookie.value().to_owned());
                }
            }
        }
        Found {
            ours: present.then_some(RawCookie { values }),
            legacy,
        }
    }

    /// Verifies the values found: the payload of the first that decodes. `None`: tampered,
    /// truncated, oversized, from an unknown key or malformed.
    pub(crate) fn open(&self, raw: &RawCookie) -> Option<Opened> {
        raw.values.iter().find_map(|value| self.decode(value))
    }

    /// The payload of a cookie value, if a key of the ring verifies it.
    pub(crate) fn decode(&self, value: &str) -> Option<Opened> {
        if self.name.len() + 1 + value.len() > MAX_COOKIE_BYTES {
            return None;
        }
        let (hint, protected) = value.split_once('.')?;
        let (json, key) = match self.mode {
            CookieMode::Private => self.sealer.open(&self.name, protected)?,
            CookieMode::Signed => self.verify(protected)?,
        };
        let payload = Payload::from_json(&json)?;
        // Exactly what `encode` wrote: not `+17…` or `017…`, which would parse the same.
        written_as(hint, payload.touched).then_some(Opened {
            payload,
            newest_key: key == 0,
        })
    }

    /// `text` encrypted with the newest key, bound to `purpose` (never a cookie name of ours:
    /// the result does not verify as a cookie).
    pub(crate) fn seal(&self, purpose: &str, text: &str) -> String {
        self.encrypt(&format!("{}.{purpose}", self.name), text.as_bytes())
    }

    /// What [`seal`](Self::seal) sealed for `purpose`, under any key of the ring.
    pub(crate) fn unseal(&self, purpose: &str, sealed: &str) -> Option<String> {
        let (text, _) = self
            .sealer
            .open(&format!("{}.{purpose}", self.name), sealed)?;
        String::from_utf8(text).ok()
    }

    /// The `Set-Cookie` value carrying `payload`, expiring after `max_age`.
    pub(crate) fn encode(&self, payload: &Payload, max_age: Duration) -> Result<String, TooLarge> {
        let json = payload.to_json();
        let protected = match self.mode {
            CookieMode::Private => self.encrypt(&self.name, json.as_bytes()),
            CookieMode::Signed => self.sign(&json),
        };
        // `name=value` and the attributes, as the cookie crate writes them; numbers written in
        // place.
        let mut header =
            String::with_capacity(self.name.len() + protected.len() + self.attributes.len() + 64);
        let _ = write!(header, "{}={}.{protected}", self.name, payload.touched);
        if header.len() > MAX_COOKIE_BYTES {
            return Err(TooLarge {
                bytes: header.len(),
            });
        }
        let max_age = i64::try_from(max_age.as_secs()).unwrap_or(i64::MAX);
        let _ = write!(header, "{}; Max-Age={max_age}", self.attributes);
        Ok(header)
    }

    /// The `Set-Cookie` value that removes the cookie, with the same attributes.
    pub(crate) fn removal(&self) -> String {
        let mut cookie = self.attributes(String::new());
        cookie.make_removal();
        cookie.to_string()
    }

    fn attributes(&self, value: String) -> Cookie<'static> {
        let mut cookie = Cookie::new(self.name.clone(), value);
        cookie.set_secure(self.secure);
        cookie.set_http_only(self.http_only);
        cookie.set_same_site(match self.same_site {
            SameSite::Strict => cookie::SameSite::Strict,
            SameSite::Lax => cookie::SameSite::Lax,
            SameSite::None => cookie::SameSite::None,
        });
        cookie.set_path(self.path.clone());
        if let Some(domain) = &self.domain {
            cookie.set_domain(domain.clone());
        }
        cookie
    }

    /// AES-256-GCM with the newest key, `name` as associated data. Empty (a value nothing
    /// opens) in the one case it cannot be made: the system's random source failed.
    fn encrypt(&self, name: &str, plain: &[u8]) -> String {
        self.sealer.seal(name, plain).unwrap_or_else(|| {
            tracing::error!("cannot seal a cookie: the system's random source failed");
            String::new()
        })
    }

    /// `mac ‖ base64url(json)`, the MAC taken over `name=base64url(json)`.
    fn sign(&self, json: &str) -> String {
        let bound = format!("{}={}", self.name, URL_SAFE_NO_PAD.encode(json));
        let mut jar = CookieJar::new();
        jar.signed_mut(self.keys.newest())
            .add(Cookie::new(self.name.clone(), bound));
        let signed = jar
            .get(&self.name)
            .map(|c| c.value().to_owned())
            .unwrap_or_default();
        // Drop the `name=` the MAC covers: the browser sends the name anyway.
        let (mac, rest) = signed.split_at(MAC_CHARS.min(signed.len()));
        format!("{mac}{}", &rest[(self.name.len() + 1).min(rest.len())..])
    }

    /// The signed JSON and the index of the key that verifies it.
    fn verify(&self, value: &str) -> Option<(Vec<u8>, usize)> {
        if value.len() < MAC_CHARS || !value.is_char_boundary(MAC_CHARS) {
            return None;
        }
        let (mac, encoded) = value.split_at(MAC_CHARS);
        let bound = format!("{mac}{}={encoded}", self.name);
        let jar = CookieJar::new();
        let (verified, index) = self.keys.all().enumerate().find_map(|(index, key)| {
            jar.signed(key)
                .verify(Cookie::new(self.name.clone(), bound.clone()))
                .map(|cookie| (cookie, index))
        })?;
        let encoded = verified.value().strip_prefix(&format!("{}=", self.name))?;
        Some((URL_SAFE_NO_PAD.decode(encoded).ok()?, index))
    }
}

/// Whether `text` is `n` as `to_string` writes it (compared without writing it anew).
fn written_as(text: &str, n: i64) -> bool {
    use std::io::Write as _;
    let mut buffer = [0u8; 20];
    let mut cursor = std::io::Cursor::new(&mut buffer[..]);
    // An i64 takes at most 20 bytes.
    write!(cursor, "{n}").is_ok() && {
        let len = usize::try_from(cursor.position()).unwrap_or(0);
        text.as_bytes() == &buffer[..len]
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::session::SessionId;

    fn config(mode: CookieMode) -> SessionConfig {
        SessionConfig::new(KeyRing::from_secret("k".repeat(32)).expect("valid"))
            .cookie_mode(mode)
            .host_prefix(false)
    }

    fn payload() -> Payload {
        let id = SessionId::parse(&"A".repeat(43)).expect("a valid id");
        let mut payload = Payload::new(Some(id), 1_700_000_000);
        payload.mirror.insert(
            "user".into(),
            serde_json::json!({"id": "ada", "role": "admin"}),
        );
        payload
    }

    fn value_of(set_cookie: &str) -> String {
        Cookie::parse(set_cookie.to_owned())
            .expect("parses")
            .value()
            .to_owned()
    }

    /// `None`: no cookie of ours; `Some(None)`: one that does not verify.
    fn incoming(codec: &CookieCodec, header: &[u8]) -> Option<Option<Payload>> {
        codec
            .find([header], None)
            .ours
            .map(|raw| codec.open(&raw).map(|opened| opened.payload))
    }

    fn decoded(codec: &CookieCodec, value: &str) -> Option<Payload> {
        codec.decode(value).map(|opened| opened.payload)
    }

    #[test]
    fn an_imported_apps_cookie_is_found_beside_ours() {
        let codec = CookieCodec::new(&config(CookieMode::Private));
        let found = codec.find([&b"a=1; id=old-value; id=second"[..]], Some("id"));
        assert!(found.ours.is_none());
        assert_eq!(found.legacy.as_deref(), Some("old-value"));
        let found = codec.find([&b"session=x; id=old"[..]], None);
        assert!(found.ours.is_some() && found.legacy.is_none());
    }

    #[test]
    fn the_touch_hint_is_in_the_clear_and_must_match() {
        let codec = CookieCodec::new(&config(CookieMode::Private));
        let value = value_of(
            &codec
                .encode(&payload(), Duration::from_secs(60))
                .expect("fits"),
        );
        let raw = codec
            .find([format!("session={value}").as_bytes()], None)
            .ours
            .expect("found");
        assert_eq!(raw.touched_hint(), Some(1_700_000_000));
        let (_, protected) = value.split_once('.').expect("a hint");
        assert_eq!(
            codec.decode(&format!("1700000001.{protected}")),
            None,
            "a forged hint"
        );
        assert_eq!(codec.decode(protected), None, "no hint");
        for same_number in ["+1700000000", "01700000000", " 1700000000"] {
            assert_eq!(
                codec.decode(&format!("{same_number}.{protected}")),
                None,
                "{same_number:?}: tampered, even if it parses the same"
            );
        }
    }

    #[test]
    fn round_trips_in_both_modes() {
        for mode in [CookieMode::Private, CookieMode::Signed] {
            let codec = CookieCodec::new(&config(mode));
            let set_cookie = codec
                .encode(&payload(), Duration::from_secs(60))
                .expect("fits");
            assert_eq!(
                decoded(&codec, &value_of(&set_cookie)),
                Some(payload()),
                "{mode:?}"
            );
        }
    }

    #[test]
    fn private_mode_hides_the_payload_signed_mode_does_not() {
        let private = CookieCodec::new(&config(CookieMode::Private));
        let value = value_of(
            &private
                .encode(&payload(), Duration::from_secs(60))
                .expect("fits"),
        );
        assert!(!value.contains("ada"));
        let signed = CookieCodec::new(&config(CookieMode::Signed));
        let value = value_of(
            &signed
                .encode(&payload(), Duration::from_secs(60))
                .expect("fits"),
        );
        let (_, protected) = value.split_once('.').expect("a hint");
        let readable = URL_SAFE_NO_PAD
            .decode(&protected[MAC_CHARS..])
            .expect("base64url");
        assert!(String::from_utf8_lossy(&readable).contains("ada"));
    }

    #[test]
    fn tampering_other_names_and_unknown_keys_are_refused() {
        for mode in [CookieMode::Private, CookieMode::Signed] {
            let codec = CookieCodec::new(&config(mode));
            let value = value_of(
                &codec
                    .encode(&payload(), Duration::from_secs(60))
                    .expect("fits"),
            );
            // Flip one character anywhere.
            for at in [0, value.len() / 2, value.len() - 1] {
                let mut bytes = value.clone().into_bytes();
                bytes[at] = if bytes[at] == b'A' { b'B' } else { b'A' };
                let tampered = String::from_utf8(bytes).expect("ascii");
                assert_eq!(decoded(&codec, &tampered), None, "{mode:?} at {at}");
            }
            assert_eq!(codec.decode(&value[..value.len() - 3]), None, "truncated");
            assert_eq!(codec.decode("not base64 at all!"), None);
            assert_eq!(codec.decode(&"A".repeat(64 * 1024)), None, "oversized");

            let renamed = CookieCodec::new(&config(mode).cookie_name("other"));
            assert_eq!(renamed.decode(&value), None, "bound to the name ({mode:?})");
            let other_key = CookieCodec::new(
                &SessionConfig::new(KeyRing::from_secret("z".repeat(32)).expect("valid"))
                    .cookie_mode(mode),
            );
            assert_eq!(other_key.decode(&value), None, "wrong key ({mode:?})");
        }
    }

    #[test]
    fn old_keys_still_verify_after_rotation() {
        let old = CookieCodec::new(&config(CookieMode::Private));
        let value = value_of(
            &old.encode(&payload(), Duration::from_secs(60))
                .expect("fits"),
        );
        let rotated =
            SessionConfig::new(KeyRing::new(["n".repeat(32), "k".repeat(32)]).expect("valid"))
                .host_prefix(false);
        let rotated = CookieCodec::new(&rotated);
        let opened = rotated.decode(&value).expect("an older key verifies");
        assert_eq!(opened.payload, payload());
        assert!(!opened.newest_key, "and says so");
        let fresh = value_of(
            &rotated
                .encode(&payload(), Duration::from_secs(60))
                .expect("fits"),
        );
        assert!(rotated.decode(&fresh).expect("verifies").newest_key);
        assert_eq!(old.decode(&fresh), None, "new cookies use the newest key");
    }

    #[test]
    fn at_most_a_few_values_are_tried() {
        let codec = CookieCodec::new(&config(CookieMode::Private));
        let value = value_of(
            &codec
                .encode(&payload(), Duration::from_secs(60))
                .expect("fits"),
        );
        let mut header = "session=garbage; ".repeat(MAX_VALUES);
        header.push_str(&format!("session={value}"));
        assert_eq!(
            incoming(&codec, header.as_bytes()),
            Some(None),
            "the good value comes too late to be tried"
        );
        let header = format!(
            "{}session={value}",
            "session=garbage; ".repeat(MAX_VALUES - 1)
        );
        assert_eq!(incoming(&codec, header.as_bytes()), Some(Some(payload())));
    }

    #[test]
    fn sealed_text_opens_only_for_its_purpose_and_never_as_a_cookie() {
        for mode in [CookieMode::Private, CookieMode::Signed] {
            let codec = CookieCodec::new(&config(mode));
            let sealed = codec.seal("successor", "the id");
            assert!(!sealed.contains("the id"));
            assert_eq!(
                codec.unseal("successor", &sealed).as_deref(),
                Some("the id")
            );
            assert_eq!(codec.unseal("other", &sealed), None);
            assert_eq!(codec.decode(&format!("1.{sealed}")), None);
        }
    }

    #[test]
    fn find_picks_our_cookie_among_others() {
        let codec = CookieCodec::new(&config(CookieMode::Private));
        let value = value_of(
            &codec
                .encode(&payload(), Duration::from_secs(60))
                .expect("fits"),
        );
        let header = format!("theme=dark; session={value}; other=1");
        assert_eq!(incoming(&codec, header.as_bytes()), Some(Some(payload())));
        assert_eq!(incoming(&codec, b"theme=dark"), None);
        assert_eq!(incoming(&codec, b"session=garbage"), Some(None));
        assert_eq!(incoming(&codec, &[0xff, 0xfe]), None);
        // A bad duplicate does not hide a good one.
        let both = format!("session=garbage; session={value}");
        assert_eq!(incoming(&codec, both.as_bytes()), Some(Some(payload())));
    }

    #[test]
    fn set_cookie_carries_the_configured_attributes_and_a_size_limit() {
        let codec = CookieCodec::new(
            &config(CookieMode::Private)
                .host_prefix(true)
                .same_site(SameSite::Strict),
        );
        let header = codec
            .encode(&payload(), Duration::from_secs(60))
            .expect("fits");
        let cookie = Cookie::parse(header.clone()).expect("parses");
        assert_eq!(cookie.name(), "__Host-session");
        assert_eq!(cookie.secure(), Some(true));
        assert_eq!(cookie.http_only(), Some(true));
        assert_eq!(cookie.same_site(), Some(cookie::SameSite::Strict));
        assert_eq!(cookie.path(), Some("/"));
        assert_eq!(cookie.max_age(), Some(time::Duration::seconds(60)));

        let removal = Cookie::parse(codec.removal()).expect("parses");
        assert_eq!(removal.value(), "");
        assert_eq!(removal.max_age(), Some(time::Duration::ZERO));
        assert_eq!(removal.secure(), Some(true));
        assert_eq!(removal.path(), Some("/"));

        let mut big = payload();
        big.data.insert("blob".into(), "x".repeat(5000).into());
        assert!(codec.encode(&big, Duration::from_secs(60)).is_err());
    }

    #[test]
    fn the_hint_must_be_written_as_encode_writes_it() {
        for n in [0, 7, -7, 1_700_000_000, i64::MIN, i64::MAX] {
            assert!(written_as(&n.to_string(), n));
            assert!(!written_as(&format!("+{n}"), n));
            assert!(!written_as(&format!("0{n}"), n));
            assert!(!written_as(&format!("{n}0"), n));
        }
        assert!(!written_as("", 0));
    }

    #[test]
    fn set_cookie_is_written_as_the_cookie_crate_writes_it() {
        let configs = [
            config(CookieMode::Private),
            config(CookieMode::Signed)
                .same_site(SameSite::None)
                .secure(true)
                .domain("example.com")
                .path("/app"),
            config(CookieMode::Private).http_only(false).secure(false),
        ];
        for config in configs {
            let codec = CookieCodec::new(&config);
            let header = codec
                .encode(&payload(), Duration::from_secs(3600))
                .expect("fits");
            let value = Cookie::parse(header.clone())
                .expect("parses")
                .value()
                .to_owned();
            let mut expected = codec.attributes(value);
            expected.set_max_age(time::Duration::hours(1));
            assert_eq!(header, expected.to_string());
        }
    }

    mod properties {
        use proptest::prelude::*;

        use super::*;

        /// A valid cookie value of `mode`, and its codec.
        fn valid(mode: CookieMode) -> (CookieCodec, String) {
            let codec = CookieCodec::new(&config(mode));
            let value = value_of(
                &codec
                    .encode(&payload(), Duration::from_secs(60))
                    .expect("fits"),
            );
            (codec, value)
        }

        fn mode() -> impl Strategy<Value = CookieMode> {
            prop_oneof![Just(CookieMode::Private), Just(CookieMode::Signed)]
        }

        proptest! {
            #![proptest_config(ProptestConfig::with_cases(256))]

            /// Anything a client sends as our cookie: never a panic, never a payload.
            #[test]
            fn random_values_never_decode(mode in mode(), value in any::<String>()) {
                let (codec, _) = valid(mode);
                prop_assert_eq!(codec.decode(&value), None);
                let header = format!("session={value}");
                if let Some(raw) = codec.find([header.as_bytes()], None).ours {
                    let _ = raw.touched_hint();
                    prop_assert_eq!(codec.open(&raw), None);
                }
            }

            /// A valid cookie with one byte changed, inserted or removed, or another clear-text
            /// hint (any number at all): refused, whatever the change.
            #[test]
            fn tampered_values_are_refused(
                mode in mode(),
                at in any::<prop::sample::Index>(),
                byte in 0x21u8..0x7f,
                edit in 0..3u8,
                hint in any::<i64>(),
            ) {
                let (codec, value) = valid(mode);
                let mut bytes = value.clone().into_bytes();
                let at = at.index(bytes.len());
                match edit {
                    0 => bytes[at] = byte,
                    1 => bytes.insert(at, byte),
                    _ => {
                        bytes.remove(at);
                    }
                }
                let tampered = String::from_utf8(bytes).expect("ascii");
                if tampered != value {
                    prop_assert_eq!(codec.decode(&tampered), None, "{}", tampered);
                }
                let (clear, protected) = value.split_once('.').expect("a hint");
                for rehinted in [
                    format!("{hint}.{protected}"),
                    format!("{}{clear}.{protected}", char::from(byte)),
                ] {
                    if rehinted != value {
                        prop_assert_eq!(codec.decode(&rehinted), None, "{}", rehinted);
                    }
                }
            }
        }
    }
}
