import Host
import LedgerPlugin
import SQL
import TestSupport
import Testing

private func id(_ n: UInt64) -> ID128 { ID128(low: n) }

@Suite("Ledger storage")
struct LedgerStoreTests {
    static func open(_ kind: DriverKind) async throws -> (TestDatabase, any Database, LedgerStore) {
        let test = try TestDatabase.make(kind)
        let db = try test.open(poolSize: 8)
        try await Migrator.migrate(db, plugin: LedgerPlugin.name, migrations: LedgerPlugin.migrations)
        return (test, db, LedgerStore(database: db))
    }

    @Test("accounts and transfers persist with their results, and the same ids again change nothing", arguments: DriverKind.allCases)
    func persistAndIdempotent(_ kind: DriverKind) async throws {
        let (test, db, store) = try await Self.open(kind)
        defer { withExtendedLifetime(test) {} }
        let accounts = [Account(id: id(1), ledger: 1, code: 1001), Account(id: id(2), ledger: 1, code: 2001, flags: .debitsMustNotExceedCredits)]
        #expect(try await store.createAccounts(accounts, now: 10) == [.ok, .ok])
        #expect(try await store.createAccounts(accounts, now: 11) == [.exists, .exists])
        let batch = [
            Transfer(id: id(100), debitAccountID: id(1), creditAccountID: id(2), amount: 3_000_000, ledger: 1, code: 2001),
            Transfer(id: id(101), debitAccountID: id(2), creditAccountID: id(1), amount: 5_000_000, ledger: 1, code: 2001),
        ]
        #expect(try await store.createTransfers(batch, now: 20) == [.ok, .exceedsCredits])
        #expect(try await store.createTransfers(batch, now: 21) == [.exists, .exceedsCredits])
        let loaded = try await store.lookupAccounts([id(1), id(2)])
        #expect(loaded.map(\.debitsPosted) == [3_000_000, 0])
        #expect(loaded.map(\.creditsPosted) == [0, 3_000_000])
        let transfers = try await store.lookupTransfers([id(100), id(101)])
        #expect(transfers.map(\.id) == [id(100)])
        #expect(transfers[0].timestamp > loaded[1].timestamp)
        await db.close()
    }

    @Test("a store's cached accounts give way to what another store, or a database connection, changed since", arguments: DriverKind.allCases)
    func cachedAccountsFollowOtherWriters(_ kind: DriverKind) async throws {
        let (test, db, first) = try await Self.open(kind)
        defer { withExtendedLifetime(test) {} }
        let second = LedgerStore(database: db)
        let other = try test.open(poolSize: 2)  // another pool: as another process would
        let third = LedgerStore(database: other)
        _ = try await first.createAccounts(
            [
                Account(id: id(1), ledger: 1, code: 1),
                Account(id: id(2), ledger: 1, code: 1, flags: .debitsMustNotExceedCredits),
            ], now: 10)
        func move(_ store: LedgerStore, _ n: UInt64, from: UInt64, to: UInt64, _ amount: UInt64) async throws -> CreateTransferResult {
            try await store.createTransfers(
                [
                    Transfer(
                        id: id(100 + n), debitAccountID: id(from), creditAccountID: id(to), amount: amount,
                        ledger: 1, code: 1)
                ], now: 20 + n)[0]
        }
        #expect(try await move(first, 1, from: 1, to: 2, 50) == .ok)  // first caches both accounts
        #expect(try await move(second, 2, from: 2, to: 1, 50) == .ok)  // account 2 is empty again
        #expect(try await move(first, 3, from: 2, to: 1, 1) == .exceedsCredits)
        #expect(try await move(third, 4, from: 1, to: 2, 20) == .ok)
        #expect(try await move(first, 5, from: 2, to: 1, 20) == .ok)
        #expect(try await move(first, 6, from: 2, to: 1, 1) == .exceedsCredits)
        // A transaction that changes an account and is rolled back leaves the cache nothing to trust.
        struct Abandoned: Error {}
        await #expect(throws: Abandoned.self) {
            try await db.transaction { conn in
                try conn.execute("UPDATE ledger_accounts SET credits_posted = credits_posted + 5 WHERE id = $1", [.text(id(2).description)])
                try conn.execute("UPDATE ledger_meta SET generation = 7 WHERE id = 1")
                throw Abandoned()
            }
        }
        #expect(try await move(first, 7, from: 2, to: 1, 1) == .exceedsCredits)
        let accounts = try await first.lookupAccounts([id(1), id(2)])
        #expect(accounts.map(\.debitsPosted) == [70, 70])
        #expect(accounts.map(\.creditsPosted) == [70, 70])
        await other.close()
        await db.close()
    }

    @Test("pending transfers post, and expire by the sweeper, across transactions", arguments: DriverKind.allCases)
    func pendingAcrossTransactions(_ kind: DriverKind) async throws {
        let (test, db, store) = try await Self.open(kind)
        defer { withExtendedLifetime(test) {} }
        let s: UInt64 = 1_000_000_000
        _ = try await store.createAccounts([Account(id: id(1), ledger: 1, code: 1), Account(id: id(2), ledger: 1, code: 1)], now: s)
        #expect(
            try await store.createTransfers(
                [
                    Transfer(
                        id: id(10), debitAccountID: id(1), creditAccountID: id(2), amount: 70,
                        ledger: 1, code: 1, flags: .pending, timeout: 5)
                ], now: 2 * s) == [.ok])
        #expect(
            try await store.createTransfers(
                [
                    Transfer(
                        id: id(11), debitAccountID: id(1), creditAccountID: id(2), amount: 30,
                        ledger: 1, code: 1, flags: .pending, timeout: 5)
                ], now: 2 * s) == [.ok])
        #expect(
            try await store.createTransfers(
                [
                    Transfer(
                        id: id(12), debitAccountID: .zero, creditAccountID: .zero, amount: 0, ledger: 0,
                        code: 0, flags: .postPendingTransfer, pendingID: id(10))
                ], now: 3 * s) == [.ok])
        #expect(try await store.expirePending(now: 4 * s).isEmpty)
        #expect(try await store.expirePending(now: 8 * s) == [id(11)])
        let accounts = try await store.lookupAccounts([id(1), id(2)])
        #expect(accounts[0].debitsPending == 0 && accounts[0].debitsPosted == 70)
        #expect(accounts[1].creditsPending == 0 && accounts[1].creditsPosted == 70)
        #expect(
            try await store.createTransfers(
                [
                    Transfer(
                        id: id(13), debitAccountID: .zero, creditAccountID: .zero, amount: 0, ledger: 0,
                        code: 0, flags: .voidPendingTransfer, pendingID: id(11))
                ], now: 9 * s)
                == [.pendingTransferExpired])
        await db.close()
    }

    @Test("concurrent clients: balances equal the sum of the stored transfers, no account overdraws", arguments: DriverKind.allCases)
    func concurrentClients(_ kind: DriverKind) async throws {
        let (test, db, store) = try await Self.open(kind)
        defer { withExtendedLifetime(test) {} }
        var accounts = [Account(id: id(1), ledger: 1, code: 1001)]
        for n in 2...6 { accounts.append(Account(id: id(UInt64(n)), ledger: 1, code: 2001, flags: .debitsMustNotExceedCredits)) }
        _ = try await store.createAccounts(accounts, now: 1)
        let counter = LockedBox<UInt64>(1_000)
        func nextID() -> UInt64 {
            counter.value += 1
            return counter.value
        }
        try await withThrowingTaskGroup(of: Void.self) { group in
            for client in 0..<6 {
                group.addTask {
                    for round in 0..<25 {
                        var batch: [Transfer] = []
                        for _ in 0..<8 {
                            let from = UInt64.random(in: 1...6)
                            let to = UInt64.random(in: 1...6)
                            batch.append(
                                Transfer(
                                    id: id(nextID()), debitAccountID: id(from), creditAccountID: id(to),
                                    amount: UInt64.random(in: 1...1_000), ledger: 1, code: 2001,
                                    flags: Bool.random() ? .linked : []))
                        }
                        batch[batch.count - 1].flags = []
                        let results = try await store.createTransfers(batch, now: UInt64(client * 1_000 + round))
                        #expect(results.count == batch.count)
                    }
                }
            }
            try await group.waitForAll()
        }
        let stored = try await db.query("SELECT debit_account_id, credit_account_id, amount FROM ledger_transfers")
        var expected: [String: (debits: Int64, credits: Int64)] = [:]
        for row in stored {
            let amount = try row.int("amount")
            expected[try row.string("debit_account_id"), default: (0, 0)].debits += amount
            expected[try row.string("credit_account_id"), default: (0, 0)].credits += amount
        }
        let balances = try await store.lookupAccounts((1...6).map { id(UInt64($0)) })
        var totalDebits: UInt64 = 0
        var totalCredits: UInt64 = 0
        for account in balances {
            let e = expected[account.id.description] ?? (0, 0)
            #expect(Int64(account.debitsPosted) == e.debits && Int64(account.creditsPosted) == e.credits)
            if account.flags.contains(.debitsMustNotExceedCredits) { #expect(account.debitsPosted <= account.creditsPosted) }
            totalDebits += account.debitsPosted
            totalCredits += account.creditsPosted
        }
        #expect(totalDebits == totalCredits)
        #expect(!stored.isEmpty)
        // Timestamps are unique and strictly increasing in the order batches were applied.
        let stamps = try await db.query("SELECT COUNT(DISTINCT timestamp) AS n, COUNT(*) AS m FROM ledger_transfers")
        #expect(try stamps[0].int("n") == stamps[0].int("m"))
        await db.close()
    }
}

@Suite("Ledger batch limits")
struct LedgerLimitTests {
    @Test("a batch above 8,189 events is refused whole")
    func batchLimit() async throws {
        let (test, db, store) = try await LedgerStoreTests.open(.sqlite)
        defer { withExtendedLifetime(test) {} }
        let batch = (1...8_190).map { Account(id: ID128(low: UInt64($0)), ledger: 1, code: 1) }
        await #expect(throws: HostError.self) { try await store.createAccounts(batch, now: 1) }
        #expect(try await store.createAccounts(Array(batch.prefix(8_189)), now: 1).allSatisfy { $0 == .ok })
        await db.close()
    }
}

@Suite("Chart of accounts and workspace balances")
struct ChartTests {
    @Test("charges and free minutes move a workspace's balances", arguments: DriverKind.allCases)
    func workspaceBalances(_ kind: DriverKind) async throws {
        let (test, db, store) = try await LedgerStoreTests.open(kind)
        defer { withExtendedLifetime(test) {} }
        try await store.ensureChart(now: 1)
        try await store.ensureChart(now: 2)  // idempotent
        try await store.ensureWorkspace("acme", now: 3)
        let money = ChartOfAccounts.userMoneyAccountID(workspace: "acme")
        let minutes = ChartOfAccounts.userMinutesAccountID(workspace: "acme")
        let results = try await store.createTransfers(
            [
                // Signup credit: 1,000 free minutes.
                Transfer(
                    id: ID128(low: 1), debitAccountID: ChartOfAccounts.freeMinutesOperatorID(ChartOfAccounts.freeMinutesGrantsCode),
                    creditAccountID: minutes, amount: 1_000, ledger: ChartOfAccounts.freeMinutesLedger,
                    code: ChartOfAccounts.TransferCode.signupCredit.rawValue, flags: .linked),
                // A job: 20 free minutes and $0.03, posted together.
                Transfer(
                    id: ID128(low: 2), debitAccountID: minutes,
                    creditAccountID: ChartOfAccounts.freeMinutesOperatorID(ChartOfAccounts.freeMinutesConsumedCode), amount: 20,
                    ledger: ChartOfAccounts.freeMinutesLedger, code: ChartOfAccounts.TransferCode.runnerCharge.rawValue, flags: .linked),
                Transfer(
                    id: ID128(low: 3), debitAccountID: money, creditAccountID: ChartOfAccounts.operatorAccountID(.revenue),
                    amount: 3_000_000, ledger: ChartOfAccounts.moneyLedger, code: ChartOfAccounts.TransferCode.runnerCharge.rawValue),
                // More free minutes than are left: refused, nothing moves.
                Transfer(
                    id: ID128(low: 4), debitAccountID: minutes,
                    creditAccountID: ChartOfAccounts.freeMinutesOperatorID(ChartOfAccounts.freeMinutesConsumedCode), amount: 5_000,
                    ledger: ChartOfAccounts.freeMinutesLedger, code: ChartOfAccounts.TransferCode.runnerCharge.rawValue),
            ], now: 10)
        #expect(results == [.ok, .ok, .ok, .exceedsCredits])
        let balance = try await store.balance(workspace: "acme")
        #expect(balance == WorkspaceBalance(workspace: "acme", balanceMicros: -3_000_000, pendingMicros: 0, freeMinutesRemaining: 980))
        #expect(try await store.transfers(workspace: "acme").map(\.id) == [ID128(low: 1), ID128(low: 2), ID128(low: 3)])
        #expect(try await store.allAccounts().count == 9)  // 7 operator + 2 for the workspace
        await db.close()
    }
}
