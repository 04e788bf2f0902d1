// Tiny C layer under the Swift `Lua` module. Everything here exists because Lua raises errors
// with longjmp: only C code may raise, so Swift never has a frame that a Lua error unwinds.
#ifndef TENKI_LUA_H
#define TENKI_LUA_H

#include <stddef.h>
#include <stdint.h>
#include <lua5.4/lua.h>
#include <lua5.4/lauxlib.h>
#include <lua5.4/lualib.h>

/// Why the last protected call stopped early, if a host limit stopped it.
typedef enum {
    TENKI_LUA_TRIP_NONE = 0,
    TENKI_LUA_TRIP_INSTRUCTIONS = 1,
    TENKI_LUA_TRIP_DEADLINE = 2,
} tenki_lua_trip;

/// A Swift function callable from Lua. Returns the number of results it pushed, or
/// TENKI_LUA_RAISE after pushing an error message; the C trampoline then raises it, after the
/// Swift frame has returned.
typedef int (*tenki_lua_swift_callback)(lua_State *L, void *context);
#define TENKI_LUA_RAISE (-1)

/// Lua's registry pseudo-index (a macro expression Swift cannot import).
static const int TENKI_LUA_REGISTRYINDEX = LUA_REGISTRYINDEX;

/// A new state with a counting allocator. `memory_limit_bytes` 0 means unlimited.
lua_State *tenki_lua_newstate(size_t memory_limit_bytes);
void tenki_lua_close(lua_State *L);
size_t tenki_lua_memory_used(lua_State *L);
size_t tenki_lua_memory_limit(lua_State *L);
void tenki_lua_set_memory_limit(lua_State *L, size_t memory_limit_bytes);

/// While inside a host section (Swift pushing values), the allocator never refuses, so no
/// allocation can raise through Swift. The budget is checked again when the section ends.
void tenki_lua_host_enter(lua_State *L);
void tenki_lua_host_leave(lua_State *L);
int tenki_lua_over_memory_limit(lua_State *L);

/// A process-wide slot for a key string that Swift pushes often (see `LuaKey`).
int tenki_lua_new_key_slot(void);
/// Pushes the state's interned string for `slot` and returns 1, or returns 0 if it has none yet.
int tenki_lua_push_cached_key(lua_State *L, int slot);
/// Pushes `name` and remembers it as the state's string for `slot` (in the registry).
void tenki_lua_push_key(lua_State *L, int slot, const char *name, size_t length);

/// Instruction and wall-clock budget for the next protected calls; 0 disables either.
void tenki_lua_set_budget(lua_State *L, int64_t max_instructions, int64_t max_nanoseconds);
tenki_lua_trip tenki_lua_last_trip(lua_State *L);

/// Loads a text chunk (never bytecode). Returns a LUA_* status; on error the message is on top.
int tenki_lua_load_text(lua_State *L, const char *buffer, size_t length, const char *chunkname);

/// lua_pcall with a traceback message handler and the budget armed for its duration.
int tenki_lua_pcall(lua_State *L, int nargs, int nresults);

/// Pushes a Lua function that calls `callback(L, context)` through the raising trampoline.
void tenki_lua_push_swift_function(lua_State *L, tenki_lua_swift_callback callback, void *context);

/// Opens the allow-listed libraries (base, string, table, math, utf8, coroutine) under a
/// protected call and removes what lets a script escape or stop being deterministic.
int tenki_lua_open_sandbox(lua_State *L);

/// Adds the `money` (integer micro-cents, checked) and `date` (pure UTC) libraries.
int tenki_lua_open_money(lua_State *L);

/// Switches the collector to generational mode (suits many short-lived tables per call).
void tenki_lua_gc_generational(lua_State *L);

/// Opens the full standard library (for trusted tooling only).
int tenki_lua_open_all(lua_State *L);

#endif
