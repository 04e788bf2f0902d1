/// A Lua value copied out of (or into) a Lua state. Integers and floats stay distinct, as in
/// Lua 5.4: `1` is `.integer(1)`, `1.0` is `.number(1.0)`.
public indirect enum LuaValue: Hashable, Sendable {
    case `nil`
    case boolean(Bool)
    case integer(Int64)
    case number(Double)
    case string(String)
    case table(LuaTable)

    /// Lua's type name for the value.
    public var typeName: String {
        switch self {
        case .nil: return "nil"
        case .boolean: return "boolean"
        case .integer, .number: return "number"
        case .string: return "string"
        case .table: return "table"
        }
    }

    public var isNil: Bool { if case .nil = self { return true } else { return false } }
    public var stringValue: String? { if case .string(let s) = self { return s } else { return nil } }
    public var integerValue: Int64? { if case .integer(let i) = self { return i } else { return nil } }
    public var boolValue: Bool? { if case .boolean(let b) = self { return b } else { return nil } }
    public var tableValue: LuaTable? { if case .table(let t) = self { return t } else { return nil } }

    /// Field access on a table value; `.nil` for anything else or a missing key.
    public subscript(key: String) -> LuaValue {
        tableValue?[.string(key)] ?? .nil
    }

    /// Sequence access (1-based, as in Lua) on a table value.
    public subscript(index: Int) -> LuaValue {
        tableValue?[.integer(Int64(index))] ?? .nil
    }
}

/// A Lua table as a value: its sequence part (keys 1...n) and its other fields.
public struct LuaTable: Hashable, Sendable {
    public var array: [LuaValue]
    public var fields: [LuaValue: LuaValue]

    public init(array: [LuaValue] = [], fields: [LuaValue: LuaValue] = [:]) {
        self.array = array
        self.fields = fields
    }

    public subscript(key: LuaValue) -> LuaValue {
        get {
            if case .integer(let i) = key, i >= 1, i <= array.count { return array[Int(i) - 1] }
            return fields[key] ?? .nil
        }
        set {
            if case .integer(let i) = key, i >= 1, i <= array.count {
                array[Int(i) - 1] = newValue
                return
            }
            if case .integer(let i) = key, i == array.count + 1, !newValue.isNil {
                array.append(newValue)
                // Absorb following integer keys into the sequence part.
                while let next = fields.removeValue(forKey: .integer(Int64(array.count + 1))) {
                    array.append(next)
                }
                return
            }
            fields[key] = newValue.isNil ? nil : newValue
        }
    }

    /// Number of entries in both parts.
    public var count: Int { array.count + fields.count }
}

extension LuaValue: ExpressibleByNilLiteral, ExpressibleByBooleanLiteral, ExpressibleByIntegerLiteral,
    ExpressibleByFloatLiteral, ExpressibleByStringLiteral, ExpressibleByArrayLiteral,
    ExpressibleByDictionaryLiteral
{
    public init(nilLiteral: ()) { self = .nil }
    public init(booleanLiteral value: Bool) { self = .boolean(value) }
    public init(integerLiteral value: Int64) { self = .integer(value) }
    public init(floatLiteral value: Double) { self = .number(value) }
    public init(stringLiteral value: String) { self = .string(value) }
    public init(arrayLiteral elements: LuaValue...) { self = .table(LuaTable(array: elements)) }
    public init(dictionaryLiteral elements: (LuaValue, LuaValue)...) {
        var table = LuaTable()
        for (key, value) in elements { table[key] = value }
        self = .table(table)
    }
}
