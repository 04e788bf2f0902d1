import CLibPQ
import Foundation

/// One libpq connection with a prepared-statement cache. Used from one thread at a time.
final class PostgresConnection: SQLConnection {
    let dialect = SQLDialect.postgres
    private var connection: OpaquePointer?
    private var statements: [String: String] = [:]
    private var nextStatement = 0
    let url: String

    init(url: String) throws {
        self.url = url
        try connect()
    }

    deinit { close() }

    private func connect() throws {
        close()
        guard let conn = PQconnectdb(url) else {
            throw SQLError(.connection, "cannot allocate a PostgreSQL connection")
        }
        guard PQstatus(conn) == CONNECTION_OK else {
            let message = String(cString: PQerrorMessage(conn)).trimmingCharacters(in: .whitespacesAndNewlines)
            PQfinish(conn)
            throw SQLError(.connection, "cannot connect to PostgreSQL: \(message)")
        }
        connection = conn
        statements.removeAll()
        let result = PQexec(conn, "SET client_min_messages TO warning")
        PQclear(result)
    }

    func close() {
        if let connection { PQfinish(connection) }
        connection = nil
    }

    /// Reconnects if the server dropped the connection; returns whether it is usable.
    func ensureConnected() throws {
        if connection == nil || PQstatus(connection) != CONNECTION_OK { try connect() }
    }

    func reconnect() throws { try connect() }

    var isBroken: Bool { connection == nil || PQstatus(connection) != CONNECTION_OK }

    private func error(from result: OpaquePointer?, sql: String?) -> SQLError {
        let state = result.flatMap { PQresultErrorField($0, Int32(UInt8(ascii: "C"))) }.map { String(cString: $0) }
        var message = result.flatMap { PQresultErrorMessage($0) }.map { String(cString: $0) } ?? ""
        if message.isEmpty, let connection { message = String(cString: PQerrorMessage(connection)) }
        message = message.trimmingCharacters(in: .whitespacesAndNewlines)
        let code: SQLError.Code
        switch state {
        case "40001", "40P01": code = .serializationFailure
        case .some(let s) where s.hasPrefix("23"): code = .constraintViolation
        case .some(let s) where s.hasPrefix("08") || s.hasPrefix("57P"): code = .connection
        case nil where isBroken: code = .connection
        default: code = .other
        }
        return SQLError(code, message, driverCode: state, sql: sql)
    }

    private func run(_ sql: String, _ parameters: [SQLValue]) throws -> OpaquePointer {
        guard let connection else { throw SQLError(.connection, "connection is closed", sql: sql) }
        let name: String
        if let cached = statements[sql] {
            name = cached
        } else {
            if statements.count >= SQLLimits.maxCachedStatementsPerConnection {
                PQclear(PQexec(connection, "DEALLOCATE ALL"))
                statements.removeAll()
            }
            nextStatement += 1
            name = "tenki_\(nextStatement)"
            let prepared = PQprepare(connection, name, sql, 0, nil)
            defer { PQclear(prepared) }
            guard PQresultStatus(prepared) == PGRES_COMMAND_OK else { throw error(from: prepared, sql: sql) }
            statements[sql] = name
        }
        // Text format for every parameter but blobs, which go in binary; all values in one
        // buffer (statements with thousands of parameters would otherwise allocate per value).
        var buffer: [CChar] = []
        buffer.reserveCapacity(parameters.count * 24)
        var offsets: [Int] = []
        var lengths: [Int32] = []
        var formats: [Int32] = []
        offsets.reserveCapacity(parameters.count)
        lengths.reserveCapacity(parameters.count)
        formats.reserveCapacity(parameters.count)
        func appendText<S: Sequence>(_ utf8: S) where S.Element == UInt8 {
            offsets.append(buffer.count)
            for byte in utf8 { buffer.append(CChar(bitPattern: byte)) }
            buffer.append(0)
            lengths.append(0)
            formats.append(0)
        }
        for value in parameters {
            switch value {
            case .null:
                offsets.append(-1)
                lengths.append(0)
                formats.append(0)
            case .integer(let i): appendText(String(i).utf8)
            case .double(let d): appendText("\(d)".utf8)
            case .text(let t): appendText(t.utf8)
            case .blob(let b):
                offsets.append(buffer.count)
                for byte in b { buffer.append(CChar(bitPattern: byte)) }
                buffer.append(0)
                lengths.append(Int32(b.count))
                formats.append(1)
            }
        }
        let result: OpaquePointer? = buffer.withUnsafeBufferPointer { base in
            let pointers: [UnsafePointer<CChar>?] = offsets.map { $0 < 0 ? nil : base.baseAddress! + $0 }
            return PQexecPrepared(connection, name, Int32(parameters.count), pointers, lengths, formats, 0)
        }
        guard let result else { throw error(from: nil, sql: sql) }
        let status = PQresultStatus(result)
        guard status == PGRES_COMMAND_OK || status == PGRES_TUPLES_OK else {
            let failure = error(from: result, sql: sql)
            PQclear(result)
            throw failure
        }
        return result
    }

    @discardableResult
    func execute(_ sql: String, _ parameters: [SQLValue]) throws -> Int {
        let result = try run(sql, parameters)
        defer { PQclear(result) }
        return Int(String(cString: PQcmdTuples(result))) ?? 0
    }

    func query(_ sql: String, _ parameters: [SQLValue]) throws -> [SQLRow] {
        let result = try run(sql, parameters)
        defer { PQclear(result) }
        let fieldCount = PQnfields(result)
        let columns = (0..<fieldCount).map { String(cString: PQfname(result, $0)) }
        let types = (0..<fieldCount).map { PQftype(result, $0) }
        var rows: [SQLRow] = []
        let rowCount = PQntuples(result)
        rows.reserveCapacity(Int(rowCount))
        for row in 0..<rowCount {
            var values: [SQLValue] = []
            values.reserveCapacity(Int(fieldCount))
            for field in 0..<fieldCount {
                if PQgetisnull(result, row, field) != 0 {
                    values.append(.null)
                    continue
                }
                let length = Int(PQgetlength(result, row, field))
                let raw = PQgetvalue(result, row, field)!
                let text = String(decoding: UnsafeRawBufferPointer(start: raw, count: length), as: UTF8.self)
                switch types[Int(field)] {
                case 16: values.append(.integer(text == "t" ? 1 : 0))  // bool
                case 20, 21, 23, 26: values.append(.integer(Int64(text) ?? 0))  // int8, int2, int4, oid
                case 700, 701: values.append(.double(Double(text) ?? 0))  // float4, float8
                case 17: values.append(.blob(PostgresConnection.decodeByteaHex(text)))
                default: values.append(.text(text))
                }
            }
            rows.append(SQLRow(columns: columns, values: values))
        }
        return rows
    }

    func executeScript(_ sql: String) throws {
        guard let connection else { throw SQLError(.connection, "connection is closed", sql: sql) }
        let result = PQexec(connection, sql)
        defer { PQclear(result) }
        let status = PQresultStatus(result)
        guard status == PGRES_COMMAND_OK || status == PGRES_TUPLES_OK else { throw error(from: result, sql: sql) }
    }

    /// bytea's text output: `\x` followed by hex digits.
    static func decodeByteaHex(_ text: String) -> [UInt8] {
        var bytes: [UInt8] = []
        let utf8 = Array(text.utf8.dropFirst(2))
        bytes.reserveCapacity(utf8.count / 2)
        func nibble(_ c: UInt8) -> UInt8 {
            switch c {
            case 48...57: return c - 48
            case 97...102: return c - 87
            case 65...70: return c - 55
            default: return 0
            }
        }
        var i = 0
        while i + 1 < utf8.count {
            bytes.append(nibble(utf8[i]) << 4 | nibble(utf8[i + 1]))
            i += 2
        }
        return bytes
    }
}
