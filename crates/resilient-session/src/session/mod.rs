//! The session engine.
//!
//! [`SessionEngine`] creates, loads, touches, saves and deletes sessions in Redis, with the cookie
//! standing in while Redis is unavailable; [`Session`] is the per-request handle handlers use.
//! A request goes through [`adapter::open`](crate::adapter::open) (parse the cookie, no I/O), the
//! handler, then [`adapter::finish`](crate::adapter::finish) (write, touch, the headers to send). The tower
//! [`SessionLayer`](crate::SessionLayer) and the actix middleware both drive exactly these two
//! calls.
//!
//! The rules (who wins, cookie or Redis; what a request writes) are decided apart from I/O, in
//! the engine's pure core; `load.rs` and `save.rs` run its plans against Redis.
//!
//! Redis round trips per request: not read and no touch due, 0; read, 1 (`HGETALL`, with
//! `EXPIRE` in the same pipeline when a touch is due); read and written, 2; logout, 1 (2 for a
//! session marked with [`Session::set_owner`]: its owner's index loses it). A new
//! visitor whose session nobody writes to costs nothing and gets no cookie.

mod backend;
mod engine;
mod handle;
mod id;
mod import;
mod issue;
mod load;
mod logout;
mod owners;
mod replay;
mod response;
mod revocations;
mod save;
mod scripts;
mod store;
mod tombstone;

pub(crate) use engine::Stamp;
pub use handle::{Session, Source};
pub(crate) use id::SessionId;
pub use import::Import;
pub use owners::{OwnedSession, Revoked};
pub use response::ResponseHeaders;
pub(crate) use revocations::DEFAULT_CAPACITY as DEFAULT_LOGOUT_QUEUE;
pub use save::FinishLater;
pub use store::SessionEngine;
