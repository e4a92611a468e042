//! The scripts (`save.lua`, `retire.lua`, `revoke.lua`, `own.lua`, `index.lua`), sent by SHA-1, and how their answers
//! read.

use std::collections::BTreeSet;
use std::sync::OnceLock;

use bb8_redis::redis::{self, Value as RedisValue};

use super::engine::Stamp;
use super::engine::answer::Written;
use super::engine::save::Write;
use super::tombstone::tombstone_of;

/// A script, with its SHA-1.
pub(crate) struct Script {
    text: &'static str,
    sha1: OnceLock<String>,
}

impl Script {
    const fn new(text: &'static str) -> Self {
        Self {
            text,
            sha1: OnceLock::new(),
        }
    }

    fn sha1(&self) -> &str {
        self.sha1
            .get_or_init(|| redis::Script::new(self.text).get_hash().to_owned())
    }

    /// `EVALSHA` (or `EVAL` with the text) with `keys`; the arguments follow.
    pub(crate) fn command(&self, by_sha: bool, keys: &[&str]) -> redis::Cmd {
        // Room for a save's keys, arguments and a few fields: built without regrowing.
        let mut cmd = redis::Cmd::with_capacity(48, 768);
        if by_sha {
            cmd.arg("EVALSHA").arg(self.sha1());
        } else {
            cmd.arg("EVAL").arg(self.text);
        }
        cmd.arg(keys.len()).arg(keys);
        cmd
    }
}

pub(crate) static SAVE: Script = Script::new(include_str!("save.lua"));
pub(crate) static RETIRE: Script = Script::new(include_str!("retire.lua"));
pub(crate) static REVOKE: Script = Script::new(include_str!("revoke.lua"));
pub(crate) static OWN: Script = Script::new(include_str!("own.lua"));
pub(crate) static INDEX: Script = Script::new(include_str!("index.lua"));

/// The script's arguments after the keys (see `scripts/save.lua`). `mirrored`: the mirrored
/// keys, whose values an update answers when it finds writes it had not seen.
pub(crate) fn save_arguments(
    cmd: &mut redis::Cmd,
    write: &Write,
    predecessor: (&str, &str, u64),
    mirrored: &BTreeSet<String>,
) {
    let (kind, tombstone, secs) = predecessor;
    let (guarded_set, guarded_delete): (&[(String, String)], &[String]) = match &write.guarded {
        Some(guarded) => (&guarded.set, &guarded.delete),
        None => (&[], &[]),
    };
    let guard = write.guarded.as_ref();
    let names: Vec<&String> = match write.loaded {
        Some(_) => mirrored.iter().collect(),
        None => Vec::new(),
    };
    cmd.arg(write.ttl)
        .arg(if write.create { "create" } else { "update" });
    stamp_arg(cmd, guard.map(|g| g.expected));
    cmd.arg(write.floor.bits());
    stamp_arg(cmd, write.stamp);
    cmd.arg(kind)
        .arg(tombstone)
        .arg(secs)
        .arg(write.delete.len())
        .arg(write.set.len())
        .arg(guarded_delete.len())
        .arg(guarded_set.len())
        .arg(Stamp::WRITE)
        .arg(guard.map(|g| g.view.bits()).unwrap_or_default());
    stamp_arg(cmd, write.loaded);
    cmd.arg(names.len()).arg(write.created);
    cmd.arg(guarded_delete);
    for (field, value) in guarded_set {
        cmd.arg(field).arg(value);
    }
    cmd.arg(&write.delete);
    for (field, value) in &write.set {
        cmd.arg(field).arg(value);
    }
    cmd.arg(names);
}

/// A stamp as the script reads it, `''` for none.
fn stamp_arg(cmd: &mut redis::Cmd, stamp: Option<Stamp>) {
    match stamp {
        Some(stamp) => cmd.arg(stamp.bits()),
        None => cmd.arg(""),
    };
}

/// The save script's answer; `mirrored`: the names the script was given, in that order.
pub(crate) fn written(answer: &RedisValue, mirrored: &BTreeSet<String>) -> Written {
    let RedisValue::Array(parts) = answer else {
        return Written::Failed;
    };
    let (Some(status), Some(value)) = (parts.first().and_then(text), parts.get(1).and_then(text))
    else {
        return Written::Failed;
    };
    match status.as_str() {
        "ok" => Stamp::parse(value.as_bytes()).map_or(Written::Failed, Written::Yes),
        "moved-on" => {
            let Some(stamp) = Stamp::parse(value.as_bytes()) else {
                return Written::Failed;
            };
            let mirror = mirrored
                .iter()
                .zip(parts.iter().skip(2))
                .map(|(key, value)| {
                    let value = text(value).and_then(|json| serde_json::from_str(&json).ok());
                    (key.clone(), value)
                })
                .collect();
            Written::MovedOn { stamp, mirror }
        }
        "gone" => Written::Gone,
        "taken" => Written::Taken(tombstone_of(Some(&value), |_| None)),
        _ => Written::Failed,
    }
}

fn text(value: &RedisValue) -> Option<String> {
    match value {
        RedisValue::BulkString(bytes) => String::from_utf8(bytes.clone()).ok(),
        RedisValue::SimpleString(text) => Some(text.clone()),
        RedisValue::Int(n) => Some(n.to_string()),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::session::engine::answer::Tombstone;

    #[test]
    fn script_answers() {
        let bulk = |s: &str| RedisValue::BulkString(s.as_bytes().to_vec());
        let none = BTreeSet::new();
        let stamp = Stamp::new(7, 2);
        let answer = |parts: Vec<RedisValue>| written(&RedisValue::Array(parts), &none);
        assert_eq!(
            answer(vec![bulk("ok"), bulk(&stamp.to_string())]),
            Written::Yes(stamp)
        );
        assert_eq!(
            answer(vec![bulk("ok"), RedisValue::Int(stamp.bits() as i64)]),
            Written::Yes(stamp)
        );
        assert_eq!(answer(vec![bulk("gone"), bulk("")]), Written::Gone);
        assert_eq!(
            answer(vec![bulk("taken"), bulk("revoked")]),
            Written::Taken(Tombstone::Revoked { successor: None })
        );
        assert_eq!(written(&RedisValue::Int(1), &none), Written::Failed);
        assert_eq!(answer(vec![bulk("ok"), bulk("x")]), Written::Failed);

        // Written over writes it had not seen: the mirrored keys as they are, in order.
        let mirrored: BTreeSet<String> = ["role".to_owned(), "user".to_owned()].into();
        let moved_on = written(
            &RedisValue::Array(vec![
                bulk("moved-on"),
                bulk(&stamp.to_string()),
                bulk("\"user\""),
                RedisValue::Nil,
            ]),
            &mirrored,
        );
        assert_eq!(
            moved_on,
            Written::MovedOn {
                stamp,
                mirror: vec![
                    ("role".to_owned(), Some(serde_json::json!("user"))),
                    ("user".to_owned(), None),
                ],
            }
        );
    }
}
