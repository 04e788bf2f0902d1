import CLua
import CLuaShim

/// Moves values across one Lua stack (a state or a coroutine's thread). Callers are inside a
/// host section, so pushing never raises through Swift.
struct LuaStack {
    let L: OpaquePointer

    /// Pushes a Swift value (inside a host section, so the allocator never raises).
    func push(_ value: LuaValue, depth: Int = 0) throws {
        guard depth <= LuaState.maxTableDepth else {
            throw LuaError(kind: .conversion, message: "table nested deeper than \(LuaState.maxTableDepth)")
        }
        guard lua_checkstack(L, 4) != 0 else { throw LuaError(kind: .memory, message: "Lua stack overflow") }
        switch value {
        case .nil: lua_pushnil(L)
        case .boolean(let b): lua_pushboolean(L, b ? 1 : 0)
        case .integer(let i): lua_pushinteger(L, lua_Integer(i))
        case .number(let d): lua_pushnumber(L, d)
        case .string(let s):
            var s = s
            s.withUTF8 { buffer in
                buffer.withMemoryRebound(to: CChar.self) { _ = lua_pushlstring(L, $0.baseAddress, $0.count) }
            }
        case .table(let table):
            lua_createtable(L, Int32(clamping: table.array.count), Int32(clamping: table.fieldPairs.count))
            for (index, element) in table.array.enumerated() {
                try push(element, depth: depth + 1)
                lua_rawseti(L, -2, lua_Integer(index + 1))
            }
            for (key, element) in table.fieldPairs {
                switch key {
                case .nil: throw LuaError(kind: .conversion, message: "table key is nil")
                case .number(let d) where d.isNaN: throw LuaError(kind: .conversion, message: "table key is NaN")
                default: break
                }
                try push(key, depth: depth + 1)
                try push(element, depth: depth + 1)
                lua_rawset(L, -3)
            }
        }
    }

    /// Copies the value at `index` out of Lua.
    func value(at index: Int32, depth: Int = 0) throws -> LuaValue {
        let index = lua_absindex(L, index)
        switch lua_type(L, index) {
        case LUA_TNIL, LUA_TNONE: return .nil
        case LUA_TBOOLEAN: return .boolean(lua_toboolean(L, index) != 0)
        case LUA_TNUMBER:
            if lua_isinteger(L, index) != 0 { return .integer(Int64(lua_tointegerx(L, index, nil))) }
            return .number(Double(lua_tonumberx(L, index, nil)))
        case LUA_TSTRING:
            var length = 0
            guard let chars = lua_tolstring(L, index, &length) else { return .string("") }
            let bytes = UnsafeRawBufferPointer(start: chars, count: length)
            return .string(String(decoding: bytes, as: UTF8.self))
        case LUA_TTABLE:
            guard depth < LuaState.maxTableDepth else {
                throw LuaError(kind: .conversion, message: "table nested deeper than \(LuaState.maxTableDepth) (or contains a cycle)")
            }
            // A cycle recurses until the depth limit and fails there: no set of visited tables
            // to build on every conversion.
            guard lua_checkstack(L, 4) != 0 else { throw LuaError(kind: .memory, message: "Lua stack overflow") }
            var pairs: [(key: LuaValue, value: LuaValue)] = []
            var integerKeys = 0
            lua_pushnil(L)
            while lua_next(L, index) != 0 {
                let key: LuaValue
                let element: LuaValue
                do {
                    key = try value(at: -2, depth: depth + 1)
                    element = try value(at: -1, depth: depth + 1)
                } catch {
                    lua_settop(L, -3)
                    throw error
                }
                lua_settop(L, -2)
                if case .integer = key { integerKeys += 1 }
                pairs.append((key: key, value: element))
            }
            // Rebuild the sequence part in order, whatever order lua_next gave.
            var array: [LuaValue] = []
            if integerKeys > 0 {
                var byIndex: [Int64: LuaValue] = [:]
                var rest: [(key: LuaValue, value: LuaValue)] = []
                for pair in pairs {
                    if case .integer(let i) = pair.key { byIndex[i] = pair.value } else { rest.append(pair) }
                }
                var next: Int64 = 1
                while let element = byIndex.removeValue(forKey: next) {
                    array.append(element)
                    next += 1
                }
                for (key, element) in byIndex { rest.append((key: .integer(key), value: element)) }
                pairs = rest
            }
            let table = LuaTable(array: array, pairs: pairs)
            return .table(table)
        default:
            let name = String(cString: lua_typename(L, lua_type(L, index)))
            throw LuaError(kind: .conversion, message: "a \(name) value cannot leave Lua")
        }
    }

    func invoke(_ box: FunctionBox) -> Int32 {
        do {
            let top = lua_gettop(L)
            let arguments = top > 0 ? try (1...top).map { try value(at: $0) } : []
            let results = try box.function(arguments)
            guard lua_checkstack(L, Int32(results.count) + 4) != 0 else {
                throw LuaError(kind: .memory, message: "Lua stack overflow")
            }
            for result in results { try push(result) }
            return Int32(results.count)
        } catch {
            let message: String
            if let luaError = error as? LuaError { message = luaError.message } else { message = "\(error)" }
            lua_settop(L, 0)
            luaL_where(L, 1)
            lua_pushstring(L, message)
            lua_concat(L, 2)
            return TENKI_LUA_RAISE
        }
    }
}
