#include "tenki_lua.h"

#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

/// Per-state bookkeeping, owned by the allocator's user data.
typedef struct {
    size_t used;
    size_t limit;
    int host_depth;
    int64_t max_instructions;
    int64_t max_nanoseconds;
    int64_t deadline_ns;
    int64_t instructions;
    tenki_lua_trip trip;
} tenki_extra;

/// The count hook fires every this many VM instructions while a budget is armed.
static const int tenki_hook_interval = 10000;

static tenki_extra *extra_of(lua_State *L) {
    void *ud = NULL;
    lua_getallocf(L, &ud);
    return (tenki_extra *)ud;
}

static int64_t monotonic_ns(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

static void *tenki_alloc(void *ud, void *ptr, size_t osize, size_t nsize) {
    tenki_extra *x = (tenki_extra *)ud;
    size_t old = ptr ? osize : 0;
    if (nsize == 0) {
        free(ptr);
        x->used -= old;
        return NULL;
    }
    // Refuse growth past the budget, never a shrink, and never inside a host section.
    if (nsize > old && x->limit != 0 && x->host_depth == 0 && x->used - old + nsize > x->limit) {
        return NULL;
    }
    void *p = realloc(ptr, nsize);
    if (p == NULL) return NULL;
    x->used = x->used - old + nsize;
    return p;
}

static int tenki_panic(lua_State *L) {
    // Cannot allocate or return safely here: report with write(2) and abort.
    const char *msg = lua_tostring(L, -1);
    static const char prefix[] = "tenki: unprotected Lua error: ";
    (void)!write(2, prefix, sizeof(prefix) - 1);
    if (msg) (void)!write(2, msg, strlen(msg));
    (void)!write(2, "\n", 1);
    abort();
    return 0;
}

lua_State *tenki_lua_newstate(size_t memory_limit_bytes) {
    tenki_extra *x = calloc(1, sizeof(tenki_extra));
    if (x == NULL) return NULL;
    lua_State *L = lua_newstate(tenki_alloc, x);
    if (L == NULL) { free(x); return NULL; }
    lua_atpanic(L, tenki_panic);
    lua_setwarnf(L, NULL, NULL);
    x->limit = memory_limit_bytes;
    return L;
}

void tenki_lua_close(lua_State *L) {
    tenki_extra *x = extra_of(L);
    lua_close(L);
    free(x);
}

size_t tenki_lua_memory_used(lua_State *L) { return extra_of(L)->used; }
size_t tenki_lua_memory_limit(lua_State *L) { return extra_of(L)->limit; }
void tenki_lua_set_memory_limit(lua_State *L, size_t limit) { extra_of(L)->limit = limit; }
void tenki_lua_host_enter(lua_State *L) { extra_of(L)->host_depth++; }
void tenki_lua_host_leave(lua_State *L) { extra_of(L)->host_depth--; }
int tenki_lua_over_memory_limit(lua_State *L) {
    tenki_extra *x = extra_of(L);
    return x->limit != 0 && x->used > x->limit;
}

void tenki_lua_set_budget(lua_State *L, int64_t max_instructions, int64_t max_nanoseconds) {
    tenki_extra *x = extra_of(L);
    x->max_instructions = max_instructions;
    x->max_nanoseconds = max_nanoseconds;
}
tenki_lua_trip tenki_lua_last_trip(lua_State *L) { return extra_of(L)->trip; }
int64_t tenki_lua_instructions_used(lua_State *L) { return extra_of(L)->instructions; }

static void tenki_hook(lua_State *L, lua_Debug *ar) {
    tenki_extra *x = extra_of(L);
    if (x->trip == TENKI_LUA_TRIP_NONE) {
        if (ar->event == LUA_HOOKCOUNT) x->instructions += tenki_hook_interval;
        if (x->max_instructions > 0 && x->instructions > x->max_instructions) {
            x->trip = TENKI_LUA_TRIP_INSTRUCTIONS;
        } else if (x->deadline_ns > 0 && monotonic_ns() > x->deadline_ns) {
            x->trip = TENKI_LUA_TRIP_DEADLINE;
        } else {
            return;
        }
        // From now on fire on every instruction, so the script's own pcall cannot swallow it.
        lua_sethook(L, tenki_hook, LUA_MASKCOUNT, 1);
    }
    if (x->trip == TENKI_LUA_TRIP_INSTRUCTIONS) {
        luaL_error(L, "instruction budget exceeded (%I instructions)", (lua_Integer)x->max_instructions);
    } else {
        luaL_error(L, "time limit exceeded (%I ms)", (lua_Integer)(x->max_nanoseconds / 1000000));
    }
}

int tenki_lua_load_text(lua_State *L, const char *buffer, size_t length, const char *chunkname) {
    return luaL_loadbufferx(L, buffer, length, chunkname, "t");
}

static int tenki_traceback(lua_State *L) {
    const char *msg = lua_tostring(L, 1);
    if (msg == NULL) {
        if (luaL_callmeta(L, 1, "__tostring") && lua_type(L, -1) == LUA_TSTRING) return 1;
        msg = lua_pushfstring(L, "(error object is a %s value)", luaL_typename(L, 1));
    }
    luaL_traceback(L, L, msg, 1);
    return 1;
}

int tenki_lua_pcall(lua_State *L, int nargs, int nresults) {
    tenki_extra *x = extra_of(L);
    int base = lua_gettop(L) - nargs;
    lua_pushcfunction(L, tenki_traceback);
    lua_insert(L, base);
    int armed = x->max_instructions > 0 || x->max_nanoseconds > 0;
    x->trip = TENKI_LUA_TRIP_NONE;
    x->instructions = 0;
    if (armed) {
        x->deadline_ns = x->max_nanoseconds > 0 ? monotonic_ns() + x->max_nanoseconds : 0;
        lua_sethook(L, tenki_hook, LUA_MASKCOUNT, tenki_hook_interval);
    }
    int status = lua_pcall(L, nargs, nresults, base);
    if (armed) lua_sethook(L, NULL, 0, 0);
    lua_remove(L, base);
    return status;
}

static int tenki_trampoline(lua_State *L) {
    tenki_lua_swift_callback callback = (tenki_lua_swift_callback)lua_touserdata(L, lua_upvalueindex(1));
    void *context = lua_touserdata(L, lua_upvalueindex(2));
    tenki_extra *x = extra_of(L);
    x->host_depth++;
    int results = callback(L, context);
    x->host_depth--;
    if (results < 0) return lua_error(L);
    if (tenki_lua_over_memory_limit(L)) {
        lua_settop(L, 0);
        lua_pushliteral(L, "not enough memory");
        return lua_error(L);
    }
    return results;
}

void tenki_lua_push_swift_function(lua_State *L, tenki_lua_swift_callback callback, void *context) {
    tenki_lua_host_enter(L);
    lua_pushlightuserdata(L, (void *)callback);
    lua_pushlightuserdata(L, context);
    lua_pushcclosure(L, tenki_trampoline, 2);
    tenki_lua_host_leave(L);
}

/// `load` for sandboxed code: text chunks only, and never the host's globals by default.
static int tenki_load_text_only(lua_State *L) {
    size_t len = 0;
    const char *s = luaL_checklstring(L, 1, &len);
    const char *name = luaL_optstring(L, 2, "=(load)");
    const char *mode = luaL_optstring(L, 3, "t");
    if (strcmp(mode, "t") != 0) return luaL_error(L, "load: only text chunks are allowed");
    int has_env = !lua_isnone(L, 4);
    if (luaL_loadbufferx(L, s, len, name, "t") != LUA_OK) {
        luaL_pushfail(L);
        lua_insert(L, -2);
        return 2;
    }
    if (has_env) {
        lua_pushvalue(L, 4);
        if (!lua_setupvalue(L, -2, 1)) lua_pop(L, 1);
    }
    return 1;
}

static int open_sandbox(lua_State *L) {
    luaL_requiref(L, LUA_GNAME, luaopen_base, 1);
    luaL_requiref(L, LUA_STRLIBNAME, luaopen_string, 1);
    luaL_requiref(L, LUA_TABLIBNAME, luaopen_table, 1);
    luaL_requiref(L, LUA_MATHLIBNAME, luaopen_math, 1);
    luaL_requiref(L, LUA_UTF8LIBNAME, luaopen_utf8, 1);
    luaL_requiref(L, LUA_COLIBNAME, luaopen_coroutine, 1);
    lua_settop(L, 0);

    lua_pushglobaltable(L);
    static const char *const removed_globals[] = {"dofile", "loadfile", "collectgarbage", NULL};
    for (const char *const *name = removed_globals; *name; name++) {
        lua_pushnil(L);
        lua_setfield(L, 1, *name);
    }
    lua_pushcfunction(L, tenki_load_text_only);
    lua_setfield(L, 1, "load");

    lua_getfield(L, 1, LUA_STRLIBNAME);
    lua_pushnil(L);
    lua_setfield(L, -2, "dump");
    lua_pop(L, 1);

    lua_getfield(L, 1, LUA_MATHLIBNAME);
    lua_pushnil(L);
    lua_setfield(L, -2, "random");
    lua_pushnil(L);
    lua_setfield(L, -2, "randomseed");
    lua_pop(L, 1);

    // Hide the string metatable: getmetatable("") returns false instead of the string table.
    lua_pushliteral(L, "");
    if (lua_getmetatable(L, -1)) {
        lua_pushboolean(L, 0);
        lua_setfield(L, -2, "__metatable");
        lua_pop(L, 1);
    }
    lua_pop(L, 2);
    return 0;
}

static int open_all(lua_State *L) {
    luaL_openlibs(L);
    return 0;
}

int tenki_lua_open_sandbox(lua_State *L) {
    lua_pushcfunction(L, open_sandbox);
    return tenki_lua_pcall(L, 0, 0);
}

int tenki_lua_open_all(lua_State *L) {
    lua_pushcfunction(L, open_all);
    return tenki_lua_pcall(L, 0, 0);
}

void tenki_lua_gc_generational(lua_State *L) {
    lua_gc(L, LUA_GCGEN, 0, 0);
}
