import Foundation

/// Any JSON value, for workflow inputs, outputs and signals whose shape is not a Swift type.
package enum JSONValue: Sendable, Hashable, Codable, CustomStringConvertible {
    case null
    case bool(Bool)
    case number(Double)
    case string(String)
    case array([JSONValue])
    case object([String: JSONValue])

    package init(from decoder: any Decoder) throws {
        let container = try decoder.singleValueContainer()
        if container.decodeNil() {
            self = .null
        } else if let value = try? container.decode(Bool.self) {
            self = .bool(value)
        } else if let value = try? container.decode(Double.self) {
            self = .number(value)
        } else if let value = try? container.decode(String.self) {
            self = .string(value)
        } else if let value = try? container.decode([JSONValue].self) {
            self = .array(value)
        } else {
            self = .object(try container.decode([String: JSONValue].self))
        }
    }

    package func encode(to encoder: any Encoder) throws {
        var container = encoder.singleValueContainer()
        switch self {
        case .null: try container.encodeNil()
        case .bool(let value): try container.encode(value)
        case .number(let value):
            if value.rounded() == value, abs(value) < 9e15 { try container.encode(Int64(value)) } else { try container.encode(value) }
        case .string(let value): try container.encode(value)
        case .array(let value): try container.encode(value)
        case .object(let value): try container.encode(value)
        }
    }

    package subscript(_ key: String) -> JSONValue? {
        if case .object(let members) = self { return members[key] }
        return nil
    }

    package var stringValue: String? { if case .string(let s) = self { return s } else { return nil } }
    package var intValue: Int? { if case .number(let n) = self, n.rounded() == n { return Int(n) } else { return nil } }
    package var boolValue: Bool? { if case .bool(let b) = self { return b } else { return nil } }

    /// Compact JSON text with sorted keys.
    package var description: String { String(decoding: (try? WorkflowJSON.encode(self)) ?? Array("null".utf8), as: UTF8.self) }
}

/// The one place workflow values become JSON bytes and back: sorted keys, ISO 8601 dates,
/// errors that say which type did not decode.
package enum WorkflowJSON {
    package static func encode<T: Encodable>(_ value: T) throws -> [UInt8] {
        Array(try JSONCoding.encoder().encode(value))
    }

    package static func decode<T: Decodable>(_ type: T.Type, from bytes: [UInt8], what: String) throws -> T {
        let decoder = JSONDecoder()
        decoder.dateDecodingStrategy = .iso8601
        do {
            return try decoder.decode(type, from: Data(bytes))
        } catch {
            throw HostError(.badRequest, "\(what) does not decode as \(T.self): \(describe(error))")
        }
    }

    /// Checks `text` is one JSON value and returns it compacted (sorted keys).
    package static func validate(_ text: String, what: String) throws -> [UInt8] {
        guard let data = text.data(using: .utf8),
            let object = try? JSONSerialization.jsonObject(with: data, options: [.fragmentsAllowed])
        else {
            throw HostError(.badRequest, "\(what) is not valid JSON: \(text.prefix(80))")
        }
        return Array(try JSONSerialization.data(withJSONObject: object, options: [.sortedKeys, .fragmentsAllowed, .withoutEscapingSlashes]))
    }

    static func describe(_ error: any Error) -> String {
        switch error {
        case DecodingError.keyNotFound(let key, let context):
            return "missing '\(path(context.codingPath + [key]))'"
        case DecodingError.typeMismatch(let type, let context), DecodingError.valueNotFound(let type, let context):
            return "'\(path(context.codingPath))' should be \(type)"
        case DecodingError.dataCorrupted(let context):
            return "\(context.debugDescription) at '\(path(context.codingPath))'"
        default:
            return "\(error)"
        }
    }

    private static func path(_ keys: [any CodingKey]) -> String {
        keys.map { $0.intValue.map { "[\($0)]" } ?? $0.stringValue }.joined(separator: ".")
    }
}
