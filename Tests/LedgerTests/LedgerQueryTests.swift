import LedgerPlugin
import SQL
import TestSupport
import Testing

private func id(_ n: UInt64) -> ID128 { ID128(low: n) }

/// Account 1 keeps history, 2 does not, 3 is the counterparty. Transfer n is applied at time
/// n × 1,000 (so that is its timestamp), with code 10 + n % 3.
private func seed(_ store: LedgerStore) async throws -> [Transfer] {
    #expect(
        try await store.createAccounts(
            [
                Account(id: id(1), ledger: 1, code: 2001, flags: .history),
                Account(id: id(2), ledger: 1, code: 2001),
                Account(id: id(3), ledger: 1, code: 1001),
            ], now: 100) == [.ok, .ok, .ok])
    var sent: [Transfer] = []
    for n in UInt64(1)...20 {
        let (from, to): (UInt64, UInt64) = n % 4 == 0 ? (1, 3) : (n % 2 == 0 ? (3, 2) : (3, 1))
        let t = Transfer(
            id: id(100 + n), debitAccountID: id(from), creditAccountID: id(to), amount: n * 1_000_000, ledger: 1,
            code: UInt16(10 + n % 3))
        #expect(try await store.createTransfers([t], now: n * 1_000) == [.ok])
        var stored = t
        stored.timestamp = n * 1_000
        sent.append(stored)
    }
    return sent
}

@Suite("Ledger queries: transfers by time and code, balance history")
struct LedgerQueryTests {
    @Test("an account's transfers filter by side, time range and code, in either order", arguments: DriverKind.allCases)
    func filters(_ kind: DriverKind) async throws {
        let (test, db, store) = try await LedgerStoreTests.open(kind)
        defer { withExtendedLifetime(test) {} }
        let sent = try await seed(store)
        let ofOne = sent.filter { $0.debitAccountID == id(1) || $0.creditAccountID == id(1) }
        #expect(try await store.getAccountTransfers([id(1)], filter: TransferFilter()) == ofOne)
        #expect(try await store.getAccountTransfers([id(1)], filter: TransferFilter(flags: .debits)) == ofOne.filter { $0.debitAccountID == id(1) })
        #expect(try await store.getAccountTransfers([id(1)], filter: TransferFilter(flags: .credits)) == ofOne.filter { $0.creditAccountID == id(1) })
        #expect(try await store.getAccountTransfers([id(1)], filter: TransferFilter(flags: [.debits, .credits, .reversed])) == ofOne.reversed())
        #expect(try await store.getAccountTransfers([id(1)], filter: TransferFilter(code: 11)) == ofOne.filter { $0.code == 11 })
        let window = TransferFilter(timestampMin: 5_000, timestampMax: 12_000)
        #expect(try await store.getAccountTransfers([id(1)], filter: window) == ofOne.filter { (5_000...12_000).contains($0.timestamp) })
        // Several accounts: each transfer once.
        #expect(try await store.getAccountTransfers([id(1), id(2), id(3)], filter: TransferFilter()) == sent)
        // Filters that find nothing, as TigerBeetle's.
        #expect(try await store.getAccountTransfers([id(1)], filter: TransferFilter(flags: .reversed)).isEmpty)
        #expect(try await store.getAccountTransfers([id(1)], filter: TransferFilter(timestampMin: 9, timestampMax: 8)).isEmpty)
        #expect(try await store.getAccountTransfers([id(1)], filter: TransferFilter(limit: 0)).isEmpty)
        #expect(try await store.getAccountTransfers([id(99)], filter: TransferFilter()).isEmpty)
        await db.close()
    }

    @Test("pages continue after a cursor until every transfer was seen once, forwards and backwards", arguments: DriverKind.allCases)
    func pages(_ kind: DriverKind) async throws {
        let (test, db, store) = try await LedgerStoreTests.open(kind)
        defer { withExtendedLifetime(test) {} }
        let sent = try await seed(store)
        for flags: TransferFilter.Flags in [[.debits, .credits], [.debits, .credits, .reversed]] {
            var filter = TransferFilter(limit: 3, flags: flags)
            var seen: [Transfer] = []
            var pages = 0
            while true {
                let page = try await store.getAccountTransfers([id(3)], filter: filter)
                seen += page
                pages += 1
                guard page.count == filter.limit, let last = page.last else { break }
                filter = filter.continuing(after: last.timestamp)
            }
            #expect(seen == (flags.contains(.reversed) ? sent.reversed() : sent))
            #expect(pages == 7)  // 20 transfers, 3 a page, the last one short
        }
        await db.close()
    }

    @Test("a history account keeps its balances after every transfer; balances as of any moment", arguments: DriverKind.allCases)
    func history(_ kind: DriverKind) async throws {
        let (test, db, store) = try await LedgerStoreTests.open(kind)
        defer { withExtendedLifetime(test) {} }
        let sent = try await seed(store)
        var debits: UInt64 = 0
        var credits: UInt64 = 0
        var expected: [AccountBalance] = []
        for t in sent where t.debitAccountID == id(1) || t.creditAccountID == id(1) {
            if t.debitAccountID == id(1) { debits += t.amount } else { credits += t.amount }
            expected.append(
                AccountBalance(
                    accountID: id(1), debitsPending: 0, debitsPosted: debits, creditsPending: 0, creditsPosted: credits,
                    timestamp: t.timestamp, transferID: t.id, code: t.code, debited: t.debitAccountID == id(1)))
        }
        #expect(try await store.getAccountBalances(id(1), filter: TransferFilter()) == expected)
        #expect(try await store.getAccountBalances(id(1), filter: TransferFilter(flags: .debits)) == expected.filter(\.debited))
        #expect(
            try await store.getAccountBalances(id(1), filter: TransferFilter(code: 12, flags: [.credits, .reversed]))
                == expected.filter { !$0.debited && $0.code == 12 }.reversed())
        #expect(try await store.getAccountBalances(id(2), filter: TransferFilter()).isEmpty)  // no history flag

        // As of a moment: the last change at or before it.
        for moment in stride(from: UInt64(500), through: 21_000, by: 500) {
            let asOf = try #require(try await store.balance(of: id(1), asOf: moment))
            let last = expected.last { $0.timestamp <= moment }
            #expect(asOf.creditsPosted == (last?.creditsPosted ?? 0) && asOf.debitsPosted == (last?.debitsPosted ?? 0))
        }
        // Without history: known only before anything moved it.
        #expect(try await store.balance(of: id(2), asOf: 1_000)?.creditsPosted == 0)
        #expect(try await store.balance(of: id(2), asOf: 2_000) == nil)
        await db.close()
    }

    @Test("pending, posted and expired transfers all show in balance history", arguments: DriverKind.allCases)
    func pendingHistory(_ kind: DriverKind) async throws {
        let (test, db, store) = try await LedgerStoreTests.open(kind)
        defer { withExtendedLifetime(test) {} }
        let second: UInt64 = 1_000_000_000
        _ = try await store.createAccounts(
            [Account(id: id(1), ledger: 1, code: 2001, flags: .history), Account(id: id(3), ledger: 1, code: 1001)],
            now: second)
        let hold = { (n: UInt64, amount: UInt64) in
            Transfer(id: id(n), debitAccountID: id(1), creditAccountID: id(3), amount: amount, ledger: 1, code: 7, flags: .pending, timeout: 5)
        }
        #expect(try await store.createTransfers([hold(10, 40), hold(11, 60)], now: 2 * second) == [.ok, .ok])
        #expect(
            try await store.createTransfers(
                [
                    Transfer(
                        id: id(12), debitAccountID: .zero, creditAccountID: .zero, amount: 25, ledger: 0, code: 0,
                        flags: .postPendingTransfer, pendingID: id(10))
                ], now: 3 * second) == [.ok])
        #expect(try await store.expirePending(now: 10 * second) == [id(11)])
        let rows = try await store.getAccountBalances(id(1), filter: TransferFilter())
        #expect(rows.map(\.debitsPending) == [40, 100, 60, 0])
        #expect(rows.map(\.debitsPosted) == [0, 0, 25, 25])
        #expect(rows.map(\.transferID) == [id(10), id(11), id(12), id(11)])
        #expect(rows[3].timestamp >= 10 * second)
        #expect(try await store.balance(of: id(1), asOf: 9 * second)?.debitsPending == 60)
        #expect(try await store.balance(of: id(1), asOf: 11 * second)?.debitsPending == 0)
        await db.close()
    }

    @Test("a workspace's transfers and its balance as of a past moment", arguments: DriverKind.allCases)
    func workspace(_ kind: DriverKind) async throws {
        let (test, db, store) = try await LedgerStoreTests.open(kind)
        defer { withExtendedLifetime(test) {} }
        try await store.ensureChart(now: 1)
        try await store.ensureWorkspace("acme", now: 2)
        let money = ChartOfAccounts.userMoneyAccountID(workspace: "acme")
        let revenue = ChartOfAccounts.operatorAccountID(.revenue)
        let receivable = ChartOfAccounts.operatorAccountID(.stripeReceivable)
        for n in UInt64(1)...6 {
            let charge = n % 2 == 1
            let t = Transfer(
                id: id(n), debitAccountID: charge ? money : receivable, creditAccountID: charge ? revenue : money,
                amount: 1_000_000 * n, ledger: ChartOfAccounts.moneyLedger,
                code: charge ? ChartOfAccounts.TransferCode.runnerCharge.rawValue : ChartOfAccounts.TransferCode.stripePayment.rawValue)
            #expect(try await store.createTransfers([t], now: n * 1_000) == [.ok])
        }
        let payments = try await store.transfers(workspace: "acme", filter: TransferFilter(code: ChartOfAccounts.TransferCode.stripePayment.rawValue))
        #expect(payments.map(\.id) == [id(2), id(4), id(6)])
        let page = try await store.transfers(workspace: "acme", filter: TransferFilter(timestampMin: 2_000, limit: 2, flags: [.debits, .credits]))
        #expect(page.map(\.id) == [id(2), id(3)])
        // After transfers 1..3: −1 + 2 − 3 dollars.
        let then = try #require(try await store.balance(workspace: "acme", asOf: 3_500))
        #expect(then.balanceMicros == -2_000_000 && then.asOf == 3_500)
        #expect(try await store.balance(workspace: "acme", asOf: 999)?.balanceMicros == 0)
        #expect(try await store.balance(workspace: "acme").balanceMicros == 3_000_000)
        #expect(try await store.balanceHistory(workspace: "acme", filter: TransferFilter()).count == 6)
        await db.close()
    }

    @Test("query parameters read timestamps as nanoseconds or ISO 8601 and refuse bad values")
    func parameters() throws {
        let filter = try LedgerQueryParameters(
            since: "2026-11-01T00:00:00Z", until: "1800000000000000000", code: "2001", limit: "50",
            reversed: true, debits: true
        ).filter()
        #expect(
            filter
                == TransferFilter(
                    code: 2001, timestampMin: 1_793_491_200_000_000_000, timestampMax: 1_800_000_000_000_000_000,
                    limit: 50, flags: [.debits, .reversed]))
        #expect(try LedgerQueryParameters(after: "41").filter().timestampMin == 42)
        #expect(try LedgerQueryParameters(after: "41", reversed: true).filter().timestampMax == 40)
        #expect(throws: (any Error).self) { try LedgerQueryParameters(limit: "0").filter() }
        #expect(throws: (any Error).self) { try LedgerQueryParameters(limit: "9000").filter() }
        #expect(throws: (any Error).self) { try LedgerQueryParameters(code: "x").filter() }
        #expect(throws: (any Error).self) { try LedgerQueryParameters(since: "yesterday").filter() }
    }
}
