import Foundation

/// Which SQL a driver speaks. Queries use PostgreSQL's `$1` placeholders on both; the SQLite
/// driver rewrites them to `?1`.
package enum SQLDialect: String, Sendable {
    case sqlite
    case postgres
}

/// A connection inside a transaction. Calls are synchronous and run on the driver's own thread,
/// never on an event loop or the cooperative pool.
package protocol SQLConnection: AnyObject {
    var dialect: SQLDialect { get }
    /// Runs a parameterised statement; returns the number of rows changed.
    @discardableResult
    func execute(_ sql: String, _ parameters: [SQLValue]) throws -> Int
    /// Runs a parameterised query and returns its rows.
    func query(_ sql: String, _ parameters: [SQLValue]) throws -> [SQLRow]
    /// Runs several statements without parameters (migrations only).
    func executeScript(_ sql: String) throws
}

extension SQLConnection {
    @discardableResult
    package func execute(_ sql: String) throws -> Int { try execute(sql, []) }
    package func query(_ sql: String) throws -> [SQLRow] { try query(sql, []) }
    package func queryOne(_ sql: String, _ parameters: [SQLValue] = []) throws -> SQLRow? {
        try query(sql, parameters).first
    }
}

/// Transaction isolation for drivers that offer a choice (PostgreSQL). SQLite transactions
/// are always serializable.
package enum SQLIsolation: Sendable {
    case readCommitted
    case repeatableRead
    case serializable
}

/// The storage every plugin uses. A transaction's body is synchronous, runs on the driver's
/// thread, and may run more than once: it is retried whole when the database reports a busy
/// lock (SQLite) or a serialization failure or deadlock (PostgreSQL), so it must not have
/// effects outside the database.
package protocol Database: AnyObject, Sendable {
    var dialect: SQLDialect { get }
    /// A description without credentials, for logs.
    var displayName: String { get }

    func transaction<T>(isolation: SQLIsolation, _ body: @escaping (any SQLConnection) throws -> T) async throws -> T
    /// Runs read-only work; on SQLite it may use a reader connection alongside the writer.
    func read<T>(_ body: @escaping (any SQLConnection) throws -> T) async throws -> T
    /// Checks the database answers (for readiness).
    func ping() async throws
    func close() async
}

extension Database {
    package func transaction<T>(_ body: @escaping (any SQLConnection) throws -> T) async throws -> T {
        try await transaction(isolation: .readCommitted, body)
    }

    @discardableResult
    package func execute(_ sql: String, _ parameters: [SQLValue] = []) async throws -> Int {
        try await transaction { try $0.execute(sql, parameters) }
    }

    package func query(_ sql: String, _ parameters: [SQLValue] = []) async throws -> [SQLRow] {
        try await read { try $0.query(sql, parameters) }
    }

    package func ping() async throws {
        _ = try await read { try $0.query("SELECT 1 AS one") }
    }
}

/// Limits of the drivers, kept together.
package enum SQLLimits {
    /// Backoff before a transaction's second attempt, doubling per attempt up to the maximum.
    package static let transactionRetryFirstBackoffNanoseconds: UInt64 = 1_000_000
    package static let transactionRetryMaxBackoffNanoseconds: UInt64 = 100_000_000
    /// Characters of the statement quoted in an error.
    package static let errorStatementExcerptCharacters = 200
    /// Prepared statements cached per connection before the cache is cleared.
    package static let maxCachedStatementsPerConnection = 256
    /// Times a transaction is run again after a busy or serialization failure.
    package static let maxTransactionAttempts = 10
    /// Logical transactions merged into one SQLite commit by group commit.
    package static let maxGroupCommitTransactions = 512
    /// WAL pages after which a background checkpoint runs (SQLite's own default is 1,000). More
    /// than SQLite's default: a page changed by many commits in between is copied once, and the
    /// writer's short pause to finish each round (see `SQLiteDatabase.walGrew`) comes once in
    /// ~200 ledger commits, not every ~50 (which put it in the 99th percentile). With the WAL
    /// started over after each round the file stays about this size (64 MiB of 4 KiB pages).
    package static let sqliteCheckpointWALPages = 16_000
    /// WAL pages after which the writer checkpoints itself, the background one falling behind.
    package static let sqliteWriterCheckpointWALPages = 64_000
    /// Passes of the background checkpoint at most (each copies what was committed during the
    /// one before), and the frames a pass copies below which it stops.
    package static let sqliteCheckpointPasses = 6
    package static let sqliteCheckpointTailFrames = 100
    /// Bytes of copied database pages written to the device at a time by the background
    /// checkpoint: a commit's WAL sync waits behind at most this much.
    package static let sqliteWriteBackPieceBytes: Int64 = 1 << 20
    /// Page cache of the SQLite writer connection, in KiB (SQLite's default is 2,000): a large
    /// batch's pages stay in memory until commit instead of spilling to the WAL and being read back.
    package static let sqliteWriterCacheKibibytes = 32_768
    /// How long SQLite waits on another process's lock before reporting busy.
    package static let sqliteBusyTimeoutMilliseconds: Int32 = 5_000

    /// The relations between the limits; checked once when a database opens.
    package static func assertRelations() {
        precondition(sqliteCheckpointTailFrames < sqliteCheckpointWALPages, "the writer's tail is a small part of a round")
        precondition(sqliteCheckpointWALPages < sqliteWriterCheckpointWALPages, "background rounds start before the writer must checkpoint")
        precondition(transactionRetryFirstBackoffNanoseconds <= transactionRetryMaxBackoffNanoseconds, "backoff grows up to its cap")
        precondition(maxGroupCommitTransactions >= 1 && maxTransactionAttempts >= 1, "at least one")
    }
}

/// Opens a database from a URL: `postgres://...` / `postgresql://...` for PostgreSQL,
/// `sqlite:///absolute/path.db`, `sqlite:relative/path.db` or a plain file path for SQLite.
package enum DatabaseFactory {
    package static func open(url: String, poolSize: Int = 8) throws -> any Database {
        if url.hasPrefix("postgres://") || url.hasPrefix("postgresql://") {
            return try PostgresDatabase(url: url, poolSize: poolSize)
        }
        var path = url
        if path.hasPrefix("sqlite://") {
            path = String(path.dropFirst("sqlite://".count))
        } else if path.hasPrefix("sqlite:") {
            path = String(path.dropFirst("sqlite:".count))
        }
        guard !path.isEmpty else { throw SQLError(.configuration, "empty SQLite path in '\(url)'") }
        return try SQLiteDatabase(path: path)
    }
}

/// Backoff before retrying a transaction: grows per attempt, with jitter, capped at ~100 ms.
func retryDelay(attempt: Int) -> UInt64 {
    let base = min(SQLLimits.transactionRetryMaxBackoffNanoseconds, SQLLimits.transactionRetryFirstBackoffNanoseconds << min(attempt, 7))
    return base / 2 + UInt64.random(in: 0...(base / 2))
}

/// Numbered parameter placeholders for an `IN (...)` list: `placeholders(3)` is `$1, $2, $3`,
/// `placeholders(2, from: 4)` is `$4, $5` (both drivers take `$n`).
package func placeholders(_ count: Int, from first: Int = 1) -> String {
    (first..<(first + count)).map { "$\($0)" }.joined(separator: ", ")
}
