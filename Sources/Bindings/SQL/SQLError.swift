/// A database error with the driver's code, classified so callers can decide to retry.
package struct SQLError: Error, CustomStringConvertible, Sendable {
    package enum Code: String, Sendable {
        /// SQLite's SQLITE_BUSY / SQLITE_LOCKED: another writer holds the lock.
        case busy
        /// PostgreSQL 40001 / 40P01: the transaction lost a race and may be retried whole.
        case serializationFailure
        /// A unique, foreign-key, check or not-null constraint failed.
        case constraintViolation
        /// The connection is gone or cannot be made.
        case connection
        /// A value did not have the type the caller asked for.
        case typeMismatch
        /// A migration recorded in the database differs from the code's.
        case migration
        /// A bad URL or option.
        case configuration
        /// Anything else the driver reported (syntax errors, missing tables...).
        case other
    }

    package let code: Code
    package let message: String
    /// The driver's own code: SQLite's extended result code or PostgreSQL's SQLSTATE.
    package let driverCode: String?
    package let sql: String?

    package init(_ code: Code, _ message: String, driverCode: String? = nil, sql: String? = nil) {
        self.code = code
        self.message = message
        self.driverCode = driverCode
        self.sql = sql
    }

    /// Whether running the whole transaction again may succeed.
    package var isRetryable: Bool { code == .busy || code == .serializationFailure }

    package var description: String {
        var text = "\(code.rawValue): \(message)"
        if let driverCode { text += " [\(driverCode)]" }
        if let sql { text += " in: \(sql.prefix(SQLLimits.errorStatementExcerptCharacters))" }
        return text
    }
}
