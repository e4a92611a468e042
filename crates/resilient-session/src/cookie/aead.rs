//! AES-256-GCM sealing in the cookie crate's private-jar format, with each key's cipher set up
//! once: `base64(nonce ‖ ciphertext ‖ tag)`, a random 96-bit nonce, the name bound as
//! associated data. Cookies sealed by either open with the other, so the format is the one
//! browsers already hold.

use std::fmt;
use std::sync::Arc;

use aes_gcm::aead::{AeadInPlace, KeyInit};
use aes_gcm::{Aes256Gcm, Nonce, Tag};
use base64::Engine;
use base64::engine::general_purpose::STANDARD;

use super::KeyRing;

const NONCE_LEN: usize = 12;
const TAG_LEN: usize = 16;

/// The ring's ciphers, newest first.
#[derive(Clone)]
pub(crate) struct Sealer {
    ciphers: Arc<[Aes256Gcm]>,
}

impl Sealer {
    pub(crate) fn new(keys: &KeyRing) -> Self {
        let ciphers = keys
            .all()
            // A cookie key's encryption half is 32 bytes, the AES-256 key size: none is skipped.
            .filter_map(|key| Aes256Gcm::new_from_slice(key.encryption()).ok())
            .collect();
        Self { ciphers }
    }

    /// `plain` sealed with the newest key, bound to `name`; `None` only if the system's random
    /// source fails.
    pub(crate) fn seal(&self, name: &str, plain: &[u8]) -> Option<String> {
        let mut data = Vec::with_capacity(NONCE_LEN + plain.len() + TAG_LEN);
        data.resize(NONCE_LEN, 0);
        getrandom::fill(&mut data).ok()?;
        data.extend_from_slice(plain);
        let (nonce, text) = data.split_at_mut(NONCE_LEN);
        let tag = self
            .ciphers
            .first()?
            .encrypt_in_place_detached(Nonce::from_slice(nonce), name.as_bytes(), text)
            .ok()?;
        data.extend_from_slice(&tag);
        Some(STANDARD.encode(&data))
    }

    /// What `value` holds and the index of the key (0: the newest) that opens it, if one does.
    pub(crate) fn open(&self, name: &str, value: &str) -> Option<(Vec<u8>, usize)> {
        let data = STANDARD.decode(value).ok()?;
        if data.len() < NONCE_LEN + TAG_LEN {
            return None;
        }
        let (nonce, rest) = data.split_at(NONCE_LEN);
        let (text, tag) = rest.split_at(rest.len() - TAG_LEN);
        self.ciphers.iter().enumerate().find_map(|(index, cipher)| {
            let mut plain = text.to_vec();
            cipher
                .decrypt_in_place_detached(
                    Nonce::from_slice(nonce),
                    name.as_bytes(),
                    &mut plain,
                    Tag::from_slice(tag),
                )
                .ok()
                .map(|()| (plain, index))
        })
    }
}

impl fmt::Debug for Sealer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Sealer")
            .field("keys", &self.ciphers.len())
            .finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use cookie::{Cookie, CookieJar};

    use super::*;

    fn ring() -> KeyRing {
        KeyRing::new(["n".repeat(32), "o".repeat(32)]).expect("valid secrets")
    }

    #[test]
    fn what_the_cookie_crate_seals_opens_here_and_back() {
        let keys = ring();
        let sealer = Sealer::new(&keys);
        let old = KeyRing::from_secret("o".repeat(32)).expect("valid");
        let mut jar = CookieJar::new();
        jar.private_mut(old.newest())
            .add(Cookie::new("session", "{\"n\":1}"));
        let theirs = jar.get("session").expect("added").value().to_owned();
        assert_eq!(
            sealer.open("session", &theirs),
            Some((b"{\"n\":1}".to_vec(), 1))
        );

        let ours = sealer.seal("session", b"{\"n\":2}").expect("random");
        let opened = CookieJar::new()
            .private(keys.newest())
            .decrypt(Cookie::new("session", ours))
            .expect("the cookie crate opens it");
        assert_eq!(opened.value(), "{\"n\":2}");
    }

    #[test]
    fn a_value_does_not_open_under_another_name_or_when_changed() {
        let sealer = Sealer::new(&ring());
        let sealed = sealer.seal("session", b"text").expect("random");
        assert_eq!(sealer.open("other", &sealed), None);
        let mut bytes = STANDARD.decode(&sealed).expect("base64");
        bytes[NONCE_LEN] ^= 1;
        assert_eq!(sealer.open("session", &STANDARD.encode(&bytes)), None);
        assert_eq!(sealer.open("session", "c2hvcnQ="), None);
        assert_eq!(sealer.open("session", "not base64!"), None);
        assert_ne!(sealed, sealer.seal("session", b"text").expect("random"));
    }
}
