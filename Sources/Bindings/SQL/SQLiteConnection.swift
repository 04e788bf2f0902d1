import CSQLite
import CSQLiteShim
import Foundation

private let SQLITE_TRANSIENT = unsafeBitCast(-1, to: sqlite3_destructor_type.self)

/// One SQLite connection with a prepared-statement cache. Used from one thread at a time.
final class SQLiteConnection: SQLConnection {
    let dialect = SQLDialect.sqlite
    private var handle: OpaquePointer?
    private var statements: [String: OpaquePointer] = [:]

    init(path: String, readOnly: Bool) throws {
        let flags =
            readOnly
            ? SQLITE_OPEN_READONLY | SQLITE_OPEN_NOMUTEX
            : SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_NOMUTEX
        // Writers gather each commit's WAL writes into one (see tenki_sqlite_vfs.c).
        var vfs: String? = nil
        if !readOnly {
            guard let name = SQLiteConnection.walBufferingVFS else {
                throw SQLError(.connection, "cannot register the WAL-buffering SQLite VFS")
            }
            vfs = name
        }
        var db: OpaquePointer?
        let rc = sqlite3_open_v2(path, &db, flags, vfs)
        guard rc == SQLITE_OK, let db else {
            let message = db.map { String(cString: sqlite3_errmsg($0)) } ?? "cannot open"
            sqlite3_close_v2(db)
            throw SQLError(.connection, "cannot open SQLite database '\(path)': \(message)", driverCode: "\(rc)")
        }
        handle = db
        sqlite3_extended_result_codes(db, 1)
        sqlite3_busy_timeout(db, SQLLimits.sqliteBusyTimeoutMilliseconds)
        if !readOnly {
            // WAL lets readers run beside the writer; FULL syncs the WAL on every commit, so a
            // committed transaction survives power loss. Savepoint and statement journals only
            // undo work inside an open transaction (never read after a crash): in memory they
            // cost a copy instead of a write to a temporary file.
            _ = try query("PRAGMA journal_mode=WAL")
            try executeScript(
                """
                PRAGMA synchronous=FULL; PRAGMA foreign_keys=ON; PRAGMA cache_size=-\(SQLLimits.sqliteWriterCacheKibibytes);
                PRAGMA temp_store=MEMORY;
                """)
        } else {
            try executeScript("PRAGMA foreign_keys=ON;")
        }
    }

    deinit { close() }

    /// The WAL-buffering VFS's name once registered (nil if that failed).
    private static let walBufferingVFS: String? = {
        tenki_sqlite_register_vfs() == SQLITE_OK ? String(cString: tenki_sqlite_vfs_name) : nil
    }()

    /// Whether no transaction is open (SQLite rolled it back, or none was begun).
    var isAutocommit: Bool { handle.map { sqlite3_get_autocommit($0) != 0 } ?? true }

    /// Stops SQLite from checkpointing inside commits and reports WAL growth instead: the
    /// callback gets the WAL's page count after each commit (see `SQLiteDatabase`).
    func onWALCommit(
        context: UnsafeMutableRawPointer,
        _ callback: @convention(c) (UnsafeMutableRawPointer?, OpaquePointer?, UnsafePointer<CChar>?, Int32) -> Int32
    ) {
        sqlite3_wal_hook(handle, callback, context)
    }

    /// A checkpoint that never blocks writers or readers; copies what it can. Returns how many of
    /// the WAL's frames are now copied to the database file.
    @discardableResult
    func passiveCheckpoint() -> Int {
        var copied: Int32 = 0
        sqlite3_wal_checkpoint_v2(handle, nil, SQLITE_CHECKPOINT_PASSIVE, nil, &copied)
        return Int(copied)
    }

    func close() {
        for (_, statement) in statements { sqlite3_finalize(statement) }
        statements.removeAll()
        if let handle { sqlite3_close_v2(handle) }
        handle = nil
    }

    private func error(_ rc: Int32, sql: String?) -> SQLError {
        let message = handle.map { String(cString: sqlite3_errmsg($0)) } ?? "closed"
        let primary = rc & 0xff
        let code: SQLError.Code
        switch primary {
        case SQLITE_BUSY, SQLITE_LOCKED: code = .busy
        case SQLITE_CONSTRAINT: code = .constraintViolation
        case SQLITE_CANTOPEN, SQLITE_NOTADB, SQLITE_IOERR, SQLITE_CORRUPT: code = .connection
        default: code = .other
        }
        return SQLError(code, message, driverCode: "SQLITE \(rc)", sql: sql)
    }

    private func prepare(_ sql: String) throws -> OpaquePointer {
        if let cached = statements[sql] { return cached }
        // SQLite built without API armor dereferences a null handle: a closed connection is gone.
        guard handle != nil else { throw SQLError(.connection, "connection is closed", sql: sql) }
        if statements.count >= SQLLimits.maxCachedStatementsPerConnection {
            for (_, statement) in statements { sqlite3_finalize(statement) }
            statements.removeAll()
        }
        var statement: OpaquePointer?
        let rc = sqlite3_prepare_v3(
            handle, SQLiteConnection.rewritePlaceholders(sql), -1,
            UInt32(SQLITE_PREPARE_PERSISTENT), &statement, nil)
        guard rc == SQLITE_OK, let statement else { throw error(rc, sql: sql) }
        statements[sql] = statement
        return statement
    }

    /// `$1` → `?1` outside string literals and quoted identifiers; when the placeholders are
    /// exactly `$1, $2, ... $n` in order, plain `?` (SQLite looks numbered ones up linearly,
    /// which costs quadratic time in statements with thousands of parameters).
    static func rewritePlaceholders(_ sql: String) -> String {
        // Bytes, not Characters: statements with thousands of placeholders are rewritten often.
        let bytes = Array(sql.utf8)
        var numbered: [UInt8] = []
        var plain: [UInt8] = []
        numbered.reserveCapacity(bytes.count)
        plain.reserveCapacity(bytes.count)
        let dollar = UInt8(ascii: "$")
        let question = UInt8(ascii: "?")
        let zero = UInt8(ascii: "0")
        let nine = UInt8(ascii: "9")
        var quote: UInt8 = 0
        var count = 0
        var sequential = true
        var i = 0
        while i < bytes.count {
            let byte = bytes[i]
            i += 1
            if quote != 0 {
                if byte == quote { quote = 0 }
            } else if byte == UInt8(ascii: "'") || byte == UInt8(ascii: "\"") {
                quote = byte
            } else if byte == dollar {
                numbered.append(question)
                plain.append(question)
                var number = 0
                let start = i
                while i < bytes.count, bytes[i] >= zero, bytes[i] <= nine {
                    numbered.append(bytes[i])
                    number = number &* 10 &+ Int(bytes[i] - zero)
                    i += 1
                }
                count += 1
                if i == start || number != count { sequential = false }
                continue
            }
            numbered.append(byte)
            plain.append(byte)
        }
        return String(decoding: sequential && count > 0 ? plain : numbered, as: UTF8.self)
    }

    private func bind(_ statement: OpaquePointer, _ parameters: [SQLValue], sql: String) throws {
        let expected = Int(sqlite3_bind_parameter_count(statement))
        guard expected <= parameters.count else {
            throw SQLError(.other, "query needs \(expected) parameters, got \(parameters.count)", sql: sql)
        }
        for (offset, value) in parameters.enumerated() where offset < expected {
            let index = Int32(offset + 1)
            let rc: Int32
            switch value {
            case .null: rc = sqlite3_bind_null(statement, index)
            case .integer(let i): rc = sqlite3_bind_int64(statement, index, i)
            case .double(let d): rc = sqlite3_bind_double(statement, index, d)
            case .text(let t): rc = sqlite3_bind_text(statement, index, t, Int32(t.utf8.count), SQLITE_TRANSIENT)
            case .blob(let b):
                rc = b.withUnsafeBytes { raw in
                    sqlite3_bind_blob64(
                        statement, index, raw.baseAddress ?? UnsafeRawPointer(bitPattern: 1),
                        sqlite3_uint64(raw.count), SQLITE_TRANSIENT)
                }
            }
            if rc != SQLITE_OK { throw error(rc, sql: sql) }
        }
    }

    @discardableResult
    func execute(_ sql: String, _ parameters: [SQLValue]) throws -> Int {
        let statement = try prepare(sql)
        defer {
            sqlite3_reset(statement)
            sqlite3_clear_bindings(statement)
        }
        try bind(statement, parameters, sql: sql)
        while true {
            let rc = sqlite3_step(statement)
            if rc == SQLITE_DONE { break }
            if rc != SQLITE_ROW { throw error(rc, sql: sql) }
        }
        return Int(sqlite3_changes(handle))
    }

    func query(_ sql: String, _ parameters: [SQLValue]) throws -> [SQLRow] {
        let statement = try prepare(sql)
        defer {
            sqlite3_reset(statement)
            sqlite3_clear_bindings(statement)
        }
        try bind(statement, parameters, sql: sql)
        let count = sqlite3_column_count(statement)
        let columns = (0..<count).map { String(cString: sqlite3_column_name(statement, $0)) }
        var rows: [SQLRow] = []
        while true {
            let rc = sqlite3_step(statement)
            if rc == SQLITE_DONE { break }
            guard rc == SQLITE_ROW else { throw error(rc, sql: sql) }
            var values: [SQLValue] = []
            values.reserveCapacity(Int(count))
            for column in 0..<count {
                switch sqlite3_column_type(statement, column) {
                case SQLITE_INTEGER: values.append(.integer(sqlite3_column_int64(statement, column)))
                case SQLITE_FLOAT: values.append(.double(sqlite3_column_double(statement, column)))
                case SQLITE_TEXT:
                    values.append(.text(String(cString: sqlite3_column_text(statement, column))))
                case SQLITE_BLOB:
                    let length = Int(sqlite3_column_bytes(statement, column))
                    if length == 0 {
                        values.append(.blob([]))
                    } else {
                        let pointer = sqlite3_column_blob(statement, column)!
                        values.append(.blob(Array(UnsafeRawBufferPointer(start: pointer, count: length))))
                    }
                default: values.append(.null)
                }
            }
            rows.append(SQLRow(columns: columns, values: values))
        }
        return rows
    }

    func executeScript(_ sql: String) throws {
        guard handle != nil else { throw SQLError(.connection, "connection is closed", sql: sql) }
        var message: UnsafeMutablePointer<CChar>?
        let rc = sqlite3_exec(handle, sql, nil, nil, &message)
        if rc != SQLITE_OK {
            let text = message.map { String(cString: $0) } ?? "error \(rc)"
            sqlite3_free(message)
            var e = error(rc, sql: sql)
            e = SQLError(e.code, text, driverCode: e.driverCode, sql: sql)
            throw e
        }
    }
}
