import Foundation
import Host
import SQL

/// The ledger on the `Database` protocol, both drivers. Each batch runs in one transaction that
/// first locks the ledger's single meta row (so batches are applied one at a time, in order, by
/// every process sharing the database, and timestamps only grow), loads what the batch touches,
/// applies it with `LedgerState`, and writes back only what changed. History is append-only:
/// transfers are inserted, never updated or deleted.
///
/// Concurrent `createTransfers` calls on one store are merged into shared batches (see
/// `TransferBatcher`): one transaction carries many callers' transfers.
package struct LedgerStore: Sendable {
    package let database: any Database
    private let batcher: TransferBatcher
    private let accountCache: LedgerAccountCache

    package init(database: any Database) {
        LedgerLimits.assertRelations()
        self.database = database
        let accountCache = LedgerAccountCache()
        self.accountCache = accountCache
        batcher = TransferBatcher { batch, now in try await LedgerStore.applyTransfers(database, batch, now: now, cache: accountCache) }
    }

    static let migrations: [Migration] = [
        Migration(
            1, "ledger",
            sql: """
                CREATE TABLE ledger_meta (id INTEGER PRIMARY KEY, last_timestamp BIGINT NOT NULL);
                INSERT INTO ledger_meta (id, last_timestamp) VALUES (1, 0);
                CREATE TABLE ledger_accounts (
                    id TEXT PRIMARY KEY,
                    ledger BIGINT NOT NULL,
                    code BIGINT NOT NULL,
                    flags BIGINT NOT NULL,
                    user_data_128 TEXT NOT NULL,
                    user_data_64 BIGINT NOT NULL,
                    user_data_32 BIGINT NOT NULL,
                    debits_pending BIGINT NOT NULL,
                    debits_posted BIGINT NOT NULL,
                    credits_pending BIGINT NOT NULL,
                    credits_posted BIGINT NOT NULL,
                    timestamp BIGINT NOT NULL
                );
                CREATE TABLE ledger_transfers (
                    id TEXT PRIMARY KEY,
                    debit_account_id TEXT NOT NULL,
                    credit_account_id TEXT NOT NULL,
                    amount BIGINT NOT NULL,
                    pending_id TEXT NOT NULL,
                    user_data_128 TEXT NOT NULL,
                    user_data_64 BIGINT NOT NULL,
                    user_data_32 BIGINT NOT NULL,
                    timeout BIGINT NOT NULL,
                    ledger BIGINT NOT NULL,
                    code BIGINT NOT NULL,
                    flags BIGINT NOT NULL,
                    timestamp BIGINT NOT NULL UNIQUE
                );
                CREATE INDEX ledger_transfers_debit ON ledger_transfers (debit_account_id, timestamp);
                CREATE INDEX ledger_transfers_credit ON ledger_transfers (credit_account_id, timestamp);
                CREATE TABLE ledger_pending (
                    id TEXT PRIMARY KEY,
                    status TEXT NOT NULL,
                    expires_at BIGINT NOT NULL
                );
                CREATE INDEX ledger_pending_open ON ledger_pending (status, expires_at);
                """),
        // Balance history of accounts with the `history` flag (append-only, one row per change);
        // workspaces' USER accounts keep it from now on.
        Migration(
            2, "ledger balance history",
            sql: """
                CREATE TABLE ledger_account_balances (
                    account_id TEXT NOT NULL,
                    timestamp BIGINT NOT NULL,
                    transfer_id TEXT NOT NULL,
                    code BIGINT NOT NULL,
                    debited BIGINT NOT NULL,
                    debits_pending BIGINT NOT NULL,
                    debits_posted BIGINT NOT NULL,
                    credits_pending BIGINT NOT NULL,
                    credits_posted BIGINT NOT NULL,
                    PRIMARY KEY (account_id, timestamp)
                );
                UPDATE ledger_accounts SET flags = flags | 8 WHERE code = 2001;
                """),
        // Changed by every transaction that changes an account: see `LedgerAccountCache`.
        Migration(
            3, "ledger generation",
            sql: """
                ALTER TABLE ledger_meta ADD COLUMN generation BIGINT NOT NULL DEFAULT 0;
                """),
    ]

    // Unsigned values are stored as the same 64 bits in a signed column.
    static func s(_ v: UInt64) -> SQLValue { .integer(Int64(bitPattern: v)) }
    static func u(_ row: SQLRow, _ column: String) throws -> UInt64 { UInt64(bitPattern: try row.int(column)) }

    package func createAccounts(_ batch: [Account], now: UInt64) async throws -> [CreateAccountResult] {
        try LedgerStore.checkSize(batch.count)
        let cache = accountCache
        return try await database.transaction { db in
            var (state, generation) = try LedgerStore.load(db, accountIDs: Set(batch.map(\.id)), transferIDs: [], cache: cache)
            let (before, stamp) = (state.accounts, state.lastTimestamp)
            let results = state.createAccounts(batch, now: now)
            try LedgerStore.save(
                db, state: state, accountsBefore: before, transfersBefore: [:], pendingBefore: [:], lastTimestampBefore: stamp,
                generationBefore: generation, cache: cache)
            return results
        }
    }

    /// Applies a batch: one result per transfer, in order (TigerBeetle's `create_transfers`).
    package func createTransfers(_ batch: [Transfer], now: UInt64) async throws -> [CreateTransferResult] {
        try LedgerStore.checkSize(batch.count)
        guard !batch.isEmpty else { return [] }
        return try await batcher.submit(batch, now: now)
    }

    static func applyTransfers(
        _ database: any Database, _ batch: [Transfer], now: UInt64,
        cache: LedgerAccountCache
    ) async throws -> [CreateTransferResult] {
        try await database.transaction { db in
            // Pending transfers named by post/void bring their accounts along.
            var transferIDs = Set(batch.map(\.id))
            transferIDs.formUnion(batch.map(\.pendingID).filter { !$0.isZero })
            var accountIDs = Set(batch.flatMap { [$0.debitAccountID, $0.creditAccountID] }.filter { !$0.isZero })
            for pending in try LedgerStore.transfers(db, ids: Set(batch.map(\.pendingID).filter { !$0.isZero })) {
                accountIDs.insert(pending.debitAccountID)
                accountIDs.insert(pending.creditAccountID)
            }
            let pendingIDs = Set(batch.map(\.pendingID).filter { !$0.isZero })
            var (state, generation) = try LedgerStore.load(db, accountIDs: accountIDs, transferIDs: transferIDs, statusIDs: pendingIDs, cache: cache)
            let (accountsBefore, transfersBefore, pendingBefore, stamp) = (state.accounts, state.transfers, state.pendingStatus, state.lastTimestamp)
            let results = state.createTransfers(batch, now: now)
            LedgerStore.assertBalanced(state, before: accountsBefore)
            try LedgerStore.save(
                db, state: state, accountsBefore: accountsBefore, transfersBefore: transfersBefore, pendingBefore: pendingBefore,
                lastTimestampBefore: stamp, generationBefore: generation, cache: cache)
            return results
        }
    }

    /// Releases every pending transfer whose timeout has passed (the background sweeper).
    @discardableResult
    package func expirePending(now: UInt64) async throws -> [ID128] {
        let cache = accountCache
        return try await database.transaction { db in
            let due = try db.query(
                "SELECT id FROM ledger_pending WHERE status = 'pending' AND expires_at <= $1 ORDER BY id LIMIT $2",
                [LedgerStore.s(now), .integer(Int64(LedgerLimits.expirySweepMaxTransfers))]
            ).compactMap { ID128(hex: try $0.string("id")) }
            guard !due.isEmpty else { return [] }
            let pending = try LedgerStore.transfers(db, ids: Set(due))
            let accountIDs = Set(pending.flatMap { [$0.debitAccountID, $0.creditAccountID] })
            var (state, generation) = try LedgerStore.load(db, accountIDs: accountIDs, transferIDs: Set(due), statusIDs: Set(due), cache: cache)
            let (accountsBefore, transfersBefore, pendingBefore, stamp) = (state.accounts, state.transfers, state.pendingStatus, state.lastTimestamp)
            let expired = state.expirePending(now: now)
            LedgerStore.assertBalanced(state, before: accountsBefore)
            try LedgerStore.save(
                db, state: state, accountsBefore: accountsBefore, transfersBefore: transfersBefore, pendingBefore: pendingBefore,
                lastTimestampBefore: stamp, generationBefore: generation, cache: cache)
            return expired
        }
    }

    package func lookupAccounts(_ ids: [ID128]) async throws -> [Account] {
        try await database.read { db in try LedgerStore.accounts(db, ids: Set(ids)).sorted { $0.id < $1.id } }
    }

    package func lookupTransfers(_ ids: [ID128]) async throws -> [Transfer] {
        try await database.read { db in try LedgerStore.transfers(db, ids: Set(ids)).sorted { $0.timestamp < $1.timestamp } }
    }

    /// Double entry holds for what the batch did, or nothing is committed: a violation is a bug
    /// in `LedgerState`, and the process stops inside the transaction rather than write it.
    static func assertBalanced(_ state: LedgerState, before: [ID128: Account]) {
        let violations = state.batchViolations(before: before)
        precondition(violations.isEmpty, "ledger invariant broken: \(violations)")
    }

    static func checkSize(_ count: Int) throws {
        guard count <= LedgerLimits.maxBatchEvents else {
            throw HostError(.badRequest, "a batch holds at most \(LedgerLimits.maxBatchEvents) events; got \(count)")
        }
    }

    // MARK: rows

    /// Loads what a batch touches, and the ledger's generation. `statusIDs` are the pending
    /// transfers whose status matters (those a batch posts or voids, or the sweeper expires).
    /// Accounts `cache` holds at the current generation are not read again.
    static func load(
        _ db: any SQLConnection, accountIDs: Set<ID128>, transferIDs: Set<ID128>, statusIDs: Set<ID128> = [],
        cache: LedgerAccountCache
    ) throws -> (state: LedgerState, generation: Int64) {
        let lock = db.dialect == .postgres ? " FOR UPDATE" : ""
        let meta = try db.queryOne("SELECT last_timestamp, generation FROM ledger_meta WHERE id = 1\(lock)")
        let last = try meta.map { try u($0, "last_timestamp") } ?? 0
        let generation = try meta.map { try $0.int("generation") } ?? 0
        var accounts = Array(cache.accounts(accountIDs, current: generation).values)
        if accounts.count < accountIDs.count {
            // Rows are still locked in id order below (PostgreSQL): the meta row taken first
            // already orders every ledger transaction, so skipping cached rows cannot deadlock.
            let missing = accounts.isEmpty ? accountIDs : accountIDs.subtracting(accounts.map(\.id))
            accounts += try self.accounts(db, ids: missing, lock: lock)
        }
        let transfers = try self.transfers(db, ids: transferIDs)
        var pending: [ID128: LedgerState.PendingStatus] = [:]
        if !statusIDs.isEmpty {
            let ids = statusIDs.sorted()
            for row in try db.query(
                "SELECT id, status FROM ledger_pending WHERE id IN (\(placeholders(ids.count)))",
                ids.map { .text($0.description) })
            {
                if let id = ID128(hex: try row.string("id")), let status = LedgerState.PendingStatus(rawValue: try row.string("status")) {
                    pending[id] = status
                }
            }
        }
        return (LedgerState(accounts: accounts, transfers: transfers, pendingStatus: pending, lastTimestamp: last), generation)
    }

    static func accounts(_ db: any SQLConnection, ids: Set<ID128>, lock: String = "") throws -> [Account] {
        guard !ids.isEmpty else { return [] }
        let sorted = ids.sorted()  // rows are locked in id order: no deadlocks between writers
        return try db.query(
            "SELECT * FROM ledger_accounts WHERE id IN (\(placeholders(sorted.count))) ORDER BY id\(lock)",
            sorted.map { .text($0.description) }
        ).map { row in
            var a = Account(
                id: ID128(hex: try row.string("id"))!, ledger: UInt32(try row.int("ledger")), code: UInt16(try row.int("code")),
                flags: Account.Flags(rawValue: UInt16(try row.int("flags"))),
                userData128: ID128(hex: try row.string("user_data_128")) ?? .zero,
                userData64: try u(row, "user_data_64"), userData32: UInt32(try row.int("user_data_32")))
            a.debitsPending = try u(row, "debits_pending")
            a.debitsPosted = try u(row, "debits_posted")
            a.creditsPending = try u(row, "credits_pending")
            a.creditsPosted = try u(row, "credits_posted")
            a.timestamp = try u(row, "timestamp")
            return a
        }
    }

    static func transfers(_ db: any SQLConnection, ids: Set<ID128>) throws -> [Transfer] {
        guard !ids.isEmpty else { return [] }
        let sorted = ids.sorted()
        return try db.query("SELECT * FROM ledger_transfers WHERE id IN (\(placeholders(sorted.count)))", sorted.map { .text($0.description) }).map(
            transfer)
    }

    static func transfer(_ row: SQLRow) throws -> Transfer {
        var t = Transfer(
            id: ID128(hex: try row.string("id"))!, debitAccountID: ID128(hex: try row.string("debit_account_id"))!,
            creditAccountID: ID128(hex: try row.string("credit_account_id"))!, amount: try u(row, "amount"),
            ledger: UInt32(try row.int("ledger")), code: UInt16(try row.int("code")),
            flags: Transfer.Flags(rawValue: UInt16(try row.int("flags"))),
            pendingID: ID128(hex: try row.string("pending_id")) ?? .zero, timeout: UInt32(try row.int("timeout")),
            userData128: ID128(hex: try row.string("user_data_128")) ?? .zero, userData64: try u(row, "user_data_64"),
            userData32: UInt32(try row.int("user_data_32")))
        t.timestamp = try u(row, "timestamp")
        return t
    }
}
