#!/usr/bin/env python3
"""Where a server's CPU goes, from `perf script` output of a profile with call graphs.

Each sample is put in one category by the frames on its stack: the session layer (ours or a
peer's; its cookie cryptography and metrics apart), the Redis client (commands built, sent,
parsed, the connection's driver), the HTTP framework, and the kernel (socket I/O, waits and
wake-ups, scheduling). The Redis client's share is split further.

    perf record -F 999 --call-graph dwarf,16384 -p <server pid> -o perf.data -- sleep 4
    perf script -i perf.data > perf.txt
    python3 benches/profile/categorize.py perf.txt [more.txt ...]
"""

import collections
import sys


def samples(path):
    stack = []
    for line in open(path, errors="replace"):
        line = line.rstrip("\n")
        if not line.strip():
            if stack:
                yield stack
            stack = []
        elif line[:1] in "\t ":
            parts = line.strip().split(" ", 1)
            if len(parts) == 2:
                stack.append(parts[1])
    if stack:
        yield stack


REDIS = ("redis::", "fred::", "RedisManager::query", "bb8", "ValueCodec", "multiplexed")
CRYPTO = ("CookieCodec", "cookie::secure", "aes_gcm", "Sealer", "PrivateJar", "SignedJar")


def category(stack):
    frames = " ".join(stack)
    redis = any(k in frames for k in REDIS)
    session = "resilient_session" in frames or "actix_session" in frames or "tower_sessions" in frames
    if session and not redis:
        if any(k in frames for k in CRYPTO):
            return "session: cookie cryptography and codec"
        if "metrics" in frames:
            return "session: metrics"
        return "session: the rest of the layer"
    if redis:
        return "Redis client"
    if "entry_SYSCALL" in frames or "do_syscall" in frames:
        if "epoll" in frames or "futex" in frames:
            return "kernel: waits and wake-ups"
        return "kernel: socket I/O"
    if "schedule" in frames:
        return "kernel: scheduling"
    return "HTTP framework and runtime"


def redis_part(stack):
    frames = " ".join(stack)
    for keys, name in [
        (("combine::", "ValueCodec", "parser"), "parse replies"),
        (("write_arg", "write_packed", "pack_command", "Script::command", "save_arguments"), "build commands"),
        (("from_redis_value", "FromRedisValue"), "convert replies"),
        (("PipelineSink", "poll_write", "poll_flush"), "driver: socket writes"),
        (("mpsc", "wake", "oneshot"), "channels and wake-ups"),
        (("Timeout",), "timeouts"),
    ]:
        if any(k in frames for k in keys):
            return name
    return "other"


for path in sys.argv[1:]:
    all_samples = list(samples(path))
    total = len(all_samples) or 1
    by_category = collections.Counter(category(s) for s in all_samples)
    by_redis = collections.Counter(redis_part(s) for s in all_samples if category(s) == "Redis client")
    print(f"{path}: {total} samples")
    for name, n in by_category.most_common():
        print(f"  {100 * n / total:5.1f}%  {name}")
    for name, n in by_redis.most_common():
        print(f"  {100 * n / total:5.1f}%    Redis client: {name}")
