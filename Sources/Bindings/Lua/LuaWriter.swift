import CLua
import CLuaShim

/// Builds a Lua argument in place on the stack, without an intermediate `LuaValue` tree: the
/// fast path for decisions evaluated hundreds of thousands of times a second. Used only inside
/// `LuaState.call(_:writing:)`, inside a host section, so pushing never raises through Swift.
package struct LuaWriter {
    let L: OpaquePointer

    /// Pushes a new table and fills it with `body`; leaves it on the stack.
    package func table(arrayCount: Int = 0, fieldCount: Int = 0, _ body: (LuaWriter) throws -> Void) rethrows {
        _ = lua_checkstack(L, 8)
        lua_createtable(L, Int32(arrayCount), Int32(fieldCount))
        try body(self)
    }

    private func key(_ name: String) {
        var name = name
        name.withUTF8 { $0.withMemoryRebound(to: CChar.self) { _ = lua_pushlstring(L, $0.baseAddress, $0.count) } }
    }

    package func set(_ name: String, _ value: Int64) {
        key(name)
        lua_pushinteger(L, lua_Integer(value))
        lua_rawset(L, -3)
    }

    package func set(_ name: String, _ value: Bool) {
        key(name)
        lua_pushboolean(L, value ? 1 : 0)
        lua_rawset(L, -3)
    }

    package func set(_ name: String, _ value: String?) {
        guard let value else { return }
        key(name)
        key(value)
        lua_rawset(L, -3)
    }

    /// `name = { strings... }`
    package func set(_ name: String, strings: [String]) {
        key(name)
        lua_createtable(L, Int32(strings.count), 0)
        for (index, string) in strings.enumerated() {
            key(string)
            lua_rawseti(L, -2, lua_Integer(index + 1))
        }
        lua_rawset(L, -3)
    }

    /// `name = { ... }` built by `body`.
    package func set(_ name: String, table body: (LuaWriter) throws -> Void) rethrows {
        key(name)
        lua_createtable(L, 0, 4)
        try body(self)
        lua_rawset(L, -3)
    }

    // The same setters with cached keys (the hot path).

    package func set(_ key: LuaKey, _ value: Int64) {
        key.push(L)
        lua_pushinteger(L, lua_Integer(value))
        lua_rawset(L, -3)
    }

    package func set(_ key: LuaKey, _ value: Bool) {
        key.push(L)
        lua_pushboolean(L, value ? 1 : 0)
        lua_rawset(L, -3)
    }

    package func set(_ key: LuaKey, _ value: String?) {
        guard let value else { return }
        key.push(L)
        self.key(value)
        lua_rawset(L, -3)
    }

    package func set(_ key: LuaKey, strings: [String]) {
        key.push(L)
        lua_createtable(L, Int32(strings.count), 0)
        for (index, string) in strings.enumerated() {
            self.key(string)
            lua_rawseti(L, -2, lua_Integer(index + 1))
        }
        lua_rawset(L, -3)
    }

    package func set(_ key: LuaKey, fieldCount: Int = 4, table body: (LuaWriter) throws -> Void) rethrows {
        key.push(L)
        lua_createtable(L, 0, Int32(fieldCount))
        try body(self)
        lua_rawset(L, -3)
    }

    /// Any value, through the general converter.
    package func set(_ name: String, value: LuaValue) throws {
        key(name)
        try LuaStack(L: L).push(value)
        lua_rawset(L, -3)
    }
}

extension LuaState {
    /// Calls a referenced function with one argument built by `writing`, returning its first result.
    package func call(_ reference: LuaReference, writing: (LuaWriter) throws -> Void) throws -> LuaValue {
        let top = lua_gettop(L)
        try pushFunction(reference, restoringTo: top)
        return try protectedCall(base: top) {
            try writing(LuaWriter(L: L))
            return 1
        }.first ?? .nil
    }
}

/// Reads a result table in place on the stack, without copying it into a `LuaValue` tree: the
/// fast path for decision results. Valid only inside `LuaState.call(_:writing:reading:)`.
package struct LuaReader {
    let L: OpaquePointer
    /// Absolute stack index of the table.
    let index: Int32

    /// One field's value, for scalars.
    package enum Scalar: Equatable {
        case `nil`, boolean(Bool), integer(Int64), number(Double), string(String), table, other(String)
    }

    private func pushField(_ name: String) {
        _ = lua_checkstack(L, 4)
        var name = name
        name.withUTF8 { $0.withMemoryRebound(to: CChar.self) { _ = lua_pushlstring(L, $0.baseAddress, $0.count) } }
        lua_rawget(L, index)
    }

    private func pushField(_ key: LuaKey) {
        _ = lua_checkstack(L, 4)
        key.push(L)
        lua_rawget(L, index)
    }

    private func scalarOnTop() -> Scalar {
        switch lua_type(L, -1) {
        case LUA_TNIL, LUA_TNONE: return .nil
        case LUA_TBOOLEAN: return .boolean(lua_toboolean(L, -1) != 0)
        case LUA_TNUMBER:
            return lua_isinteger(L, -1) != 0 ? .integer(Int64(lua_tointegerx(L, -1, nil))) : .number(Double(lua_tonumberx(L, -1, nil)))
        case LUA_TSTRING:
            var length = 0
            let chars = lua_tolstring(L, -1, &length)!
            return .string(String(decoding: UnsafeRawBufferPointer(start: chars, count: length), as: UTF8.self))
        case LUA_TTABLE: return .table
        default: return .other(String(cString: lua_typename(L, lua_type(L, -1))))
        }
    }

    /// The field `name` as a scalar (`.table` for tables: read those with `table(_:_:)`).
    package subscript(_ name: String) -> Scalar {
        pushField(name)
        defer { lua_settop(L, -2) }
        return scalarOnTop()
    }

    /// The field `key` as a scalar.
    package subscript(_ key: LuaKey) -> Scalar {
        pushField(key)
        defer { lua_settop(L, -2) }
        return scalarOnTop()
    }

    /// The integer in field `key`, without building a `Scalar` (nil for any other type, floats included).
    package func integer(_ key: LuaKey) -> Int64? {
        pushField(key)
        defer { lua_settop(L, -2) }
        // lua_isinteger, not lua_tointegerx: the latter accepts 3.0 (and "3"), and a float where an
        // integer belongs must stay an error.
        guard lua_isinteger(L, -1) != 0 else { return nil }
        return Int64(lua_tointegerx(L, -1, nil))
    }

    /// Reads the table in field `key` with `body`; nil when the field is not a table.
    package func table<T>(_ key: LuaKey, _ body: (LuaReader) throws -> T) rethrows -> T? {
        pushField(key)
        defer { lua_settop(L, -2) }
        guard lua_type(L, -1) == LUA_TTABLE else { return nil }
        return try body(LuaReader(L: L, index: lua_gettop(L)))
    }

    /// Reads the table in field `name` with `body`; nil when the field is not a table.
    package func table<T>(_ name: String, _ body: (LuaReader) throws -> T) rethrows -> T? {
        pushField(name)
        defer { lua_settop(L, -2) }
        guard lua_type(L, -1) == LUA_TTABLE else { return nil }
        return try body(LuaReader(L: L, index: lua_gettop(L)))
    }

    /// Visits the tables at 1, 2, ... until the first non-table; returns how many.
    @discardableResult
    package func forEachTable(_ body: (LuaReader) throws -> Void) rethrows -> Int {
        var i: lua_Integer = 1
        while true {
            _ = lua_checkstack(L, 4)
            lua_rawgeti(L, index, i)
            guard lua_type(L, -1) == LUA_TTABLE else {
                lua_settop(L, -2)
                return Int(i - 1)
            }
            defer { lua_settop(L, -2) }
            try body(LuaReader(L: L, index: lua_gettop(L)))
            i += 1
        }
    }

    /// Whether the value itself is a table (the reader of a non-table result has index 0).
    package var isTable: Bool { index != 0 }

    /// Copies the whole value out (slow path, for records and errors).
    package func value() throws -> LuaValue {
        try LuaStack(L: L).value(at: index)
    }
}

extension LuaState {
    /// Calls a referenced function with one argument built by `writing`, and reads its first
    /// result in place with `reading`.
    package func call<T>(_ reference: LuaReference, writing: (LuaWriter) throws -> Void, reading: (LuaReader) throws -> T) throws -> T {
        let top = lua_gettop(L)
        try pushFunction(reference, restoringTo: top)
        return try protectedCall(
            base: top,
            pushArguments: {
                try writing(LuaWriter(L: L))
                return 1
            },
            readResults: {
                let isTable = lua_type(L, top + 1) == LUA_TTABLE
                return try reading(LuaReader(L: L, index: isTable ? top + 1 : 0))
            })
    }
}
