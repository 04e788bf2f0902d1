/// A Lua value copied out of (or into) a Lua state. Integers and floats stay distinct, as in
/// Lua 5.4: `1` is `.integer(1)`, `1.0` is `.number(1.0)`.
package indirect enum LuaValue: Hashable, Sendable {
    case `nil`
    case boolean(Bool)
    case integer(Int64)
    case number(Double)
    case string(String)
    case table(LuaTable)

    /// Lua's type name for the value.
    package var typeName: String {
        switch self {
        case .nil: return "nil"
        case .boolean: return "boolean"
        case .integer, .number: return "number"
        case .string: return "string"
        case .table: return "table"
        }
    }

    package var isNil: Bool { if case .nil = self { return true } else { return false } }
    package var stringValue: String? { if case .string(let s) = self { return s } else { return nil } }
    package var integerValue: Int64? { if case .integer(let i) = self { return i } else { return nil } }
    package var boolValue: Bool? { if case .boolean(let b) = self { return b } else { return nil } }
    package var tableValue: LuaTable? { if case .table(let t) = self { return t } else { return nil } }

    /// Field access on a table value; `.nil` for anything else or a missing key.
    package subscript(key: String) -> LuaValue {
        tableValue?[.string(key)] ?? .nil
    }

    /// Sequence access (1-based, as in Lua) on a table value.
    package subscript(index: Int) -> LuaValue {
        tableValue?[.integer(Int64(index))] ?? .nil
    }
}

/// A Lua table as a value: its sequence part (keys 1...n) and its other fields. Fields are kept
/// as a small list of pairs (policy tables have few), which is faster to build and search than
/// a hash table; equality ignores their order.
package struct LuaTable: Hashable, Sendable {
    package var array: [LuaValue]
    package private(set) var fieldPairs: [(key: LuaValue, value: LuaValue)]

    package init(array: [LuaValue] = [], fields: [LuaValue: LuaValue] = [:]) {
        self.array = array
        self.fieldPairs = fields.map { (key: $0.key, value: $0.value) }
    }

    init(array: [LuaValue], pairs: [(key: LuaValue, value: LuaValue)]) {
        self.array = array
        self.fieldPairs = pairs
    }

    /// The non-sequence fields as a dictionary.
    package var fields: [LuaValue: LuaValue] {
        get { Dictionary(fieldPairs, uniquingKeysWith: { $1 }) }
        set { fieldPairs = newValue.map { (key: $0.key, value: $0.value) } }
    }

    private func fieldIndex(_ key: LuaValue) -> Int? {
        fieldPairs.firstIndex { $0.key == key }
    }

    package subscript(key: LuaValue) -> LuaValue {
        get {
            if case .integer(let i) = key, i >= 1, i <= array.count { return array[Int(i) - 1] }
            return fieldIndex(key).map { fieldPairs[$0].value } ?? .nil
        }
        set {
            if case .integer(let i) = key, i >= 1, i <= array.count {
                array[Int(i) - 1] = newValue
                return
            }
            if case .integer(let i) = key, i == array.count + 1, !newValue.isNil {
                array.append(newValue)
                // Absorb following integer keys into the sequence part.
                while let index = fieldIndex(.integer(Int64(array.count + 1))) {
                    array.append(fieldPairs.remove(at: index).value)
                }
                return
            }
            if let index = fieldIndex(key) {
                if newValue.isNil { fieldPairs.remove(at: index) } else { fieldPairs[index].value = newValue }
            } else if !newValue.isNil {
                fieldPairs.append((key: key, value: newValue))
            }
        }
    }

    /// Number of entries in both parts.
    package var count: Int { array.count + fieldPairs.count }

    package static func == (a: LuaTable, b: LuaTable) -> Bool {
        guard a.array == b.array, a.fieldPairs.count == b.fieldPairs.count else { return false }
        return a.fieldPairs.allSatisfy { pair in b[pair.key] == pair.value }
    }

    package func hash(into hasher: inout Hasher) {
        hasher.combine(array)
        hasher.combine(fieldPairs.count)
    }
}

extension LuaValue: ExpressibleByNilLiteral, ExpressibleByBooleanLiteral, ExpressibleByIntegerLiteral,
    ExpressibleByFloatLiteral, ExpressibleByStringLiteral, ExpressibleByArrayLiteral,
    ExpressibleByDictionaryLiteral
{
    package init(nilLiteral: ()) { self = .nil }
    package init(booleanLiteral value: Bool) { self = .boolean(value) }
    package init(integerLiteral value: Int64) { self = .integer(value) }
    package init(floatLiteral value: Double) { self = .number(value) }
    package init(stringLiteral value: String) { self = .string(value) }
    package init(arrayLiteral elements: LuaValue...) { self = .table(LuaTable(array: elements)) }
    package init(dictionaryLiteral elements: (LuaValue, LuaValue)...) {
        var table = LuaTable()
        for (key, value) in elements { table[key] = value }
        self = .table(table)
    }
}
