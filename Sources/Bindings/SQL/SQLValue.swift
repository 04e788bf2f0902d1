/// A value bound to a query parameter or read from a column.
package enum SQLValue: Sendable, Hashable {
    case null
    case integer(Int64)
    case double(Double)
    case text(String)
    case blob([UInt8])

    package var isNull: Bool { if case .null = self { return true } else { return false } }
}

extension SQLValue: ExpressibleByIntegerLiteral, ExpressibleByStringLiteral, ExpressibleByNilLiteral,
    ExpressibleByFloatLiteral
{
    package init(integerLiteral value: Int64) { self = .integer(value) }
    package init(stringLiteral value: String) { self = .text(value) }
    package init(nilLiteral: ()) { self = .null }
    package init(floatLiteral value: Double) { self = .double(value) }
}

extension SQLValue {
    package init(_ value: Int) { self = .integer(Int64(value)) }
    package init(_ value: Int64) { self = .integer(value) }
    package init(_ value: String?) { self = value.map { .text($0) } ?? .null }
    package init(_ value: [UInt8]) { self = .blob(value) }
    package init(_ value: Bool) { self = .integer(value ? 1 : 0) }
}

/// One result row, with typed accessors that fail with the column's name.
package struct SQLRow: Sendable {
    package let columns: [String]
    package let values: [SQLValue]

    package init(columns: [String], values: [SQLValue]) {
        self.columns = columns
        self.values = values
    }

    package subscript(_ column: String) -> SQLValue {
        guard let index = columns.firstIndex(of: column) else { return .null }
        return values[index]
    }

    private func mismatch(_ column: String, _ expected: String) -> SQLError {
        SQLError(.typeMismatch, "column '\(column)' is \(self[column]), expected \(expected)")
    }

    package func int(_ column: String) throws -> Int64 {
        switch self[column] {
        case .integer(let i): return i
        case .text(let t): if let i = Int64(t) { return i }
        default: break
        }
        throw mismatch(column, "an integer")
    }

    package func optionalInt(_ column: String) throws -> Int64? {
        self[column].isNull ? nil : try int(column)
    }

    package func string(_ column: String) throws -> String {
        switch self[column] {
        case .text(let t): return t
        case .integer(let i): return String(i)
        case .blob(let b): return String(decoding: b, as: UTF8.self)
        default: throw mismatch(column, "text")
        }
    }

    package func optionalString(_ column: String) throws -> String? {
        self[column].isNull ? nil : try string(column)
    }

    package func bytes(_ column: String) throws -> [UInt8] {
        switch self[column] {
        case .blob(let b): return b
        case .text(let t): return Array(t.utf8)
        default: throw mismatch(column, "a blob")
        }
    }

    package func bool(_ column: String) throws -> Bool { try int(column) != 0 }
}
