import SQL

/// Reads of history: an account's transfers by time range and code, page by page (TigerBeetle's
/// `get_account_transfers`), the balance-history rows of accounts with the `history` flag
/// (`get_account_balances`) and balances as of a past moment. Each walks the
/// (account, timestamp) indexes in order and stops at the limit, so a page costs the same on an
/// account with ten transfers and on one with ten million.
extension LedgerStore {
    /// Transfers that debit or credit any of `accountIDs` (as the filter's flags say), oldest
    /// first (newest first with `reversed`), at most `filter.limit`.
    package func getAccountTransfers(_ accountIDs: [ID128], filter: TransferFilter) async throws -> [Transfer] {
        guard !filter.findsNothing, !accountIDs.isEmpty else { return [] }
        return try await database.read { db in try LedgerStore.transfers(db, accounts: accountIDs, filter: filter) }
    }

    /// The balance-history rows of one account with the `history` flag (none for others).
    package func getAccountBalances(_ accountID: ID128, filter: TransferFilter) async throws -> [AccountBalance] {
        guard !filter.findsNothing else { return [] }
        return try await database.read { db in try LedgerStore.balances(db, accounts: [accountID], filter: filter) }
    }

    /// An account's balances as of `timestamp`: its last balance-history row at or before it, or
    /// zeros (timestamp 0) when no transfer had touched it by then. Nil when that is unknown:
    /// transfers touched it before its history was kept (or it keeps none).
    package func balance(of accountID: ID128, asOf timestamp: UInt64) async throws -> AccountBalance? {
        try await database.read { db in try LedgerStore.balance(db, of: accountID, asOf: timestamp) }
    }

    // MARK: workspaces

    /// The workspace's balances now.
    package func balance(workspace: String) async throws -> WorkspaceBalance {
        let money = ChartOfAccounts.userMoneyAccountID(workspace: workspace)
        let minutes = ChartOfAccounts.userMinutesAccountID(workspace: workspace)
        let accounts = try await lookupAccounts([money, minutes])
        let m = accounts.first { $0.id == money }
        let f = accounts.first { $0.id == minutes }
        return WorkspaceBalance(workspace: workspace, money: m.map(Balances.init) ?? .zero, minutes: f.map(Balances.init) ?? .zero)
    }

    /// Several workspaces' balances now, read together (a workspace without accounts has zeros).
    package func balances(workspaces: [String]) async throws -> [String: WorkspaceBalance] {
        var out: [String: WorkspaceBalance] = [:]
        for chunk in stride(from: 0, to: workspaces.count, by: LedgerLimits.maxBatchEvents / 2) {
            let names = workspaces[chunk..<min(workspaces.count, chunk + LedgerLimits.maxBatchEvents / 2)]
            let ids = names.flatMap { [ChartOfAccounts.userMoneyAccountID(workspace: $0), ChartOfAccounts.userMinutesAccountID(workspace: $0)] }
            let accounts = Dictionary(try await lookupAccounts(ids).map { ($0.id, $0) }, uniquingKeysWith: { a, _ in a })
            for name in names {
                let m = accounts[ChartOfAccounts.userMoneyAccountID(workspace: name)]
                let f = accounts[ChartOfAccounts.userMinutesAccountID(workspace: name)]
                out[name] = WorkspaceBalance(workspace: name, money: m.map(Balances.init) ?? .zero, minutes: f.map(Balances.init) ?? .zero)
            }
        }
        return out
    }

    /// The workspace's balances as they were at `timestamp`; nil when its history does not reach back that far.
    package func balance(workspace: String, asOf timestamp: UInt64) async throws -> WorkspaceBalance? {
        let money = ChartOfAccounts.userMoneyAccountID(workspace: workspace)
        let minutes = ChartOfAccounts.userMinutesAccountID(workspace: workspace)
        let (m, f) = try await database.read { db in
            (try LedgerStore.balance(db, of: money, asOf: timestamp), try LedgerStore.balance(db, of: minutes, asOf: timestamp))
        }
        guard let m, let f else { return nil }
        return WorkspaceBalance(workspace: workspace, money: Balances(m), minutes: Balances(f), asOf: timestamp)
    }

    /// Transfers touching the workspace's money or free-minutes account.
    package func transfers(
        workspace: String, filter: TransferFilter = TransferFilter(limit: LedgerLimits.defaultQueryResults)
    ) async throws -> [Transfer] {
        try await getAccountTransfers(ChartOfAccounts.workspaceAccounts(workspace).map(\.id), filter: filter)
    }

    /// Balance-history rows of both of the workspace's accounts, merged in time order.
    package func balanceHistory(workspace: String, filter: TransferFilter) async throws -> [AccountBalance] {
        guard !filter.findsNothing else { return [] }
        let ids = ChartOfAccounts.workspaceAccounts(workspace).map(\.id)
        return try await database.read { db in try LedgerStore.balances(db, accounts: ids, filter: filter) }
    }

    // MARK: SQL

    /// One ordered, limited branch per (account, side), merged: each branch walks its index.
    static func transfers(_ db: any SQLConnection, accounts: [ID128], filter: TransferFilter) throws -> [Transfer] {
        var query = BranchQuery(filter)
        var branches: [String] = []
        for account in Set(accounts).sorted() {
            let p = query.bind(.text(account.description))
            for (flag, column) in [(TransferFilter.Flags.debits, "debit_account_id"), (.credits, "credit_account_id")]
            where filter.flags.contains(flag) {
                branches.append(
                    """
                    SELECT * FROM (SELECT * FROM ledger_transfers WHERE \(column) = \(p)\(query.conditions)
                    ORDER BY timestamp \(query.order) LIMIT \(query.limitPlaceholder)) AS b\(branches.count)
                    """)
            }
        }
        var seen = Set<ID128>()
        let rows = try db.query(branches.joined(separator: "\nUNION ALL\n"), query.parameters).map(transfer).filter { seen.insert($0.id).inserted }
        return query.page(rows, timestamp: \.timestamp)
    }

    static func balances(_ db: any SQLConnection, accounts: [ID128], filter: TransferFilter) throws -> [AccountBalance] {
        var query = BranchQuery(filter)
        var conditions = query.conditions
        if !filter.flags.contains(.debits) { conditions += " AND debited = 0" }
        if !filter.flags.contains(.credits) { conditions += " AND debited = 1" }
        var branches: [String] = []
        for account in Set(accounts).sorted() {
            let p = query.bind(.text(account.description))
            branches.append(
                """
                SELECT * FROM (SELECT * FROM ledger_account_balances WHERE account_id = \(p)\(conditions)
                ORDER BY timestamp \(query.order) LIMIT \(query.limitPlaceholder)) AS b\(branches.count)
                """)
        }
        return query.page(try db.query(branches.joined(separator: "\nUNION ALL\n"), query.parameters).map(balance), timestamp: \.timestamp)
    }

    static func balance(_ db: any SQLConnection, of accountID: ID128, asOf timestamp: UInt64) throws -> AccountBalance? {
        let at = Int64(min(timestamp, UInt64(Int64.max)))
        let id = SQLValue.text(accountID.description)
        if let row = try db.queryOne(
            """
            SELECT * FROM ledger_account_balances WHERE account_id = $1 AND timestamp <= $2 ORDER BY timestamp DESC LIMIT 1
            """, [id, .integer(at)])
        {
            return try balance(row)
        }
        // No history row by then: zeros, unless a transfer moved it before its history was kept.
        let moved = try db.queryOne(
            """
            SELECT 1 AS moved WHERE EXISTS (SELECT 1 FROM ledger_transfers WHERE debit_account_id = $1 AND timestamp <= $2)
                OR EXISTS (SELECT 1 FROM ledger_transfers WHERE credit_account_id = $1 AND timestamp <= $2)
            """, [id, .integer(at)])
        if moved != nil { return nil }
        return AccountBalance(
            accountID: accountID, debitsPending: 0, debitsPosted: 0, creditsPending: 0, creditsPosted: 0,
            timestamp: 0, transferID: .zero, code: 0, debited: false)
    }

    static func balance(_ row: SQLRow) throws -> AccountBalance {
        AccountBalance(
            accountID: ID128(hex: try row.string("account_id"))!, debitsPending: try u(row, "debits_pending"),
            debitsPosted: try u(row, "debits_posted"), creditsPending: try u(row, "credits_pending"),
            creditsPosted: try u(row, "credits_posted"), timestamp: try u(row, "timestamp"),
            transferID: ID128(hex: try row.string("transfer_id")) ?? .zero, code: UInt16(try row.int("code")),
            debited: try row.int("debited") != 0)
    }
}

/// The shared parts of a query made of one ordered, limited branch per account and side.
struct BranchQuery {
    let filter: TransferFilter
    let limit: Int
    private(set) var parameters: [SQLValue] = []
    private(set) var conditions = ""
    private(set) var limitPlaceholder = ""
    var order: String { filter.flags.contains(.reversed) ? "DESC" : "ASC" }

    init(_ filter: TransferFilter) {
        self.filter = filter
        limit = min(filter.limit, LedgerLimits.maxQueryResults)
        let (low, high) = filter.storedRange
        conditions = " AND timestamp >= \(bind(.integer(low))) AND timestamp <= \(bind(.integer(high)))"
        if filter.code != 0 { conditions += " AND code = \(bind(.integer(Int64(filter.code))))" }
        limitPlaceholder = bind(.integer(Int64(limit)))
    }

    /// Adds a parameter; returns its placeholder (PostgreSQL wants every one used, in order).
    mutating func bind(_ value: SQLValue) -> String {
        parameters.append(value)
        return "$\(parameters.count)"
    }

    /// The merged branches in the filter's order, cut to its limit.
    func page<Row>(_ rows: [Row], timestamp: (Row) -> UInt64) -> [Row] {
        let sorted = filter.flags.contains(.reversed) ? rows.sorted { timestamp($0) > timestamp($1) } : rows.sorted { timestamp($0) < timestamp($1) }
        return Array(sorted.prefix(limit))
    }
}

/// The four balances of an account, from an account or a balance-history row.
struct Balances {
    var debitsPending: UInt64, debitsPosted: UInt64, creditsPending: UInt64, creditsPosted: UInt64
    static let zero = Balances(debitsPending: 0, debitsPosted: 0, creditsPending: 0, creditsPosted: 0)
    init(debitsPending: UInt64, debitsPosted: UInt64, creditsPending: UInt64, creditsPosted: UInt64) {
        (self.debitsPending, self.debitsPosted, self.creditsPending, self.creditsPosted) = (
            debitsPending, debitsPosted, creditsPending, creditsPosted
        )
    }
    init(_ a: Account) {
        self.init(debitsPending: a.debitsPending, debitsPosted: a.debitsPosted, creditsPending: a.creditsPending, creditsPosted: a.creditsPosted)
    }
    init(_ b: AccountBalance) {
        self.init(debitsPending: b.debitsPending, debitsPosted: b.debitsPosted, creditsPending: b.creditsPending, creditsPosted: b.creditsPosted)
    }
}

extension WorkspaceBalance {
    init(workspace: String, money m: Balances, minutes f: Balances, asOf: UInt64? = nil) {
        func signed(_ a: UInt64, _ b: UInt64) -> Int64 { Int64(bitPattern: a &- b) }
        self.init(
            workspace: workspace, balanceMicros: signed(m.creditsPosted, m.debitsPosted),
            pendingMicros: signed(m.creditsPending, m.debitsPending),
            freeMinutesRemaining: signed(f.creditsPosted, f.debitsPosted &+ f.debitsPending), asOf: asOf)
    }
}
