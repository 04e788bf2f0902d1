import Foundation
import Host
import Hummingbird
import HummingbirdTesting
import LedgerPlugin
import TestSupport
import Testing

/// `/ledger/workspaces/{workspace}/balance | transfers | history` in-process.
@Suite("Ledger routes")
struct LedgerRouteTests {
    static func openHost(_ test: TestDatabase) async throws -> (TenkiHost, LedgerStore) {
        let host = try await TestHosts.open(test, plugins: [LedgerPlugin.self])
        return (host, try #require(host.plugin(LedgerPlugin.self)).store)
    }

    /// Charges of $1 and $3 and a payment of $2 to `acme`; returns when the first was posted.
    static func transfers(_ store: LedgerStore) async throws -> UInt64 {
        try await store.ensureWorkspace("acme", now: LedgerClock.nowNanoseconds())
        let money = ChartOfAccounts.userMoneyAccountID(workspace: "acme")
        let revenue = ChartOfAccounts.operatorAccountID(.revenue)
        let receivable = ChartOfAccounts.operatorAccountID(.stripeReceivable)
        for n in UInt64(1)...3 {
            let charge = n % 2 == 1
            let transfer = Transfer(
                id: ID128(high: 7, low: n), debitAccountID: charge ? money : receivable, creditAccountID: charge ? revenue : money,
                amount: 1_000_000 * n, ledger: ChartOfAccounts.moneyLedger,
                code: charge ? ChartOfAccounts.TransferCode.runnerCharge.rawValue : ChartOfAccounts.TransferCode.stripePayment.rawValue)
            #expect(try await store.createTransfers([transfer], now: LedgerClock.nowNanoseconds()) == [.ok])
        }
        return try await store.transfers(workspace: "acme").first!.timestamp
    }

    @Test("a balance is the workspace's balance encoded; transfers and history page", arguments: DriverKind.allCases)
    func reads(_ kind: DriverKind) async throws {
        let test = try TestDatabase.make(kind)
        let (host, store) = try await Self.openHost(test)
        let first = try await Self.transfers(store)
        try await TestHosts.routes(host) { client in
            try await client.execute(uri: "/ledger/workspaces/acme/balance", method: .get) { response in
                #expect(response.status == .ok)
                #expect(
                    RouteAnswers.text(response)
                        == #"{"balance_micros":-2000000,"free_minutes_remaining":0,"pending_micros":0,"workspace":"acme"}"#)
            }
            try await client.execute(uri: "/ledger/workspaces/acme/balance?as_of=\(first)", method: .get) { response in
                #expect(response.status == .ok)
                #expect(
                    RouteAnswers.text(response)
                        == #"{"as_of":\#(first),"balance_micros":-1000000,"free_minutes_remaining":0,"pending_micros":0,"workspace":"acme"}"#)
            }
            try await client.execute(uri: "/ledger/workspaces/acme/transfers?limit=2", method: .get) { response in
                #expect(response.status == .ok)
                #expect((RouteAnswers.json(response) as? [[String: Any]])?.count == 2)
                #expect(response.headers[HTTPFields.Element.Name("Tenki-Next-After")!] != nil)
            }
            try await client.execute(uri: "/ledger/workspaces/acme/history", method: .get) { response in
                #expect(response.status == .ok)
                #expect((RouteAnswers.json(response) as? [[String: Any]])?.count == 3)
                #expect(response.headers[HTTPFields.Element.Name("Tenki-Next-After")!] == nil)
            }
        }
    }

    @Test("bad parameters 400 naming them, an unknown view 404")
    func errors() async throws {
        let test = try TestDatabase.make(.sqlite)
        let (host, store) = try await Self.openHost(test)
        _ = try await Self.transfers(store)
        try await TestHosts.routes(host) { client in
            try await client.execute(uri: "/ledger/workspaces/acme/balance?as_of=yesterday", method: .get) { response in
                #expect(RouteAnswers.expectError(response, .badRequest, "bad_request").contains("as_of"))
            }
            try await client.execute(uri: "/ledger/workspaces/acme/invoices", method: .get) { response in
                RouteAnswers.expectError(response, .notFound, "not_found")
            }
            for uri in ["/ledger/workspaces/acme/transfers?limit=0", "/ledger/workspaces/acme/history?code=x"] {
                try await client.execute(uri: uri, method: .get) { response in
                    RouteAnswers.expectError(response, .badRequest, "bad_request")
                }
            }
        }
    }

    @Test("a database gone mid-request is a clean 503", arguments: DriverKind.allCases)
    func databaseGone(_ kind: DriverKind) async throws {
        let test = try TestDatabase.make(kind)
        let (host, _) = try await Self.openHost(test)
        try await TestHosts.routes(host) { client in
            try await TestHosts.expectUnavailable(
                client, test, host,
                uris: [
                    "/ledger/workspaces/acme/balance", "/ledger/workspaces/acme/transfers",
                    "/ledger/workspaces/acme/history",
                ])
        }
    }
}
