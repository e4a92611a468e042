//! What gives way when a cookie does not fit in 4096 bytes, in order.

use crate::cookie::Payload;

/// What a cut left out.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Lost {
    /// Values of keys that are not mirrored, written while Redis was down: lost (the handler is
    /// told, by [`Session::save`](crate::Session::save)).
    OutageWrites,
    /// The mirror. A session whose mirror carries outage writes loses them; one Redis has
    /// loses only its stand-in during an outage (its mirrored keys are then unknown).
    Mirror { with_outage_writes: bool },
}

/// Cuts `payload` once, saying what it lost: the values written while Redis was down first,
/// then the mirror. The removals made meanwhile are never cut: dropping one would bring the
/// removed value back when Redis returns. `None` when nothing is left to cut but the identity
/// and those removals: then the caller fails closed.
///
/// Either way the payload says so (`partial`, `incomplete`): a key it no longer carries is then
/// unknown while it stands in for Redis, not absent.
pub(crate) fn cut(payload: &mut Payload) -> Option<Lost> {
    if !payload.data.is_empty() {
        payload.data.clear();
        payload.partial = true;
        return Some(Lost::OutageWrites);
    }
    if !payload.mirror.is_empty() {
        payload.mirror.clear();
        payload.incomplete = true;
        let with_outage_writes = !payload.written.is_empty();
        payload.written.clear();
        return Some(Lost::Mirror { with_outage_writes });
    }
    None
}

impl Lost {
    /// Something a handler was told it had written is gone.
    pub(crate) fn loses_writes(self) -> bool {
        matches!(
            self,
            Lost::OutageWrites
                | Lost::Mirror {
                    with_outage_writes: true
                }
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn outage_writes_go_first_then_the_mirror_and_never_the_removals() {
        let mut payload = Payload::new(None, 1);
        payload.mirror.insert("user".into(), "ada".into());
        payload.data.insert("notes".into(), "n".into());
        payload.removed.push("admin".into());
        payload.written.push("user".into());

        let lost = cut(&mut payload).expect("the data goes first");
        assert_eq!(lost, Lost::OutageWrites);
        assert!(lost.loses_writes());
        assert!(payload.data.is_empty() && !payload.mirror.is_empty());
        assert!(
            payload.partial && !payload.incomplete,
            "what was cut is unknown, not absent"
        );

        let lost = cut(&mut payload).expect("then the mirror");
        assert_eq!(
            lost,
            Lost::Mirror {
                with_outage_writes: true
            }
        );
        assert!(payload.mirror.is_empty() && payload.incomplete);
        assert_eq!(payload.removed, ["admin"], "removals are kept");

        assert_eq!(cut(&mut payload), None);
    }

    #[test]
    fn a_mirror_redis_has_is_only_a_stand_in() {
        let mut payload = Payload::new(None, 1);
        payload.mirror.insert("profile".into(), "p".into());
        let lost = cut(&mut payload).expect("the mirror goes");
        assert!(!lost.loses_writes());
    }
}
