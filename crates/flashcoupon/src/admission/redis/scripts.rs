//! The gate's Lua scripts (one round trip each) and the seven keys of a drop
//! they work on.

use redis::Script;

pub(super) struct Scripts {
    pub(super) claim: Script,
    pub(super) settle: Script,
    pub(super) stock: Script,
    pub(super) update: Script,
    pub(super) stale: Script,
    pub(super) give_back: Script,
    pub(super) publish: Script,
}

impl Scripts {
    pub(super) fn new() -> Self {
        Self {
            claim: Script::new(include_str!("claim.lua")),
            settle: Script::new(include_str!("settle.lua")),
            stock: Script::new(include_str!("stock.lua")),
            update: Script::new(include_str!("update.lua")),
            stale: Script::new(include_str!("stale.lua")),
            give_back: Script::new(include_str!("giveback.lua")),
            // KEYS: meta, lock; ARGV: token, then field/value pairs.
            publish: Script::new(
                "if redis.call('GET', KEYS[2]) ~= ARGV[1] then return 0 end \
                 redis.call('HSET', KEYS[1], unpack(ARGV, 2)) return 1",
            ),
        }
    }
}

/// The seven keys of one drop, in the order the scripts take them.
pub(super) struct Keys(pub(super) [String; 7]);

impl Keys {
    pub(super) fn meta(&self) -> &str {
        &self.0[0]
    }
    pub(super) fn free(&self) -> &str {
        &self.0[1]
    }
    pub(super) fn pend(&self) -> &str {
        &self.0[2]
    }
    pub(super) fn pinfo(&self) -> &str {
        &self.0[3]
    }
    pub(super) fn slots(&self) -> &str {
        &self.0[4]
    }
    pub(super) fn keys(&self) -> &str {
        &self.0[5]
    }
    pub(super) fn held(&self) -> &str {
        &self.0[6]
    }
    pub(super) fn all(&self) -> Vec<&str> {
        self.0.iter().map(String::as_str).collect()
    }
}
