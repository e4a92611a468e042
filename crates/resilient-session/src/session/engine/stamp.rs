//! [`Stamp`]: where a session state stands in the session's history, so that an older state
//! never overwrites a newer one.

use std::fmt;

/// The hash field that holds a session's stamp. Session keys starting with NUL are reserved,
/// so no app key collides with it.
pub(crate) const STAMP_FIELD: &str = "\u{0}v";

/// The hash field that holds when the session was created (unix seconds), for its absolute
/// lifetime: what the cookie says of it is not trusted alone.
pub(crate) const CREATED_FIELD: &str = "\u{0}c";

/// Bits of a stamp that count writes taken in while Redis was unavailable.
const OUTAGE_BITS: u32 = 20;
const OUTAGE_MASK: u64 = (1 << OUTAGE_BITS) - 1;

/// A point in a session's history: how many writes Redis made (every save adds one,
/// atomically, in the save script), then how many saves a cookie took in while Redis was
/// unavailable since it last saw that many.
///
/// Stamps order as (writes, outage writes). A cookie whose stamp is greater than the hash's
/// carries a state Redis has not seen (outage writes, or writes a failed-over Redis lost): what
/// it wrote while Redis was down wins, and its mirror too when Redis is behind the state the
/// mirror is from. Equal, it holds what Redis holds. Smaller, Redis has moved on since (another
/// request, a newer copy of the cookie): Redis wins and what the cookie carried is dropped,
/// never written over newer values. A session re-seeded or promoted from a cookie starts at
/// that cookie's stamp, so that copies of the same cookie compare against it the same way.
///
/// It is one integer, `writes << 20 | outage writes`, so that the save script counts a write
/// with one `HINCRBY` of [`Stamp::WRITE`] (the outage part is then carried along, which keeps
/// the order: one more write is newer than any outage writes before it).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Default, Hash)]
pub(crate) struct Stamp(u64);

impl Stamp {
    /// One write, as the save script counts it.
    pub(crate) const WRITE: u64 = 1 << OUTAGE_BITS;

    pub(crate) const fn new(writes: u64, outage_writes: u64) -> Self {
        let outage = if outage_writes > OUTAGE_MASK {
            OUTAGE_MASK
        } else {
            outage_writes
        };
        Self(writes.saturating_mul(Self::WRITE) | outage)
    }

    /// The integer the hash and the cookie hold.
    pub(crate) const fn from_bits(bits: u64) -> Self {
        Self(bits)
    }

    pub(crate) fn bits(self) -> u64 {
        self.0
    }

    pub(crate) fn writes(self) -> u64 {
        self.0 >> OUTAGE_BITS
    }

    pub(crate) fn outage_writes(self) -> u64 {
        self.0 & OUTAGE_MASK
    }

    /// The stamp after one more write in Redis, as the save script counts it.
    pub(crate) fn after_write(self) -> Self {
        Self(self.0.saturating_add(Self::WRITE))
    }

    /// The stamp after one more save into the cookie (it stops counting at a million).
    pub(crate) fn after_outage_write(self) -> Self {
        Self::new(self.writes(), self.outage_writes() + 1)
    }

    /// Parses the hash field; `None` for anything else (then the hash is corrupt).
    pub(crate) fn parse(field: &[u8]) -> Option<Self> {
        std::str::from_utf8(field).ok()?.parse().ok().map(Self)
    }
}

/// The hash field's value.
impl fmt::Display for Stamp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_what_it_writes() {
        for stamp in [Stamp::new(0, 0), Stamp::new(7, 0), Stamp::new(7, 3)] {
            assert_eq!(Stamp::parse(stamp.to_string().as_bytes()), Some(stamp));
            assert_eq!(Stamp::from_bits(stamp.bits()), stamp);
        }
        assert_eq!(Stamp::new(7, 3).writes(), 7);
        assert_eq!(Stamp::new(7, 3).outage_writes(), 3);
        for bad in ["", "x", "-1", "1.5", "1 "] {
            assert_eq!(Stamp::parse(bad.as_bytes()), None, "{bad:?}");
        }
    }

    #[test]
    fn order_is_writes_then_outage_writes() {
        let rows = [
            (Stamp::new(5, 0), Stamp::new(5, 1)),
            (Stamp::new(5, 9), Stamp::new(6, 0)),
            (Stamp::new(0, 0), Stamp::new(0, 1)),
            // What the script's HINCRBY makes of a re-seeded stamp: still newer.
            (
                Stamp::new(5, 9),
                Stamp::from_bits(Stamp::new(5, 9).bits() + Stamp::WRITE),
            ),
        ];
        for (older, newer) in rows {
            assert!(older < newer, "{older} < {newer}");
        }
        assert_eq!(Stamp::new(5, 1).after_outage_write(), Stamp::new(5, 2));
        let full = Stamp::new(5, u64::MAX);
        assert_eq!(full.after_outage_write(), full, "saturates");
        assert!(full < Stamp::new(6, 0));
    }
}
