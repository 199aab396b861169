//! The Redis command table: every top-level command of Redis 7.0 with its arity and the
//! position of its first key, as `COMMAND` reports them
//! (<https://redis.io/docs/latest/commands/command/>). Generated from a redis-server 7.0.15
//! `COMMAND` reply; module commands (`FT.SEARCH`, `JSON.SET`) are not known and score lower.

/// One command: its upper-case name, its arity (positive: exactly that many words, name
/// included; negative: at least that many) and the index of its first key (0: none).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Command {
    pub(crate) name: &'static [u8],
    pub(crate) arity: i8,
    pub(crate) first_key: u8,
}

/// `first_key` of a container command (`CLIENT`, `CONFIG`, ...): its second word is a
/// subcommand.
pub(crate) const SUB: u8 = u8::MAX;

/// The longest known command name (`GEORADIUSBYMEMBER_RO`).
pub(crate) const MAX_KNOWN_NAME_LEN: usize = 20;

const fn c(name: &'static [u8], arity: i8, first_key: u8) -> Command {
    Command {
        name,
        arity,
        first_key,
    }
}

impl Command {
    /// Does a command of `words` words (name included) fit this command's arity?
    pub(crate) fn arity_ok(&self, words: usize) -> bool {
        let need = usize::from(self.arity.unsigned_abs());
        if self.arity >= 0 {
            words == need
        } else {
            words >= need
        }
    }

    /// A container whose second word names a subcommand (`CONFIG GET`).
    pub(crate) const fn has_subcommand(&self) -> bool {
        self.first_key == SUB
    }

    /// Pub/sub commands: their first argument is a channel (or pattern), kept as the resource.
    pub(crate) fn is_pubsub(&self) -> bool {
        matches!(
            self.name,
            b"PUBLISH"
                | b"SPUBLISH"
                | b"SUBSCRIBE"
                | b"SSUBSCRIBE"
                | b"PSUBSCRIBE"
                | b"UNSUBSCRIBE"
                | b"SUNSUBSCRIBE"
                | b"PUNSUBSCRIBE"
        )
    }

    /// Commands after which a RESP2 server pushes `message`/`subscribe` arrays.
    pub(crate) fn enters_pubsub(&self) -> bool {
        matches!(self.name, b"SUBSCRIBE" | b"SSUBSCRIBE" | b"PSUBSCRIBE")
    }

    /// Subscribe-family commands, answered by one confirmation per channel (RESP3: pushes),
    /// not by one reply: never paired with a response.
    pub(crate) fn is_subscription(&self) -> bool {
        matches!(
            self.name,
            b"SUBSCRIBE"
                | b"SSUBSCRIBE"
                | b"PSUBSCRIBE"
                | b"UNSUBSCRIBE"
                | b"SUNSUBSCRIBE"
                | b"PUNSUBSCRIBE"
        )
    }
}

/// Upper-cases `name` into `buf`; `None` when it is longer than any known name.
fn upper(name: &[u8], buf: &mut [u8; MAX_KNOWN_NAME_LEN]) -> Option<usize> {
    let dst = buf.get_mut(..name.len())?;
    for (d, s) in dst.iter_mut().zip(name) {
        *d = s.to_ascii_uppercase();
    }
    Some(name.len())
}

/// The known command named `name`, compared ASCII case-insensitively (Redis ignores case).
pub(crate) fn lookup(name: &[u8]) -> Option<&'static Command> {
    let mut buf = [0; MAX_KNOWN_NAME_LEN];
    let n = upper(name, &mut buf)?;
    let key = &buf[..n];
    COMMANDS
        .binary_search_by(|c| cmp_name(c.name, key))
        .ok()
        .map(|i| &COMMANDS[i])
}

/// Byte-wise order of two short names, the order of `[u8]::cmp`, inlined: names are at most
/// 20 bytes, too short to pay for a `memcmp` call per probe step.
fn cmp_name(a: &[u8], b: &[u8]) -> std::cmp::Ordering {
    for (x, y) in a.iter().zip(b) {
        if x != y {
            return x.cmp(y);
        }
    }
    a.len().cmp(&b.len())
}

/// Is `partial` (case-insensitively) the start of a known command name?
pub(crate) fn is_prefix(partial: &[u8]) -> bool {
    let mut buf = [0; MAX_KNOWN_NAME_LEN];
    let Some(n) = upper(partial, &mut buf) else {
        return false;
    };
    let key = &buf[..n];
    let i = COMMANDS.partition_point(|c| c.name < key);
    COMMANDS.get(i).is_some_and(|c| c.name.starts_with(key))
}

/// Sorted by name (bytes), so [`lookup`] can binary-search.
pub(crate) static COMMANDS: &[Command] = &[
    c(b"ACL", -2, SUB),
    c(b"APPEND", 3, 1),
    c(b"ASKING", 1, 0),
    c(b"AUTH", -2, 0),
    c(b"BGREWRITEAOF", 1, 0),
    c(b"BGSAVE", -1, 0),
    c(b"BITCOUNT", -2, 1),
    c(b"BITFIELD", -2, 1),
    c(b"BITFIELD_RO", -2, 1),
    c(b"BITOP", -4, 2),
    c(b"BITPOS", -3, 1),
    c(b"BLMOVE", 6, 1),
    c(b"BLMPOP", -5, 0),
    c(b"BLPOP", -3, 1),
    c(b"BRPOP", -3, 1),
    c(b"BRPOPLPUSH", 4, 1),
    c(b"BZMPOP", -5, 0),
    c(b"BZPOPMAX", -3, 1),
    c(b"BZPOPMIN", -3, 1),
    c(b"CLIENT", -2, SUB),
    c(b"CLUSTER", -2, SUB),
    c(b"COMMAND", -1, SUB),
    c(b"CONFIG", -2, SUB),
    c(b"COPY", -3, 1),
    c(b"DBSIZE", 1, 0),
    c(b"DEBUG", -2, 0),
    c(b"DECR", 2, 1),
    c(b"DECRBY", 3, 1),
    c(b"DEL", -2, 1),
    c(b"DISCARD", 1, 0),
    c(b"DUMP", 2, 1),
    c(b"ECHO", 2, 0),
    c(b"EVAL", -3, 0),
    c(b"EVALSHA", -3, 0),
    c(b"EVALSHA_RO", -3, 0),
    c(b"EVAL_RO", -3, 0),
    c(b"EXEC", 1, 0),
    c(b"EXISTS", -2, 1),
    c(b"EXPIRE", -3, 1),
    c(b"EXPIREAT", -3, 1),
    c(b"EXPIRETIME", 2, 1),
    c(b"FAILOVER", -1, 0),
    c(b"FCALL", -3, 0),
    c(b"FCALL_RO", -3, 0),
    c(b"FLUSHALL", -1, 0),
    c(b"FLUSHDB", -1, 0),
    c(b"FUNCTION", -2, SUB),
    c(b"GEOADD", -5, 1),
    c(b"GEODIST", -4, 1),
    c(b"GEOHASH", -2, 1),
    c(b"GEOPOS", -2, 1),
    c(b"GEORADIUS", -6, 1),
    c(b"GEORADIUSBYMEMBER", -5, 1),
    c(b"GEORADIUSBYMEMBER_RO", -5, 1),
    c(b"GEORADIUS_RO", -6, 1),
    c(b"GEOSEARCH", -7, 1),
    c(b"GEOSEARCHSTORE", -8, 1),
    c(b"GET", 2, 1),
    c(b"GETBIT", 3, 1),
    c(b"GETDEL", 2, 1),
    c(b"GETEX", -2, 1),
    c(b"GETRANGE", 4, 1),
    c(b"GETSET", 3, 1),
    c(b"HDEL", -3, 1),
    c(b"HELLO", -1, 0),
    c(b"HEXISTS", 3, 1),
    c(b"HGET", 3, 1),
    c(b"HGETALL", 2, 1),
    c(b"HINCRBY", 4, 1),
    c(b"HINCRBYFLOAT", 4, 1),
    c(b"HKEYS", 2, 1),
    c(b"HLEN", 2, 1),
    c(b"HMGET", -3, 1),
    c(b"HMSET", -4, 1),
    c(b"HRANDFIELD", -2, 1),
    c(b"HSCAN", -3, 1),
    c(b"HSET", -4, 1),
    c(b"HSETNX", 4, 1),
    c(b"HSTRLEN", 3, 1),
    c(b"HVALS", 2, 1),
    c(b"INCR", 2, 1),
    c(b"INCRBY", 3, 1),
    c(b"INCRBYFLOAT", 3, 1),
    c(b"INFO", -1, 0),
    c(b"KEYS", 2, 0),
    c(b"LASTSAVE", 1, 0),
    c(b"LATENCY", -2, SUB),
    c(b"LCS", -3, 1),
    c(b"LINDEX", 3, 1),
    c(b"LINSERT", 5, 1),
    c(b"LLEN", 2, 1),
    c(b"LMOVE", 5, 1),
    c(b"LMPOP", -4, 0),
    c(b"LOLWUT", -1, 0),
    c(b"LPOP", -2, 1),
    c(b"LPOS", -3, 1),
    c(b"LPUSH", -3, 1),
    c(b"LPUSHX", -3, 1),
    c(b"LRANGE", 4, 1),
    c(b"LREM", 4, 1),
    c(b"LSET", 4, 1),
    c(b"LTRIM", 4, 1),
    c(b"MEMORY", -2, SUB),
    c(b"MGET", -2, 1),
    c(b"MIGRATE", -6, 3),
    c(b"MODULE", -2, SUB),
    c(b"MONITOR", 1, 0),
    c(b"MOVE", 3, 1),
    c(b"MSET", -3, 1),
    c(b"MSETNX", -3, 1),
    c(b"MULTI", 1, 0),
    c(b"OBJECT", -2, SUB),
    c(b"PERSIST", 2, 1),
    c(b"PEXPIRE", -3, 1),
    c(b"PEXPIREAT", -3, 1),
    c(b"PEXPIRETIME", 2, 1),
    c(b"PFADD", -2, 1),
    c(b"PFCOUNT", -2, 1),
    c(b"PFDEBUG", 3, 2),
    c(b"PFMERGE", -2, 1),
    c(b"PFSELFTEST", 1, 0),
    c(b"PING", -1, 0),
    c(b"PSETEX", 4, 1),
    c(b"PSUBSCRIBE", -2, 0),
    c(b"PSYNC", -3, 0),
    c(b"PTTL", 2, 1),
    c(b"PUBLISH", 3, 0),
    c(b"PUBSUB", -2, SUB),
    c(b"PUNSUBSCRIBE", -1, 0),
    c(b"QUIT", -1, 0),
    c(b"RANDOMKEY", 1, 0),
    c(b"READONLY", 1, 0),
    c(b"READWRITE", 1, 0),
    c(b"RENAME", 3, 1),
    c(b"RENAMENX", 3, 1),
    c(b"REPLCONF", -1, 0),
    c(b"REPLICAOF", 3, 0),
    c(b"RESET", 1, 0),
    c(b"RESTORE", -4, 1),
    c(b"RESTORE-ASKING", -4, 1),
    c(b"ROLE", 1, 0),
    c(b"RPOP", -2, 1),
    c(b"RPOPLPUSH", 3, 1),
    c(b"RPUSH", -3, 1),
    c(b"RPUSHX", -3, 1),
    c(b"SADD", -3, 1),
    c(b"SAVE", 1, 0),
    c(b"SCAN", -2, 0),
    c(b"SCARD", 2, 1),
    c(b"SCRIPT", -2, SUB),
    c(b"SDIFF", -2, 1),
    c(b"SDIFFSTORE", -3, 1),
    c(b"SELECT", 2, 0),
    c(b"SET", -3, 1),
    c(b"SETBIT", 4, 1),
    c(b"SETEX", 4, 1),
    c(b"SETNX", 3, 1),
    c(b"SETRANGE", 4, 1),
    c(b"SHUTDOWN", -1, 0),
    c(b"SINTER", -2, 1),
    c(b"SINTERCARD", -3, 0),
    c(b"SINTERSTORE", -3, 1),
    c(b"SISMEMBER", 3, 1),
    c(b"SLAVEOF", 3, 0),
    c(b"SLOWLOG", -2, SUB),
    c(b"SMEMBERS", 2, 1),
    c(b"SMISMEMBER", -3, 1),
    c(b"SMOVE", 4, 1),
    c(b"SORT", -2, 1),
    c(b"SORT_RO", -2, 1),
    c(b"SPOP", -2, 1),
    c(b"SPUBLISH", 3, 1),
    c(b"SRANDMEMBER", -2, 1),
    c(b"SREM", -3, 1),
    c(b"SSCAN", -3, 1),
    c(b"SSUBSCRIBE", -2, 1),
    c(b"STRLEN", 2, 1),
    c(b"SUBSCRIBE", -2, 0),
    c(b"SUBSTR", 4, 1),
    c(b"SUNION", -2, 1),
    c(b"SUNIONSTORE", -3, 1),
    c(b"SUNSUBSCRIBE", -1, 1),
    c(b"SWAPDB", 3, 0),
    c(b"SYNC", 1, 0),
    c(b"TIME", 1, 0),
    c(b"TOUCH", -2, 1),
    c(b"TTL", 2, 1),
    c(b"TYPE", 2, 1),
    c(b"UNLINK", -2, 1),
    c(b"UNSUBSCRIBE", -1, 0),
    c(b"UNWATCH", 1, 0),
    c(b"WAIT", 3, 0),
    c(b"WATCH", -2, 1),
    c(b"XACK", -4, 1),
    c(b"XADD", -5, 1),
    c(b"XAUTOCLAIM", -6, 1),
    c(b"XCLAIM", -6, 1),
    c(b"XDEL", -3, 1),
    c(b"XGROUP", -2, SUB),
    c(b"XINFO", -2, SUB),
    c(b"XLEN", 2, 1),
    c(b"XPENDING", -3, 1),
    c(b"XRANGE", -4, 1),
    c(b"XREAD", -4, 0),
    c(b"XREADGROUP", -7, 0),
    c(b"XREVRANGE", -4, 1),
    c(b"XSETID", -3, 1),
    c(b"XTRIM", -4, 1),
    c(b"ZADD", -4, 1),
    c(b"ZCARD", 2, 1),
    c(b"ZCOUNT", 4, 1),
    c(b"ZDIFF", -3, 0),
    c(b"ZDIFFSTORE", -4, 1),
    c(b"ZINCRBY", 4, 1),
    c(b"ZINTER", -3, 0),
    c(b"ZINTERCARD", -3, 0),
    c(b"ZINTERSTORE", -4, 1),
    c(b"ZLEXCOUNT", 4, 1),
    c(b"ZMPOP", -4, 0),
    c(b"ZMSCORE", -3, 1),
    c(b"ZPOPMAX", -2, 1),
    c(b"ZPOPMIN", -2, 1),
    c(b"ZRANDMEMBER", -2, 1),
    c(b"ZRANGE", -4, 1),
    c(b"ZRANGEBYLEX", -4, 1),
    c(b"ZRANGEBYSCORE", -4, 1),
    c(b"ZRANGESTORE", -5, 1),
    c(b"ZRANK", 3, 1),
    c(b"ZREM", -3, 1),
    c(b"ZREMRANGEBYLEX", 4, 1),
    c(b"ZREMRANGEBYRANK", 4, 1),
    c(b"ZREMRANGEBYSCORE", 4, 1),
    c(b"ZREVRANGE", -4, 1),
    c(b"ZREVRANGEBYLEX", -4, 1),
    c(b"ZREVRANGEBYSCORE", -4, 1),
    c(b"ZREVRANK", 3, 1),
    c(b"ZSCAN", -3, 1),
    c(b"ZSCORE", 3, 1),
    c(b"ZUNION", -3, 0),
    c(b"ZUNIONSTORE", -4, 1),
];
