#include "tenki_lua.h"

#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

/// Small blocks are recycled through per-state free lists in 16-byte size classes: a decision
/// makes and drops a dozen small tables, and glibc's malloc/free was a tenth of its time.
#define TENKI_SMALL_MAX 512
#define TENKI_SMALL_CLASSES (TENKI_SMALL_MAX / 16 + 1)
/// Interned key strings cached per state (registry references), by process-wide key slot.
#define TENKI_KEY_SLOTS 512
/// Nested coroutine resumes tracked per state (Lua itself stops at about 200 C levels).
#define LUAI_MAXCCALLS_GUESS 256

typedef struct tenki_free_block { struct tenki_free_block *next; } tenki_free_block;

/// Per-state bookkeeping, owned by the allocator's user data.
typedef struct {
    tenki_free_block *free_blocks[TENKI_SMALL_CLASSES];
    int key_refs[TENKI_KEY_SLOTS];
    size_t used;
    size_t limit;
    int host_depth;
    int64_t max_instructions;
    int64_t max_nanoseconds;
    int64_t deadline_ns;
    int64_t instructions;
    tenki_lua_trip trip;
    /// Protected calls in progress (only the outermost arms the budget).
    int depth;
    /// Coroutines being resumed inside the current evaluation, innermost last: the watchdog's
    /// signal arms the hook on each of them, since a hook belongs to one Lua thread.
    lua_State *resuming[LUAI_MAXCCALLS_GUESS];
    int resuming_count;
} tenki_extra;

/// The count hook fires every this many VM instructions while a budget is armed.
static const int tenki_hook_interval = 10000;

/// How long an evaluation runs before the watchdog arms its count hook. A count hook makes the
/// VM stop in the debug interface on every instruction (a tenth of a price evaluation), so
/// decisions that finish within this grace never pay for it; anything longer is budgeted
/// from then on by instructions and, from its start, by the wall clock.
#define TENKI_HOOK_GRACE_NS 1000000LL

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

static inline size_t size_class(size_t n) { return (n + 15) >> 4; }

static void *obtain_block(tenki_extra *x, size_t n) {
    if (n > TENKI_SMALL_MAX) return malloc(n);
    size_t c = size_class(n);
    tenki_free_block *b = x->free_blocks[c];
    if (b != NULL) {
        x->free_blocks[c] = b->next;
        return b;
    }
    return malloc(c << 4);
}

static void release_block(tenki_extra *x, void *p, size_t n) {
    if (n > TENKI_SMALL_MAX) {
        free(p);
        return;
    }
    tenki_free_block *b = (tenki_free_block *)p;
    size_t c = size_class(n);
    b->next = x->free_blocks[c];
    x->free_blocks[c] = b;
}

static void *tenki_alloc(void *ud, void *ptr, size_t osize, size_t nsize) {
    tenki_extra *x = (tenki_extra *)ud;
    // Lua passes a block's exact size with it; without a block, osize is an object tag.
    size_t old = ptr ? osize : 0;
    if (nsize == 0) {
        if (ptr) release_block(x, ptr, osize);
        x->used -= old;
        return NULL;
    }
    // Refuse growth past the budget, never a shrink, and never inside a host section.
    if (nsize > old && x->limit != 0 && x->host_depth == 0 && x->used - old + nsize > x->limit) {
        return NULL;
    }
    void *p;
    if (ptr == NULL) {
        p = obtain_block(x, nsize);
    } else if (osize <= TENKI_SMALL_MAX && nsize <= TENKI_SMALL_MAX && size_class(osize) == size_class(nsize)) {
        p = ptr;
    } else if (osize > TENKI_SMALL_MAX && nsize > TENKI_SMALL_MAX) {
        p = realloc(ptr, nsize);
    } else {
        p = obtain_block(x, nsize);
        if (p != NULL) {
            memcpy(p, ptr, osize < nsize ? osize : nsize);
            release_block(x, ptr, osize);
        }
    }
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
    for (size_t c = 0; c < TENKI_SMALL_CLASSES; c++) {
        tenki_free_block *b = x->free_blocks[c];
        while (b != NULL) {
            tenki_free_block *next = b->next;
            free(b);
            b = next;
        }
    }
    free(x);
}

static atomic_int tenki_next_key_slot = 0;

int tenki_lua_new_key_slot(void) { return atomic_fetch_add(&tenki_next_key_slot, 1); }

int tenki_lua_push_cached_key(lua_State *L, int slot) {
    tenki_extra *x = extra_of(L);
    if (slot < 0 || slot >= TENKI_KEY_SLOTS || x->key_refs[slot] == 0) return 0;
    lua_rawgeti(L, LUA_REGISTRYINDEX, x->key_refs[slot]);
    return 1;
}

void tenki_lua_push_key(lua_State *L, int slot, const char *name, size_t length) {
    tenki_extra *x = extra_of(L);
    x->host_depth++;
    lua_pushlstring(L, name, length);
    if (slot >= 0 && slot < TENKI_KEY_SLOTS && x->key_refs[slot] == 0) {
        lua_pushvalue(L, -1);
        x->key_refs[slot] = luaL_ref(L, LUA_REGISTRYINDEX);
    }
    x->host_depth--;
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

// MARK: the watchdog

/// One watched thread. `started_ns` is non-zero while an armed evaluation runs on it.
typedef struct {
    atomic_int claimed;
    pthread_t thread;
    _Atomic int64_t started_ns;
    _Atomic uint64_t sequence;
    uint64_t signalled_sequence; // the watchdog's own
} tenki_watch_slot;

#define TENKI_WATCH_SLOTS 512
static tenki_watch_slot watch_slots[TENKI_WATCH_SLOTS];
static atomic_int watch_slot_high = 0;
static pthread_once_t watchdog_once = PTHREAD_ONCE_INIT;
static int watchdog_running = 0;
static int watchdog_signal = 0;
static pthread_key_t watch_slot_key;
/// Held while the watchdog scans and signals, and by a thread giving its slot up as it exits,
/// so a signal never targets a thread that is gone.
static pthread_mutex_t watchdog_mutex = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t watchdog_wake = PTHREAD_COND_INITIALIZER;
static atomic_int watchdog_idle = 0;

static __thread tenki_watch_slot *tls_slot;
static __thread lua_State *volatile tls_current;
static __thread volatile sig_atomic_t tls_hooked;

static void arm_hook(lua_State *L) {
    lua_sethook(L, tenki_hook, LUA_MASKCOUNT, tenki_hook_interval);
}

/// Runs on the evaluating thread (lua_sethook is async-signal-safe by Lua's manual).
static void on_watchdog_signal(int sig) {
    (void)sig;
    lua_State *L = tls_current;
    if (L == NULL || tls_hooked) return;
    tls_hooked = 1;
    arm_hook(L);
    tenki_extra *x = extra_of(L);
    for (int i = 0; i < x->resuming_count; i++) arm_hook(x->resuming[i]);
}

/// Signals every thread whose evaluation has outlived the grace; returns whether any runs.
static int watchdog_scan(void) {
    int64_t now = monotonic_ns();
    int active = 0;
    int high = atomic_load(&watch_slot_high);
    for (int i = 0; i < high; i++) {
        tenki_watch_slot *slot = &watch_slots[i];
        if (!atomic_load(&slot->claimed)) continue;
        int64_t started = atomic_load(&slot->started_ns);
        if (started == 0) continue;
        active = 1;
        uint64_t sequence = atomic_load(&slot->sequence);
        if (now - started >= TENKI_HOOK_GRACE_NS && slot->signalled_sequence != sequence) {
            slot->signalled_sequence = sequence;
            pthread_kill(slot->thread, watchdog_signal);
        }
    }
    return active;
}

static void *watchdog_main(void *unused) {
    (void)unused;
    int idle_rounds = 0;
    for (;;) {
        struct timespec pause = {0, 250000};
        nanosleep(&pause, NULL);
        pthread_mutex_lock(&watchdog_mutex);
        int active = watchdog_scan();
        if (active) {
            idle_rounds = 0;
        } else if (++idle_rounds >= 4000) {
            // About a second without evaluations: sleep until one starts. An evaluation stores
            // its start before it reads `watchdog_idle`, and this stores `watchdog_idle` before
            // scanning again, so one of the two always sees the other.
            atomic_store(&watchdog_idle, 1);
            while (!watchdog_scan() && atomic_load(&watchdog_idle)) pthread_cond_wait(&watchdog_wake, &watchdog_mutex);
            atomic_store(&watchdog_idle, 0);
            idle_rounds = 0;
        }
        pthread_mutex_unlock(&watchdog_mutex);
    }
    return NULL;
}

static void release_watch_slot(void *value) {
    tenki_watch_slot *slot = (tenki_watch_slot *)value;
    pthread_mutex_lock(&watchdog_mutex);
    atomic_store(&slot->started_ns, 0);
    atomic_store(&slot->claimed, 0);
    pthread_mutex_unlock(&watchdog_mutex);
}

static void start_watchdog(void) {
    if (pthread_key_create(&watch_slot_key, release_watch_slot) != 0) return;
    watchdog_signal = SIGRTMIN + 3;
    struct sigaction action;
    memset(&action, 0, sizeof action);
    action.sa_handler = on_watchdog_signal;
    action.sa_flags = SA_RESTART;
    sigemptyset(&action.sa_mask);
    if (sigaction(watchdog_signal, &action, NULL) != 0) return;
    // The watchdog never takes its own signal.
    sigset_t all, previous;
    sigfillset(&all);
    pthread_sigmask(SIG_SETMASK, &all, &previous);
    pthread_t thread;
    pthread_attr_t attributes;
    pthread_attr_init(&attributes);
    pthread_attr_setdetachstate(&attributes, PTHREAD_CREATE_DETACHED);
    pthread_attr_setstacksize(&attributes, 64 * 1024);
    int started = pthread_create(&thread, &attributes, watchdog_main, NULL) == 0;
    pthread_attr_destroy(&attributes);
    pthread_sigmask(SIG_SETMASK, &previous, NULL);
    watchdog_running = started;
}

/// This thread's slot, claimed on first use; NULL when the watchdog cannot watch it.
static tenki_watch_slot *thread_slot(void) {
    if (tls_slot != NULL) return tls_slot;
    pthread_once(&watchdog_once, start_watchdog);
    if (!watchdog_running) return NULL;
    for (int i = 0; i < TENKI_WATCH_SLOTS; i++) {
        int expected = 0;
        if (atomic_compare_exchange_strong(&watch_slots[i].claimed, &expected, 1)) {
            watch_slots[i].thread = pthread_self();
            atomic_store(&watch_slots[i].started_ns, 0);
            int high = atomic_load(&watch_slot_high);
            while (high < i + 1 && !atomic_compare_exchange_weak(&watch_slot_high, &high, i + 1)) {}
            pthread_setspecific(watch_slot_key, &watch_slots[i]);
            // Thread pools (libdispatch's among them) block signals on their threads.
            sigset_t ours;
            sigemptyset(&ours);
            sigaddset(&ours, watchdog_signal);
            pthread_sigmask(SIG_UNBLOCK, &ours, NULL);
            tls_slot = &watch_slots[i];
            return tls_slot;
        }
    }
    return NULL;
}

/// Starts watching an armed evaluation; returns 0 when it must be hooked from the start instead.
static int watch_begin(lua_State *L, int64_t now) {
    tenki_watch_slot *slot = thread_slot();
    if (slot == NULL) return 0;
    tls_hooked = 0;
    tls_current = L;
    atomic_fetch_add(&slot->sequence, 1);
    atomic_store(&slot->started_ns, now);
    if (atomic_load(&watchdog_idle)) {
        pthread_mutex_lock(&watchdog_mutex);
        atomic_store(&watchdog_idle, 0);
        pthread_cond_signal(&watchdog_wake);
        pthread_mutex_unlock(&watchdog_mutex);
    }
    return 1;
}

static void watch_end(void) {
    tls_current = NULL;
    atomic_signal_fence(memory_order_seq_cst);
    if (tls_slot != NULL) atomic_store(&tls_slot->started_ns, 0);
}

int tenki_lua_pcall(lua_State *L, int nargs, int nresults) {
    tenki_extra *x = extra_of(L);
    int base = lua_gettop(L) - nargs;
    lua_pushcfunction(L, tenki_traceback);
    lua_insert(L, base);
    int outermost = x->depth == 0;
    int armed = outermost && (x->max_instructions > 0 || x->max_nanoseconds > 0);
    int watched = 0;
    if (outermost) {
        x->trip = TENKI_LUA_TRIP_NONE;
        x->instructions = 0;
        x->resuming_count = 0;
    }
    if (armed) {
        int64_t now = monotonic_ns();
        x->deadline_ns = x->max_nanoseconds > 0 ? now + x->max_nanoseconds : 0;
        watched = watch_begin(L, now);
        if (!watched) arm_hook(L);
    }
    x->depth++;
    int status = lua_pcall(L, nargs, nresults, base);
    x->depth--;
    if (armed) {
        if (watched) watch_end();
        lua_sethook(L, NULL, 0, 0);
    }
    if (outermost) x->resuming_count = 0;
    if (status == LUA_OK && outermost && x->trip != TENKI_LUA_TRIP_NONE) {
        // A limit tripped where the script caught it (a coroutine's resume returns the error
        // as a value): the evaluation fails all the same.
        lua_settop(L, base);
        if (x->trip == TENKI_LUA_TRIP_INSTRUCTIONS) {
            lua_pushfstring(L, "instruction budget exceeded (%I instructions)", (lua_Integer)x->max_instructions);
        } else {
            lua_pushfstring(L, "time limit exceeded (%I ms)", (lua_Integer)(x->max_nanoseconds / 1000000));
        }
        status = LUA_ERRRUN;
    }
    lua_remove(L, base);
    return status;
}

// MARK: coroutines under the budget

/// The sandbox's coroutine.resume and the functions coroutine.wrap makes: they run the
/// original, with the coroutine registered so the watchdog can hook it and hooked already if
/// the evaluation is past its grace (a hook belongs to one Lua thread, and a coroutine made
/// before the hook was armed would otherwise loop unbudgeted).
static int budgeted_resume_call(lua_State *L, lua_State *co) {
    tenki_extra *x = extra_of(L);
    int tracked = 0;
    if (co != NULL && co != L) {
        if (lua_gethook(L) != NULL && lua_gethook(co) == NULL) arm_hook(co);
        if (x->resuming_count >= LUAI_MAXCCALLS_GUESS) return luaL_error(L, "too many nested coroutines");
        x->resuming[x->resuming_count] = co;
        atomic_signal_fence(memory_order_seq_cst);
        x->resuming_count++;
        tracked = 1;
    }
    // The original function is upvalue 1; call it protected so the registration is undone
    // before any error goes on.
    lua_pushvalue(L, lua_upvalueindex(1));
    lua_insert(L, 1);
    int status = lua_pcall(L, lua_gettop(L) - 1, LUA_MULTRET, 0);
    if (tracked) x->resuming_count--;
    if (status != LUA_OK) return lua_error(L);
    return lua_gettop(L);
}

static int budgeted_resume(lua_State *L) {
    return budgeted_resume_call(L, lua_tothread(L, 1));
}

/// A function made by the sandbox's coroutine.wrap: upvalue 1 the original resume, upvalue 2
/// the coroutine. Raises the coroutine's error like wrap does.
static int budgeted_wrapped(lua_State *L) {
    lua_State *co = lua_tothread(L, lua_upvalueindex(2));
    lua_pushvalue(L, lua_upvalueindex(2));
    lua_insert(L, 1);
    int results = budgeted_resume_call(L, co);
    if (lua_toboolean(L, 1)) {
        lua_remove(L, 1);
        return results - 1;
    }
    lua_settop(L, 2);
    if (lua_type(L, 2) == LUA_TSTRING) {
        luaL_where(L, 1);
        lua_insert(L, -2);
        lua_concat(L, 2);
    }
    return lua_error(L);
}

static int budgeted_wrap(lua_State *L) {
    luaL_checktype(L, 1, LUA_TFUNCTION);
    lua_State *co = lua_newthread(L);
    lua_pushvalue(L, 1);
    lua_xmove(L, co, 1);
    lua_pushvalue(L, lua_upvalueindex(1));
    lua_insert(L, -2);
    lua_pushcclosure(L, budgeted_wrapped, 2);
    return 1;
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

    // coroutine.resume and coroutine.wrap under the evaluation's budget.
    lua_getfield(L, 1, LUA_COLIBNAME);
    lua_getfield(L, -1, "resume");
    lua_pushvalue(L, -1);
    lua_pushcclosure(L, budgeted_resume, 1);
    lua_setfield(L, -3, "resume");
    lua_pushcclosure(L, budgeted_wrap, 1);
    lua_setfield(L, -2, "wrap");
    lua_pop(L, 1);

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
