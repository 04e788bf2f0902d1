import CLua
import CLuaShim

/// Limits on one Lua state and each evaluation in it. Zero means "no limit".
package struct LuaLimits: Sendable, Equatable {
    /// Bytes the state may hold; growth past it fails with a memory error.
    package var memoryBytes: Int
    /// VM instructions one protected call may execute (checked every 10,000).
    package var instructions: Int64
    /// Wall-clock nanoseconds one protected call may take.
    package var wallClockNanoseconds: Int64

    package init(memoryBytes: Int = 0, instructions: Int64 = 0, wallClockNanoseconds: Int64 = 0) {
        self.memoryBytes = memoryBytes
        self.instructions = instructions
        self.wallClockNanoseconds = wallClockNanoseconds
    }

    package static let unlimited = LuaLimits()
}

/// A Swift function callable from Lua. Throwing raises a Lua error at the caller's line.
package typealias LuaFunction = ([LuaValue]) throws -> [LuaValue]

/// One Lua 5.4 state. Not thread-safe: use it from one thread at a time and never hold it
/// across an `await` (the task may resume elsewhere). A Lua error never unwinds through Swift:
/// every call into Lua is protected, and Swift functions raise through a C trampoline.
package final class LuaState {
    /// Nesting limit for tables crossing between Lua and Swift.
    package static let maxTableDepth = 64

    let L: OpaquePointer
    private var functions: [FunctionBox] = []
    package let sandboxed: Bool

    /// Creates a state. `sandboxed` opens only the allow-listed libraries
    /// (docs/ARCHITECTURE.md §7, rule 6).
    package init(sandboxed: Bool = true, limits: LuaLimits = .unlimited) throws {
        guard let state = tenki_lua_newstate(0) else {
            throw LuaError(kind: .memory, message: "cannot create a Lua state")
        }
        L = state
        self.sandboxed = sandboxed
        self.limits = .unlimited
        let status = sandboxed ? tenki_lua_open_sandbox(L) : tenki_lua_open_all(L)
        if status != LUA_OK { throw popError(status: status) }
        // The memory budget starts after the libraries are open.
        self.limits = limits
        applyLimits()
    }

    deinit {
        tenki_lua_close(L)
    }

    package var limits: LuaLimits {
        didSet { applyLimits() }
    }

    private func applyLimits() {
        tenki_lua_set_memory_limit(L, limits.memoryBytes > 0 ? memoryUsed + limits.memoryBytes : 0)
        tenki_lua_set_budget(L, limits.instructions, limits.wallClockNanoseconds)
    }

    /// Bytes currently allocated by this state.
    package var memoryUsed: Int { Int(tenki_lua_memory_used(L)) }

    /// Adds the `money` and `date` libraries (integer micro-cents with overflow checks and
    /// explicit rounding; pure UTC date helpers).
    package func openMoneyAndDate() throws {
        let status = tenki_lua_open_money(L)
        if status != LUA_OK { throw popError(status: status) }
    }

    /// Generational garbage collection: cheaper when each call makes many short-lived tables.
    package func useGenerationalGC() {
        tenki_lua_gc_generational(L)
    }

    // MARK: running code

    /// Compiles and runs a text chunk, returning its results.
    @discardableResult
    package func run(_ source: String, chunkName: String = "=chunk") throws -> [LuaValue] {
        let top = lua_gettop(L)
        try load(source, chunkName: chunkName)
        return try protectedCall(arguments: [], base: top)
    }

    /// Compiles a chunk without running it; throws a `.syntax` error with chunk and line.
    package func check(_ source: String, chunkName: String = "=chunk") throws {
        try load(source, chunkName: chunkName)
        lua_settop(L, -2)
    }

    /// Calls the global function `name` with `arguments`.
    @discardableResult
    package func call(_ name: String, _ arguments: [LuaValue] = []) throws -> [LuaValue] {
        let top = lua_gettop(L)
        try pushGlobalFunction(name, restoringTo: top)
        return try protectedCall(arguments: arguments, base: top)
    }

    /// Calls a function stored in `reference`.
    @discardableResult
    package func call(_ reference: LuaReference, _ arguments: [LuaValue] = []) throws -> [LuaValue] {
        let top = lua_gettop(L)
        try pushFunction(reference, restoringTo: top)
        return try protectedCall(arguments: arguments, base: top)
    }

    /// Pushes the global function `name` (without metamethods); on failure the stack is put
    /// back to `top`.
    func pushGlobalFunction(_ name: String, restoringTo top: Int32) throws {
        lua_rawgeti(L, TENKI_LUA_REGISTRYINDEX, lua_Integer(LUA_RIDX_GLOBALS))
        lua_pushstring(L, name)
        lua_rawget(L, -2)
        lua_rotate(L, -2, 1)
        lua_settop(L, -2)
        guard lua_type(L, -1) == LUA_TFUNCTION else {
            lua_settop(L, top)
            throw LuaError(kind: .runtime, message: "global '\(name)' is not a function")
        }
    }

    /// Pushes the function kept in `reference`; on failure the stack is put back to `top`.
    func pushFunction(_ reference: LuaReference, restoringTo top: Int32) throws {
        lua_rawgeti(L, TENKI_LUA_REGISTRYINDEX, lua_Integer(reference.id))
        guard lua_type(L, -1) == LUA_TFUNCTION else {
            lua_settop(L, top)
            throw LuaError(kind: .runtime, message: "reference is not a function")
        }
    }

    /// Calls the global function `name` and keeps its first result (any type, e.g. a function)
    /// in the registry, to be called later without a lookup.
    package func callToReference(_ name: String, _ arguments: [LuaValue]) throws -> LuaReference {
        let top = lua_gettop(L)
        try pushGlobalFunction(name, restoringTo: top)
        return try protectedCall(
            base: top,
            pushArguments: {
                try arguments.forEach { try push($0) }
                return Int32(arguments.count)
            },
            readResults: {
                lua_settop(L, top + 1)
                return LuaReference(id: Int32(luaL_ref(L, TENKI_LUA_REGISTRYINDEX)))
            })
    }

    package func release(_ reference: LuaReference) {
        luaL_unref(L, TENKI_LUA_REGISTRYINDEX, reference.id)
    }

    private func load(_ source: String, chunkName: String) throws {
        var source = source
        let status = source.withUTF8 { buffer in
            buffer.withMemoryRebound(to: CChar.self) { chars in
                tenki_lua_load_text(L, chars.baseAddress, chars.count, chunkName)
            }
        }
        if status != LUA_OK { throw popError(status: status) }
    }

    /// The function is on top of the stack; pushes arguments, calls, collects results.
    private func protectedCall(arguments: [LuaValue], base: Int32) throws -> [LuaValue] {
        try protectedCall(base: base) {
            try arguments.forEach { try push($0) }
            return Int32(arguments.count)
        }
    }

    /// The function is on top of the stack; `pushArguments` pushes them (inside a host section)
    /// and says how many; then the call runs under the budget and the results are copied out.
    func protectedCall(base: Int32, pushArguments: () throws -> Int32) throws -> [LuaValue] {
        try protectedCall(base: base, pushArguments: pushArguments) {
            let top = lua_gettop(L)
            guard top > base else { return [] }
            return try ((base + 1)...top).map { try value(at: $0) }
        }
    }

    /// The general form: results are read by `readResults` while still on the stack.
    func protectedCall<T>(base: Int32, pushArguments: () throws -> Int32, readResults: () throws -> T) throws -> T {
        let count: Int32
        do {
            count = try withHostSection(pushArguments)
        } catch {
            lua_settop(L, base)
            throw error
        }
        if tenki_lua_over_memory_limit(L) != 0 {
            lua_settop(L, base)
            throw LuaError(kind: .memory, message: "not enough memory")
        }
        let status = tenki_lua_pcall(L, count, LUA_MULTRET)
        if status != LUA_OK {
            let error = popError(status: status)
            lua_settop(L, base)
            throw error
        }
        defer { lua_settop(L, base) }
        return try withHostSection(readResults)
    }

    private func popError(status: Int32) -> LuaError {
        let raw: String
        if lua_type(L, -1) == LUA_TSTRING, let text = lua_tolstring(L, -1, nil) {
            raw = String(cString: text)
        } else {
            raw = "(error object is a \(String(cString: lua_typename(L, lua_type(L, -1)))) value)"
        }
        lua_settop(L, -2)
        let kind: LuaError.Kind
        switch tenki_lua_last_trip(L) {
        case TENKI_LUA_TRIP_INSTRUCTIONS: kind = .instructionBudget
        case TENKI_LUA_TRIP_DEADLINE: kind = .timeLimit
        default:
            switch status {
            case LUA_ERRSYNTAX: kind = .syntax
            case LUA_ERRMEM: kind = .memory
            default: kind = .runtime
            }
        }
        return LuaError.parse(kind: kind, raw: raw)
    }

    // MARK: globals and host functions

    /// Sets a global without invoking metamethods.
    package func setGlobal(_ name: String, _ value: LuaValue) throws {
        try withHostSection {
            lua_rawgeti(L, TENKI_LUA_REGISTRYINDEX, lua_Integer(LUA_RIDX_GLOBALS))
            lua_pushstring(L, name)
            do { try push(value) } catch {
                lua_settop(L, -3)
                throw error
            }
            lua_rawset(L, -3)
            lua_settop(L, -2)
        }
    }

    /// Reads a global without invoking metamethods.
    package func global(_ name: String) throws -> LuaValue {
        try withHostSection {
            lua_rawgeti(L, TENKI_LUA_REGISTRYINDEX, lua_Integer(LUA_RIDX_GLOBALS))
            lua_pushstring(L, name)
            lua_rawget(L, -2)
            defer { lua_settop(L, -3) }
            return try value(at: -1)
        }
    }

    /// Makes `function` callable from Lua as the global `name`, or as `module.name` when a
    /// module is given (the module table is created if missing).
    package func register(_ name: String, in module: String? = nil, _ function: @escaping LuaFunction) {
        let box = FunctionBox(function)
        functions.append(box)
        withHostSection {
            lua_rawgeti(L, TENKI_LUA_REGISTRYINDEX, lua_Integer(LUA_RIDX_GLOBALS))
            if let module {
                lua_pushstring(L, module)
                lua_rawget(L, -2)
                if lua_type(L, -1) != LUA_TTABLE {
                    lua_settop(L, -2)
                    lua_createtable(L, 0, 4)
                    lua_pushstring(L, module)
                    lua_pushvalue(L, -2)
                    lua_rawset(L, -4)
                }
                lua_rotate(L, -2, 1)
                lua_settop(L, -2)
            }
            lua_pushstring(L, name)
            tenki_lua_push_swift_function(L, luaSwiftTrampoline, Unmanaged.passUnretained(box).toOpaque())
            lua_rawset(L, -3)
            lua_settop(L, -2)
        }
    }

    // MARK: values

    private func withHostSection<T>(_ body: () throws -> T) rethrows -> T {
        tenki_lua_host_enter(L)
        defer { tenki_lua_host_leave(L) }
        return try body()
    }

    var stack: LuaStack { LuaStack(L: L) }

    func push(_ value: LuaValue) throws { try stack.push(value) }

    func value(at index: Int32) throws -> LuaValue { try stack.value(at: index) }
}

/// A function or value kept in a state's registry.
package struct LuaReference: Hashable, Sendable {
    package let id: Int32
}

final class FunctionBox {
    let function: LuaFunction
    init(_ function: @escaping LuaFunction) { self.function = function }
}

/// The C-callable entry for every Swift function: it runs with no Lua error able to cross it
/// and reports failure by return value; the C trampoline raises afterwards.
private let luaSwiftTrampoline: tenki_lua_swift_callback = { state, context in
    guard let state, let context else { return TENKI_LUA_RAISE }
    let box = Unmanaged<FunctionBox>.fromOpaque(context).takeUnretainedValue()
    return LuaStack(L: state).invoke(box)
}
