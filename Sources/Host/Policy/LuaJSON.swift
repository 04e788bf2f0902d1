import Foundation
import Lua

/// JSON in and out of policies: integral numbers become Lua integers, others floats; empty
/// tables become `{}`; sequences become arrays.
package enum LuaJSON {
    package static func value(fromJSON text: String) throws -> LuaValue {
        do {
            return try JSONDecoder().decode(DecodedValue.self, from: Data(text.utf8)).value
        } catch {
            throw HostError(.badRequest, "input is not valid JSON: \(error)")
        }
    }

    /// JSONDecoder keeps booleans, integers and floats apart, which Lua needs.
    private struct DecodedValue: Decodable {
        let value: LuaValue

        init(from decoder: any Decoder) throws {
            if var array = try? decoder.unkeyedContainer() {
                var items: [LuaValue] = []
                while !array.isAtEnd { items.append(try array.decode(DecodedValue.self).value) }
                value = .table(LuaTable(array: items))
                return
            }
            if let object = try? decoder.container(keyedBy: AnyKey.self) {
                var table = LuaTable()
                for key in object.allKeys { table[.string(key.stringValue)] = try object.decode(DecodedValue.self, forKey: key).value }
                value = .table(table)
                return
            }
            let single = try decoder.singleValueContainer()
            if single.decodeNil() {
                value = .nil
            } else if let b = try? single.decode(Bool.self) {
                value = .boolean(b)
            } else if let i = try? single.decode(Int64.self) {
                value = .integer(i)
            } else if let d = try? single.decode(Double.self) {
                value = .number(d)
            } else {
                value = .string(try single.decode(String.self))
            }
        }
    }

    private struct AnyKey: CodingKey {
        let stringValue: String
        var intValue: Int? { nil }
        init(stringValue: String) { self.stringValue = stringValue }
        init?(intValue: Int) { return nil }
    }

    package static func json(_ value: LuaValue) -> Any {
        switch value {
        case .nil: return NSNull()
        case .boolean(let b): return b
        case .integer(let i): return i
        case .number(let d): return d
        case .string(let s): return s
        case .table(let t):
            if t.fieldPairs.isEmpty && !t.array.isEmpty { return t.array.map(json) }
            var object: [String: Any] = [:]
            for (index, item) in t.array.enumerated() { object[String(index + 1)] = json(item) }
            for (key, item) in t.fieldPairs {
                switch key {
                case .string(let s): object[s] = json(item)
                case .integer(let i): object[String(i)] = json(item)
                default: object["\(key)"] = json(item)
                }
            }
            return object
        }
    }

    /// Compact JSON with sorted keys (stable, so equal decisions serialize equally).
    package static func text(_ value: LuaValue) -> String {
        var out = ""
        write(value, into: &out)
        return out
    }

    private static func write(_ value: LuaValue, into out: inout String) {
        switch value {
        case .nil: out += "null"
        case .boolean(let b): out += b ? "true" : "false"
        case .integer(let i): out += String(i)
        case .number(let d): out += d.isFinite ? "\(d)" : "null"
        case .string(let s): out += JSONScanner.quote(s)
        case .table(let t):
            if t.fieldPairs.isEmpty && !t.array.isEmpty {
                out += "["
                for (index, item) in t.array.enumerated() {
                    if index > 0 { out += "," }
                    write(item, into: &out)
                }
                out += "]"
                return
            }
            var members: [(String, LuaValue)] = t.array.enumerated().map { (String($0.offset + 1), $0.element) }
            for (key, item) in t.fieldPairs {
                switch key {
                case .string(let s): members.append((s, item))
                case .integer(let i): members.append((String(i), item))
                default: members.append(("\(key)", item))
                }
            }
            members.sort { $0.0 < $1.0 }
            out += "{"
            for (index, member) in members.enumerated() {
                if index > 0 { out += "," }
                out += JSONScanner.quote(member.0) + ":"
                write(member.1, into: &out)
            }
            out += "}"
        }
    }
}
