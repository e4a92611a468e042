//! The session cookie: its payload, how it is encrypted or signed, and the key ring.
//!
//! One cookie (default name `session`) carries a small versioned payload: the Redis session id,
//! when the session was created and last confirmed by Redis, the Redis data epoch, the mirrored
//! values, and what was written while Redis was down. It is encrypted and authenticated with the
//! newest key of a [`KeyRing`] and accepted under any of its keys. A cookie that does not verify,
//! parse or fit is treated as absent: the request gets a fresh session, never an error.
//!
//! ```
//! use resilient_session::{KeyRing, SessionConfig};
//!
//! let keys = KeyRing::new(["current-secret-at-least-32-bytes-long", "previous-secret-at-least-32-bytes!!"])?;
//! let config = SessionConfig::new(keys).host_prefix(true); // cookie `__Host-session`
//! # Ok::<(), resilient_session::ConfigError>(())
//! ```

mod aead;
mod codec;
mod keyring;
mod payload;

pub(crate) use codec::{CookieCodec, RawCookie};
pub use keyring::{KeyRing, MIN_SECRET_BYTES};
pub(crate) use payload::Payload;
