//! [`KeyRing`]: the secrets that encrypt or sign session cookies, newest first.

use std::fmt;
use std::sync::Arc;

use cookie::Key;

use crate::ConfigError;

/// Shortest secret accepted, in bytes.
pub const MIN_SECRET_BYTES: usize = 32;

/// The keys that protect session cookies: cookies are encrypted (or signed) with the newest key
/// and accepted when any key verifies them, so a secret rotates without logging anyone out.
///
/// Each secret must be at least 32 bytes; a shorter one is refused here, at start-up, never per
/// request. Keys are derived from the secrets with HKDF.
///
/// ```
/// use resilient_session::KeyRing;
///
/// let current = "a-new-secret-of-at-least-32-bytes!!";
/// let previous = "the-old-secret-still-accepted-for-now";
/// let keys = KeyRing::new([current, previous])?;
/// assert_eq!(keys.len(), 2);
/// assert!(KeyRing::from_secret("too short").is_err());
/// # Ok::<(), resilient_session::ConfigError>(())
/// ```
#[derive(Clone)]
pub struct KeyRing {
    keys: Arc<[Key]>,
}

impl KeyRing {
    /// A ring from secrets, newest first.
    ///
    /// # Errors
    ///
    /// [`ConfigError::Invalid`] for a secret shorter than [`MIN_SECRET_BYTES`] (the message says
    /// which, by position, never the secret), or for no secret at all.
    pub fn new<I, S>(secrets: I) -> Result<Self, ConfigError>
    where
        I: IntoIterator<Item = S>,
        S: AsRef<[u8]>,
    {
        let keys = secrets
            .into_iter()
            .enumerate()
            .map(|(index, secret)| {
                let secret = secret.as_ref();
                if secret.len() < MIN_SECRET_BYTES {
                    return Err(ConfigError::Invalid(format!(
                        "session secret #{} is {} bytes long; it must be at least {MIN_SECRET_BYTES} \
                         bytes (generate one with `openssl rand -base64 48`)",
                        index + 1,
                        secret.len()
                    )));
                }
                Ok(Key::derive_from(secret))
            })
            .collect::<Result<Vec<_>, _>>()?;
        if keys.is_empty() {
            return Err(ConfigError::Invalid(
                "a key ring needs at least one secret".into(),
            ));
        }
        Ok(Self { keys: keys.into() })
    }

    /// A ring with a single secret.
    ///
    /// # Errors
    ///
    /// [`ConfigError::Invalid`] for a secret shorter than [`MIN_SECRET_BYTES`].
    pub fn from_secret(secret: impl AsRef<[u8]>) -> Result<Self, ConfigError> {
        Self::new([secret])
    }

    /// A ring with one random key. Cookies it issues stop working when the process exits: for
    /// development and tests only.
    ///
    /// # Errors
    ///
    /// [`ConfigError::Randomness`] when the operating system's random number generator fails.
    pub fn generate() -> Result<Self, ConfigError> {
        let mut secret = [0u8; 64];
        getrandom::fill(&mut secret).map_err(|err| ConfigError::Randomness {
            source: std::io::Error::other(err),
        })?;
        Self::from_secret(secret)
    }

    /// How many keys the ring holds.
    pub fn len(&self) -> usize {
        self.keys.len()
    }

    /// Always `false`: a ring has at least one key.
    pub fn is_empty(&self) -> bool {
        self.keys.is_empty()
    }

    /// The key new cookies are protected with.
    pub(crate) fn newest(&self) -> &Key {
        &self.keys[0]
    }

    /// Every key, newest first.
    pub(crate) fn all(&self) -> impl Iterator<Item = &Key> {
        self.keys.iter()
    }
}

impl fmt::Debug for KeyRing {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("KeyRing")
            .field("keys", &self.keys.len())
            .finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn short_secrets_are_refused_with_a_reason() {
        let err = KeyRing::new(["x".repeat(32), "y".repeat(31)]).expect_err("second too short");
        let text = err.to_string();
        assert!(text.contains("#2") && text.contains("31 bytes"), "{text}");
        assert!(KeyRing::new(Vec::<String>::new()).is_err());
    }

    #[test]
    fn debug_shows_no_key_material() {
        let ring = KeyRing::from_secret("s".repeat(40)).expect("valid");
        assert_eq!(format!("{ring:?}"), "KeyRing { keys: 1, .. }");
        assert_eq!(ring.len(), 1);
        assert!(!ring.is_empty());
        assert_eq!(KeyRing::generate().expect("random").len(), 1);
    }
}
