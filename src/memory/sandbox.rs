//! The sandbox `memory://` scripts run in: Redis 7's globals, read-only, and a
//! hook that stops a script on SCRIPT KILL.
//!
//! Redis 7.0 (with the 2025 Lua fixes, CVE-2025-46817/46818/49844) gives
//! scripts the base functions less `dofile`, `loadfile`, `print`, `getfenv`,
//! `setfenv` and `newproxy`; the `string`, `table`, `math`, `coroutine`,
//! `struct`, `cjson`, `cmsgpack` and `bit` libraries and `redis`; no `os`,
//! `io`, `debug`, `package`, `require` or `module`. Its Lua is patched so that
//! `_G`, every table reachable from it and the string metatable are read-only
//! ("Attempt to modify a readonly table"), and `_G` has a metatable whose
//! `__index` fails ("Script attempted to access nonexistent global variable").
//!
//! Our Lua 5.1 has no read-only tables, so a script sees each such table
//! through an empty proxy that reads through to it and refuses writes; the
//! raw functions (`rawset`, `rawget`, `next`, `pairs`, `getmetatable`,
//! `setmetatable`, `table.insert`) see through proxies the way Redis' see the
//! tables. `loadstring`/`load` refuse bytecode (read as text, as Redis' Lua
//! does) and give what they compile the script's globals.

use std::os::raw::c_void;
use std::sync::Arc;

use mlua::{ffi, Lua, Table};

use super::script_run::ScriptRun;

/// Builds the proxies and wraps the raw functions; returns the `_G` a script
/// sees. Its argument: the names of the globals scripts may have.
const SANDBOX: &str = r#"
local allowed = ...
local G = _G
local setfenv, type, error, select = setfenv, type, error, select
-- the originals, called through fields so their errors name them as Redis' do
local raw = {
  rawget = rawget, rawset = rawset, next = next, pairs = pairs,
  getmetatable = getmetatable, setmetatable = setmetatable,
  loadstring = loadstring, load = load, insert = table.insert,
}
local READONLY = 'Attempt to modify a readonly table'

local real_of = raw.setmetatable({}, { __mode = 'k' }) -- proxy -> table
local proxy_of = {}                                    -- table -> proxy
local shown_mt = {}                                    -- proxy -> its getmetatable()

local function deny() error(READONLY, 2) end

-- the proxy of `t`; tables inside `t` are replaced by theirs
local function protect(t)
  local p = proxy_of[t]
  if p then return p end
  p = {}
  proxy_of[t], real_of[p] = p, t
  local k, v = raw.next(t)
  while k ~= nil do
    if type(v) == 'table' then raw.rawset(t, k, protect(v)) end
    k, v = raw.next(t, k)
  end
  raw.setmetatable(p, { __index = t, __newindex = deny })
  return p
end

local function missing(...)
  if select('#', ...) ~= 2 then
    error('Wrong number of arguments to luaProtectedTableError', 2)
  end
  local k = select(2, ...)
  if type(k) ~= 'string' and type(k) ~= 'number' then
    error('Second argument to luaProtectedTableError must be a string or number', 2)
  end
  error("Script attempted to access nonexistent global variable '" .. k .. "'", 2)
end

-- argument checks as the C functions make them, raised at the line of the
-- wrapper's caller (`level`: frames up from argerror to that caller)
local function got(n, ...)
  if select('#', ...) < n then return 'no value' end
  return type((select(n, ...)))
end
local function argerror(n, fname, msg, level)
  error("bad argument #" .. n .. " to '" .. fname .. "' (" .. msg .. ")", level or 3)
end
local function check(n, fname, want, ...)
  local t = got(n, ...)
  if t ~= want then argerror(n, fname, want .. ' expected, got ' .. t, 4) end
end
local function checkany(n, fname, ...)
  if select('#', ...) < n then argerror(n, fname, 'value expected', 4) end
end

local lua_next = next
local function next(...)
  check(1, 'next', 'table', ...)
  local t = ...
  local k, v = lua_next(real_of[t] or t, select(2, ...))
  return k, v
end
G.next = next
G.pairs = function(...)
  check(1, 'pairs', 'table', ...)
  local t = ...
  if real_of[t] then return next, t, nil end
  return lua_next, t, nil
end
G.rawget = function(...)
  check(1, 'rawget', 'table', ...)
  checkany(2, 'rawget', ...)
  local t, k = ...
  return (raw.rawget(real_of[t] or t, k))
end
G.rawset = function(...)
  check(1, 'rawset', 'table', ...)
  checkany(2, 'rawset', ...)
  checkany(3, 'rawset', ...)
  local t, k, v = ...
  if real_of[t] then error(READONLY, 0) end
  raw.rawset(t, k, v)
  return t
end
G.getmetatable = function(...)
  checkany(1, 'getmetatable', ...)
  local v = ...
  if real_of[v] then return shown_mt[v] end
  local mt = raw.getmetatable(v)
  return (mt ~= nil and proxy_of[mt]) or mt
end
G.setmetatable = function(...)
  check(1, 'setmetatable', 'table', ...)
  local t, mt = ...
  local kind = type(mt)
  if kind ~= 'nil' and kind ~= 'table' then
    argerror(2, 'setmetatable', 'nil or table expected')
  end
  if real_of[t] then error(READONLY, 0) end
  return (raw.setmetatable(t, mt))
end
table.insert = function(...)
  check(1, 'insert', 'table', ...)
  local t = ...
  if real_of[t] and select('#', ...) > 1 then error(READONLY, 0) end
  raw.insert(...)
end

local P_G -- the script's _G, set below
-- bytecode is read as text (and so refused), as Redis' Lua does
local function as_text(s)
  if type(s) == 'string' and s:byte(1) == 27 then return ' ' .. s end
  return s
end
G.loadstring = function(...)
  local s, name = ...
  local kind = type(s)
  if kind ~= 'string' and kind ~= 'number' then check(1, 'loadstring', 'string', ...) end
  s = tostring(s)
  if name == nil then name = s end
  local f, e = raw.loadstring(as_text(s), name)
  if f then setfenv(f, P_G) end
  return f, e
end
G.load = function(...)
  check(1, 'load', 'function', ...)
  local reader, name = ...
  local first = true
  local function read()
    local piece = reader()
    if first and type(piece) == 'string' and piece ~= '' then
      first = false
      piece = as_text(piece)
    end
    return piece
  end
  local f, e = raw.load(read, name)
  if f then setfenv(f, P_G) end
  return f, e
end

for name in raw.pairs(G) do
  if not allowed[name] then G[name] = nil end
end
protect(raw.getmetatable(''))
P_G = protect(G)
shown_mt[P_G] = protect({ __index = missing })
raw.setmetatable(G, { __index = missing, __newindex = deny })
return P_G
"#;

/// The globals of a Redis 7.0 script (KEYS and ARGV are set per call).
pub const GLOBALS: &[&str] = &[
  "_G",
  "_VERSION",
  "__redis__err__handler",
  "assert",
  "bit",
  "cjson",
  "cmsgpack",
  "collectgarbage",
  "coroutine",
  "error",
  "gcinfo",
  "getmetatable",
  "ipairs",
  "load",
  "loadstring",
  "math",
  "next",
  "pairs",
  "pcall",
  "rawequal",
  "rawget",
  "rawset",
  "redis",
  "select",
  "setmetatable",
  "string",
  "struct",
  "table",
  "tonumber",
  "tostring",
  "type",
  "unpack",
  "xpcall",
];

/// Locks the globals down (after every library is in place); returns the
/// table scripts get as their environment.
pub fn lock_globals(lua: &Lua) -> mlua::Result<Table> {
  let allowed = lua.create_table()?;
  for name in GLOBALS {
    allowed.set(*name, true)?;
  }
  lua
    .load(SANDBOX)
    .set_name("=redis_lib")
    .call::<Table>(allowed)
}

/// Whether a stack frame belongs to the sandbox's wrappers (skipped when an
/// error is located, as Redis' C functions are).
pub fn is_sandbox_source(source: &str) -> bool {
  source == "=redis_lib"
}

/// Instructions between two looks at SCRIPT KILL.
const HOOK_EVERY: i32 = 1000;

/// The registry key under which the hook finds its [`ScriptRun`].
static RUN_KEY: u8 = 0;

unsafe extern "C-unwind" fn interrupt_hook(l: *mut ffi::lua_State, _ar: *mut ffi::lua_Debug) {
  ffi::lua_pushlightuserdata(l, &RUN_KEY as *const u8 as *mut c_void);
  ffi::lua_rawget(l, ffi::LUA_REGISTRYINDEX);
  let run = ffi::lua_touserdata(l, -1) as *const ScriptRun;
  ffi::lua_pop(l, 1);
  if run.is_null() {
    return;
  }
  if let Some(text) = (*run).interrupt() {
    // from now on at every instruction, as Redis does, so that a pcall in
    // the script cannot catch the error and carry on
    ffi::lua_sethook(l, Some(interrupt_hook), ffi::LUA_MASKCOUNT, 1);
    ffi::lua_pushlstring_(l, text.as_ptr().cast(), text.len());
    ffi::lua_error(l);
  }
}

/// Installs the hook that stops a script when `run` says so (SCRIPT KILL,
/// SHUTDOWN NOSAVE, a move off the I/O thread). Coroutines a
/// script creates inherit it. `run` must outlive `lua` (the engine owns both).
pub fn install_hook(lua: &Lua, run: &Arc<ScriptRun>) -> mlua::Result<()> {
  let ptr = Arc::as_ptr(run) as *mut c_void;
  // SAFETY: plain pushes and a rawset on a valid state; the pointer stays
  // valid as long as the engine that owns the state
  unsafe {
    lua.exec_raw::<()>((), |l| {
      ffi::lua_pushlightuserdata(l, &RUN_KEY as *const u8 as *mut c_void);
      ffi::lua_pushlightuserdata(l, ptr);
      ffi::lua_rawset(l, ffi::LUA_REGISTRYINDEX);
    })?;
  }
  reset_hook(lua)
}

/// Back to the normal pace after a stopped script.
pub fn reset_hook(lua: &Lua) -> mlua::Result<()> {
  // SAFETY: sets a C hook on a valid state
  unsafe {
    lua.exec_raw::<()>((), |l| {
      ffi::lua_sethook(l, Some(interrupt_hook), ffi::LUA_MASKCOUNT, HOOK_EVERY);
    })
  }
}
