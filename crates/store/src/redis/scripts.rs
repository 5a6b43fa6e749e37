//! The Lua scripts of the Redis adapter, loaded once per process. Their sources live in `lua/`;
//! each script is `lib.lua` (and, for writes, `commit.lua`) followed by its own body, because Redis
//! scripts cannot include one another. `EVALSHA` falls back to `EVAL` after a Redis restart
//! (the `redis` crate handles `NOSCRIPT`).

use redis::Script;
use std::sync::LazyLock;

macro_rules! write_script {
    ($file:literal) => {
        concat!(
            include_str!("lua/lib.lua"),
            include_str!("lua/commit.lua"),
            include_str!(concat!("lua/", $file))
        )
    };
}

macro_rules! read_script {
    ($file:literal) => {
        concat!(
            include_str!("lua/lib.lua"),
            include_str!(concat!("lua/", $file))
        )
    };
}

pub(crate) struct Scripts {
    pub(crate) set: Script,
    pub(crate) update: Script,
    pub(crate) delete: Script,
    pub(crate) emit: Script,
    pub(crate) snapshot: Script,
    pub(crate) list: Script,
    pub(crate) history: Script,
    pub(crate) renew: Script,
}

pub(crate) static SCRIPTS: LazyLock<Scripts> = LazyLock::new(|| Scripts {
    set: Script::new(write_script!("set.lua")),
    update: Script::new(write_script!("update.lua")),
    delete: Script::new(write_script!("delete.lua")),
    emit: Script::new(write_script!("emit.lua")),
    snapshot: Script::new(read_script!("snapshot.lua")),
    list: Script::new(read_script!("list.lua")),
    history: Script::new(read_script!("history.lua")),
    renew: Script::new(read_script!("renew.lua")),
});
