import BlockingPool
import Foundation

/// PostgreSQL over libpq with a pool of connections, run on the pool's own threads.
/// Unchecked Sendable: the pool's mutable state (`idle`, `opened`, `waiters`, `closed`) is touched only under
/// `lock`, and a connection is used by the one caller that checked it out.
package final class PostgresDatabase: Database, @unchecked Sendable {
    package let dialect = SQLDialect.postgres
    package let url: String
    package let poolSize: Int
    package var displayName: String { PostgresDatabase.redact(url) }

    private let lock = NSLock()
    private var idle: [Slot] = []
    private var opened = 0
    private var waiters: [CheckedContinuation<Slot, any Error>] = []
    private var closed = false

    /// At most one job per checked-out connection, so `poolSize` threads suffice.
    private let threads: BlockingThreadPool

    /// A pooled connection. Unchecked because ownership moves between tasks through the pool:
    /// `checkout` hands a slot to one caller (under `lock`), who alone uses it until `checkin`.
    private final class Slot: @unchecked Sendable {
        let connection: PostgresConnection
        init(connection: PostgresConnection, index: Int) {
            self.connection = connection
        }
    }

    /// Connects one connection at once so a bad URL fails here; the rest open on demand.
    package init(url: String, poolSize: Int = 8) throws {
        precondition(poolSize > 0)
        self.url = url
        self.poolSize = poolSize
        self.threads = BlockingThreadPool(name: "tenki-postgres", maxThreads: poolSize)
        let first = try PostgresConnection(url: url)
        idle.append(Slot(connection: first, index: 0))
        opened = 1
    }

    /// The URL with its password replaced, for logs.
    package static func redact(_ url: String) -> String {
        guard let at = url.firstIndex(of: "@"), let scheme = url.range(of: "://") else { return url }
        let credentials = url[scheme.upperBound..<at]
        guard let colon = credentials.firstIndex(of: ":") else { return url }
        return String(url[..<colon]) + ":***" + String(url[at...])
    }

    private func checkout() async throws -> Slot {
        enum Next { case slot(Slot), open(Int), wait }
        let next: Next = lock.withLock {
            if let slot = idle.popLast() { return .slot(slot) }
            if opened < poolSize {
                opened += 1
                return .open(opened - 1)
            }
            return .wait
        }
        switch next {
        case .slot(let slot): return slot
        case .open(let index):
            do {
                let connection = try await threads.run { try PostgresConnection(url: self.url) }
                return Slot(connection: connection, index: index)
            } catch {
                lock.withLock { opened -= 1 }
                throw error
            }
        case .wait:
            return try await withCheckedThrowingContinuation { continuation in
                let handed: Slot? = lock.withLock {
                    if let slot = idle.popLast() { return slot }
                    waiters.append(continuation)
                    return nil
                }
                if let handed { continuation.resume(returning: handed) }
            }
        }
    }

    private func checkin(_ slot: Slot) {
        let waiter: CheckedContinuation<Slot, any Error>? = lock.withLock {
            if !waiters.isEmpty { return waiters.removeFirst() }
            idle.append(slot)
            return nil
        }
        waiter?.resume(returning: slot)
    }

    private func withConnection<T>(_ body: @escaping (PostgresConnection) throws -> T) async throws -> T {
        let slot = try await checkout()
        defer { checkin(slot) }
        return try await threads.run {
            try slot.connection.ensureConnected()
            return try body(slot.connection)
        }
    }

    package func transaction<T>(isolation: SQLIsolation, _ body: @escaping (any SQLConnection) throws -> T) async throws -> T {
        let begin: String
        switch isolation {
        case .readCommitted: begin = "BEGIN"
        case .repeatableRead: begin = "BEGIN ISOLATION LEVEL REPEATABLE READ"
        case .serializable: begin = "BEGIN ISOLATION LEVEL SERIALIZABLE"
        }
        var attempt = 0
        while true {
            attempt += 1
            do {
                return try await withConnection { connection in
                    do {
                        try connection.executeScript(begin)
                    } catch let error as SQLError where error.code == .connection || connection.isBroken {
                        // The server dropped this idle connection (restart, terminated backend):
                        // nothing was sent yet, so reconnect and begin again once.
                        try connection.reconnect()
                        try connection.executeScript(begin)
                    }
                    do {
                        let value = try body(connection)
                        try connection.executeScript("COMMIT")
                        return value
                    } catch {
                        if !connection.isBroken { try? connection.executeScript("ROLLBACK") }
                        throw error
                    }
                }
            } catch let error as SQLError where error.isRetryable && attempt < SQLLimits.maxTransactionAttempts {
                try await Task.sleep(nanoseconds: retryDelay(attempt: attempt))
            }
        }
    }

    /// Runs statements on a new connection outside any transaction and closes it, blocking
    /// the calling thread (for tooling and tests: CREATE DATABASE, DROP DATABASE...).
    package static func runBlocking(url: String, _ sql: String) throws {
        let connection = try PostgresConnection(url: url)
        defer { connection.close() }
        try connection.executeScript(sql)
    }

    /// Runs statements outside a transaction (CREATE DATABASE, VACUUM...).
    package func raw(_ sql: String) async throws {
        try await withConnection { try $0.executeScript(sql) }
    }

    package func read<T>(_ body: @escaping (any SQLConnection) throws -> T) async throws -> T {
        try await transaction(isolation: .readCommitted, body)
    }

    package func close() async {
        let slots: [Slot] = lock.withLock {
            closed = true
            let all = idle
            idle.removeAll()
            return all
        }
        for slot in slots { _ = try? await threads.run { slot.connection.close() } }
    }
}
