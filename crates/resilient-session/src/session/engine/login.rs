//! A login in a Redis Cluster: the old session is in another slot, so the save script cannot
//! copy it. It is read first ([`over_old_session`] decides what the login then writes), and
//! retired after.

use std::collections::BTreeSet;

use serde_json::Value;

use super::Stamp;
use super::save::Write;
use super::stamp::STAMP_FIELD;

/// What a login writes, as the save script would have: the old session's `fields` as they are
/// now (its stamp and other reserved fields aside), the login's changes over them, and the view
/// it merged at load only if the old session is still at the stamp it was merged against.
/// `missed`: the old session took writes since the login loaded it.
pub(crate) fn over_old_session(write: &Write, fields: Vec<(String, String)>) -> (Write, bool) {
    let now = fields
        .iter()
        .find(|(field, _)| field == STAMP_FIELD)
        .and_then(|(_, value)| Stamp::parse(value.as_bytes()))
        .unwrap_or_default();
    let mut copied = write.clone();
    copied.guarded = None;
    copied.loaded = None;
    if let Some(guarded) = write.guarded.as_ref().filter(|g| g.expected == now) {
        copied.set.extend(guarded.set.iter().cloned());
        copied.delete.extend(guarded.delete.iter().cloned());
    }
    let ours: BTreeSet<String> = copied
        .set
        .iter()
        .map(|(field, _)| field.clone())
        .chain(copied.delete.iter().cloned())
        .collect();
    for (field, value) in fields {
        if !field.starts_with('\0') && !ours.contains(&field) {
            copied.set.push((field, value));
        }
    }
    let missed = write.loaded.is_some_and(|loaded| loaded != now);
    (copied, missed)
}

/// The mirrored values of the session `write` makes: what a save answers when it had missed
/// writes.
pub(crate) fn mirror_after(
    write: &Write,
    mirrored: &BTreeSet<String>,
) -> Vec<(String, Option<Value>)> {
    mirrored
        .iter()
        .map(|key| {
            let value = write
                .set
                .iter()
                .find(|(field, _)| field == key)
                .and_then(|(_, json)| serde_json::from_str(json).ok());
            (key.clone(), value)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::session::SessionId;
    use crate::session::engine::save::Guarded;

    fn login(loaded: Stamp, guarded: Option<Guarded>) -> Write {
        Write {
            id: SessionId::generate().expect("random"),
            create: true,
            set: vec![("user".into(), "\"ada\"".into())],
            delete: vec!["gone".into()],
            guarded,
            floor: Stamp::default(),
            stamp: None,
            loaded: Some(loaded),
            ttl: 60,
            created: 1,
            predecessor: None,
            supersedes: None,
        }
    }

    fn old_session(stamp: Stamp) -> Vec<(String, String)> {
        vec![
            (STAMP_FIELD.into(), stamp.to_string()),
            ("user".into(), "\"guest\"".into()),
            ("gone".into(), "1".into()),
            ("role".into(), "\"auditor\"".into()),
        ]
    }

    fn value<'a>(write: &'a Write, key: &str) -> Option<&'a str> {
        write
            .set
            .iter()
            .find(|(field, _)| field == key)
            .map(|(_, v)| v.as_str())
    }

    #[test]
    fn the_old_session_is_copied_under_the_logins_changes() {
        let (write, missed) = over_old_session(
            &login(Stamp::new(3, 0), None),
            old_session(Stamp::new(3, 0)),
        );
        assert!(!missed);
        assert_eq!(value(&write, "user"), Some("\"ada\""), "the login's");
        assert_eq!(value(&write, "role"), Some("\"auditor\""), "copied");
        assert_eq!(value(&write, "gone"), None, "removed by the login");
        assert_eq!(value(&write, STAMP_FIELD), None, "a history of its own");
    }

    #[test]
    fn a_merged_view_lands_only_on_the_state_it_was_merged_against() {
        let view = || Guarded {
            expected: Stamp::new(3, 0),
            view: Stamp::new(3, 0),
            set: vec![("role".into(), "\"user\"".into())],
            delete: Vec::new(),
        };
        let (write, missed) = over_old_session(
            &login(Stamp::new(3, 0), Some(view())),
            old_session(Stamp::new(3, 0)),
        );
        assert!(!missed);
        assert_eq!(value(&write, "role"), Some("\"user\""));

        // Another request wrote after the login's load: its role stands, and the login's cookie
        // takes the mirror as the new session has it.
        let (write, missed) = over_old_session(
            &login(Stamp::new(3, 0), Some(view())),
            old_session(Stamp::new(4, 0)),
        );
        assert!(missed);
        assert_eq!(value(&write, "role"), Some("\"auditor\""));
        let mirrored: BTreeSet<String> = ["role".to_owned(), "absent".to_owned()].into();
        assert_eq!(
            mirror_after(&write, &mirrored),
            vec![
                ("absent".to_owned(), None),
                ("role".to_owned(), Some(Value::from("auditor")))
            ]
        );
    }
}
