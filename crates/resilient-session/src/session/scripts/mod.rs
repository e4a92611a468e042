//! The save scripts (`save.lua`, `retire.lua`), sent by SHA-1, and how their answers read.

use std::sync::OnceLock;

use bb8_redis::redis::{self, Value as RedisValue};

use super::engine::Stamp;
use super::engine::answer::Written;
use super::engine::save::Write;
use super::tombstone::tombstone_of;

/// The save script and the second half of a login in a cluster, with their SHA-1s.
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
        let mut cmd = if by_sha {
            let mut cmd = redis::cmd("EVALSHA");
            cmd.arg(self.sha1());
            cmd
        } else {
            let mut cmd = redis::cmd("EVAL");
            cmd.arg(self.text);
            cmd
        };
        cmd.arg(keys.len()).arg(keys);
        cmd
    }
}

pub(crate) static SAVE: Script = Script::new(include_str!("save.lua"));
pub(crate) static RETIRE: Script = Script::new(include_str!("retire.lua"));

/// The script's arguments after the keys (see `scripts/save.lua`).
pub(crate) fn save_arguments(
    cmd: &mut redis::Cmd,
    write: &Write,
    kind: &str,
    tombstone: &str,
    secs: u64,
) {
    let (guarded_set, guarded_delete): (&[(String, String)], &[String]) = match &write.guarded {
        Some(guarded) => (&guarded.set, &guarded.delete),
        None => (&[], &[]),
    };
    cmd.arg(write.ttl)
        .arg(if write.create { "create" } else { "update" })
        .arg(
            write
                .guarded
                .as_ref()
                .map(|g| g.expected.to_string())
                .unwrap_or_default(),
        )
        .arg(write.floor.bits())
        .arg(write.stamp.map(|s| s.to_string()).unwrap_or_default())
        .arg(kind)
        .arg(tombstone)
        .arg(secs)
        .arg(write.delete.len())
        .arg(write.set.len())
        .arg(guarded_delete.len())
        .arg(guarded_set.len())
        .arg(Stamp::WRITE)
        .arg(
            write
                .guarded
                .as_ref()
                .map(|g| g.view.bits())
                .unwrap_or_default(),
        );
    cmd.arg(guarded_delete);
    for (field, value) in guarded_set {
        cmd.arg(field).arg(value);
    }
    cmd.arg(&write.delete);
    for (field, value) in &write.set {
        cmd.arg(field).arg(value);
    }
}

/// The save script's answer.
pub(crate) fn written(answer: &RedisValue) -> Written {
    let RedisValue::Array(parts) = answer else {
        return Written::Failed;
    };
    let text = |value: &RedisValue| match value {
        RedisValue::BulkString(bytes) => String::from_utf8(bytes.clone()).ok(),
        RedisValue::SimpleString(text) => Some(text.clone()),
        RedisValue::Int(n) => Some(n.to_string()),
        _ => None,
    };
    let (Some(status), Some(value)) = (parts.first().and_then(text), parts.get(1).and_then(text))
    else {
        return Written::Failed;
    };
    match status.as_str() {
        "ok" => Stamp::parse(value.as_bytes()).map_or(Written::Failed, Written::Yes),
        "gone" => Written::Gone,
        "taken" => Written::Taken(tombstone_of(Some(&value), |_| None)),
        _ => Written::Failed,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::session::engine::answer::Tombstone;

    #[test]
    fn script_answers() {
        let bulk = |s: &str| RedisValue::BulkString(s.as_bytes().to_vec());
        let stamp = Stamp::new(7, 2);
        assert_eq!(
            written(&RedisValue::Array(vec![
                bulk("ok"),
                bulk(&stamp.to_string())
            ])),
            Written::Yes(stamp)
        );
        assert_eq!(
            written(&RedisValue::Array(vec![
                bulk("ok"),
                RedisValue::Int(stamp.bits() as i64)
            ])),
            Written::Yes(stamp)
        );
        assert_eq!(
            written(&RedisValue::Array(vec![bulk("gone"), bulk("")])),
            Written::Gone
        );
        assert_eq!(
            written(&RedisValue::Array(vec![bulk("taken"), bulk("revoked")])),
            Written::Taken(Tombstone::Revoked)
        );
        assert_eq!(written(&RedisValue::Int(1)), Written::Failed);
        assert_eq!(
            written(&RedisValue::Array(vec![bulk("ok"), bulk("x")])),
            Written::Failed
        );
    }
}
