import Foundation
import SQL

/// How a batch's changes reach the tables: a few statements per batch whatever its size (many
/// rows per INSERT, all balance changes in one UPDATE per chunk), with SQL text that repeats
/// exactly from batch to batch so both drivers reuse their prepared statements.
extension LedgerStore {
    /// Rows per multi-row statement (at most 13 parameters a row: below both drivers' limits).
    static let rowsPerStatement = 1_000

    static func save(
        _ db: any SQLConnection, state: LedgerState, accountsBefore: [ID128: Account],
        transfersBefore: [ID128: Transfer], pendingBefore: [ID128: LedgerState.PendingStatus],
        lastTimestampBefore: UInt64, generationBefore: Int64, cache: LedgerAccountCache
    ) throws {
        let (insert, update) = verbs(db)
        var created: [Account] = []
        var changed: [Account] = []
        for (id, account) in state.accounts where accountsBefore[id] != account {
            if accountsBefore[id] == nil { created.append(account) } else { changed.append(account) }
        }
        created.sort { $0.id < $1.id }
        changed.sort { $0.id < $1.id }
        try executeChunked(
            db, rows: created.count, columns: 12,
            sql: { values in
                """
                \(insert) INTO ledger_accounts (id, ledger, code, flags, user_data_128, user_data_64, user_data_32,
                    debits_pending, debits_posted, credits_pending, credits_posted, timestamp)
                VALUES \(values)
                """
            }
        ) { i, p in
            let a = created[i]
            p += [
                .text(a.id.description), .integer(Int64(a.ledger)), .integer(Int64(a.code)), .integer(Int64(a.flags.rawValue)),
                optionalID(a.userData128), s(a.userData64), .integer(Int64(a.userData32)), s(a.debitsPending), s(a.debitsPosted),
                s(a.creditsPending), s(a.creditsPosted), s(a.timestamp),
            ]
        }
        // VALUES columns are column1...column5 on both drivers; parameters arrive as text on PostgreSQL.
        try executeChunked(
            db, rows: changed.count, columns: 5,
            sql: { values in
                """
                \(update) ledger_accounts SET debits_pending = CAST(v.column2 AS BIGINT), debits_posted = CAST(v.column3 AS BIGINT),
                    credits_pending = CAST(v.column4 AS BIGINT), credits_posted = CAST(v.column5 AS BIGINT)
                FROM (VALUES \(values)) AS v WHERE ledger_accounts.id = v.column1
                """
            }
        ) { i, p in
            let a = changed[i]
            p += [.text(a.id.description), s(a.debitsPending), s(a.debitsPosted), s(a.creditsPending), s(a.creditsPosted)]
        }
        // New transfers in timestamp order.
        var fresh = state.transfers.values.filter { transfersBefore[$0.id] == nil }
        fresh.sort { $0.timestamp < $1.timestamp }
        try executeChunked(
            db, rows: fresh.count, columns: 13,
            sql: { values in
                """
                \(insert) INTO ledger_transfers (id, debit_account_id, credit_account_id, amount, pending_id, user_data_128, user_data_64,
                    user_data_32, timeout, ledger, code, flags, timestamp)
                VALUES \(values)
                """
            }
        ) { i, p in
            let t = fresh[i]
            p += [
                .text(t.id.description), .text(t.debitAccountID.description), .text(t.creditAccountID.description), s(t.amount),
                optionalID(t.pendingID), optionalID(t.userData128), s(t.userData64), .integer(Int64(t.userData32)),
                .integer(Int64(t.timeout)), .integer(Int64(t.ledger)), .integer(Int64(t.code)), .integer(Int64(t.flags.rawValue)),
                s(t.timestamp),
            ]
        }
        let statuses = state.pendingStatus.filter { pendingBefore[$0.key] != $0.value }.sorted { $0.key < $1.key }
        try executeChunked(
            db, rows: statuses.count, columns: 3,
            sql: { values in
                """
                \(insert) INTO ledger_pending (id, status, expires_at) VALUES \(values)
                ON CONFLICT (id) DO UPDATE SET status = excluded.status
                """
            }
        ) { i, p in
            let (id, status) = statuses[i]
            let t = state.transfers[id]
            let expires = t.map { $0.timeout == 0 ? UInt64(Int64.max) : $0.timestamp &+ UInt64($0.timeout) * 1_000_000_000 } ?? UInt64(Int64.max)
            p += [.text(id.description), .text(status.rawValue), s(expires)]
        }
        try insertHistory(db, state.balanceHistory)
        var generation = generationBefore
        if state.lastTimestamp != lastTimestampBefore || !created.isEmpty || !changed.isEmpty {
            generation = LedgerAccountCache.newGeneration()
            try db.execute(
                "UPDATE ledger_meta SET last_timestamp = $1, generation = $2 WHERE id = 1", [s(state.lastTimestamp), .integer(generation)])
        }
        // Every account this transaction read or wrote is as stored at `generation` once it commits.
        cache.store(state.accounts, generation: generation, previous: generationBefore)
    }

    /// Appends balance-history rows.
    static func insertHistory(_ db: any SQLConnection, _ rows: [AccountBalance]) throws {
        let insert = verbs(db).insert
        try executeChunked(
            db, rows: rows.count, columns: 9,
            sql: { values in
                """
                \(insert) INTO ledger_account_balances (account_id, timestamp, transfer_id, code, debited, debits_pending, debits_posted,
                    credits_pending, credits_posted)
                VALUES \(values)
                """
            }
        ) { i, p in
            let b = rows[i]
            p += [
                .text(b.accountID.description), s(b.timestamp), .text(b.transferID.description), .integer(Int64(b.code)),
                .integer(b.debited ? 1 : 0), s(b.debitsPending), s(b.debitsPosted), s(b.creditsPending), s(b.creditsPosted),
            ]
        }
    }

    /// The verbs of the multi-row writes. On SQLite, `OR FAIL`: a failing statement keeps the
    /// rows it wrote before the failure instead of undoing itself, so SQLite needs no statement
    /// journal, the in-memory copy of every page the statement changes (40% of a batch's
    /// insert). Nothing is lost by it: any failure throws out of the transaction's body, and the
    /// whole transaction (or its group-commit savepoint) is rolled back.
    static func verbs(_ db: any SQLConnection) -> (insert: String, update: String) {
        db.dialect == .sqlite ? ("INSERT OR FAIL", "UPDATE OR FAIL") : ("INSERT", "UPDATE")
    }

    /// A zero id (most transfers' pending id and user data, most accounts' user data) is stored
    /// as '': a third of a transfer row's bytes, and fewer pages for each commit to write.
    /// Reading '' gives zero again, as does the 32-zero form of older rows.
    static func optionalID(_ id: ID128) -> SQLValue { id.isZero ? .text("") : .text(id.description) }

    /// Runs `sql(VALUES list)` over `rows` rows of `columns` parameters, `rowsPerStatement` at a time.
    static func executeChunked(
        _ db: any SQLConnection, rows: Int, columns: Int, sql: (String) -> String,
        values: (Int, inout [SQLValue]) -> Void
    ) throws {
        var start = 0
        while start < rows {
            let count = min(rowsPerStatement, rows - start)
            var parameters: [SQLValue] = []
            parameters.reserveCapacity(count * columns)
            for i in start..<(start + count) { values(i, &parameters) }
            precondition(parameters.count == count * columns)
            try db.execute(sql(ValuesClause.text(rows: count, columns: columns)), parameters)
            start += count
        }
    }
}

/// `($1, $2), ($3, $4), ...` for a number of rows and columns, built once per shape.
enum ValuesClause {
    private static let lock = NSLock()
    /// Unchecked Sendable: read and written only under `lock` (a `Mutex` needs macOS 15).
    nonisolated(unsafe) private static var cache: [Int: String] = [:]

    static func text(rows: Int, columns: Int) -> String {
        let key = rows << 8 | columns
        if let cached = lock.withLock({ cache[key] }) { return cached }
        var text = ""
        text.reserveCapacity(rows * columns * 7)
        var n = 0
        for row in 0..<rows {
            text += row == 0 ? "(" : ", ("
            for column in 0..<columns {
                n += 1
                text += column == 0 ? "$\(n)" : ", $\(n)"
            }
            text += ")"
        }
        lock.withLock {
            if cache.count >= 64 { cache.removeAll() }
            cache[key] = text
        }
        return text
    }
}
