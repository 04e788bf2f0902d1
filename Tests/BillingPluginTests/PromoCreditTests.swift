import BillingPlugin
import Foundation
import Host
import Hummingbird
import HummingbirdTesting
import LedgerPlugin
import SQL
import TestSupport
import Testing
import WorkflowPlugin

/// Promotional credits: the per-workspace workflow applies each grant and revocation once (row
/// and ledger transfer), refuses a revocation above what is available, and invoices use them.
@Suite("Promotional credits")
struct PromoCreditTests {
    static let usd: Int64 = 100_000_000

    static func request(_ id: String, _ amount: String, reason: String = "launch promo") -> BillingCredits.Request {
        BillingCredits.Request(creditID: id, amount: amount, reason: reason, initiatedBy: "finance@tenki.cloud")
    }

    static func balance(_ h: BillingHarness, _ workspace: String = "acme") async throws -> Int64 {
        try await LedgerStore(database: h.database).balance(workspace: workspace).balanceMicros
    }

    static func transfers(_ h: BillingHarness, code: ChartOfAccounts.TransferCode, _ workspace: String = "acme") async throws -> [Transfer] {
        try await LedgerStore(database: h.database).transfers(workspace: workspace, filter: TransferFilter(code: code.rawValue))
    }

    static func state(_ h: BillingHarness, _ workspace: String = "acme") async throws -> (run: WorkflowRun, state: BillingCredits.Input) {
        let engine = try #require(h.host.plugin(WorkflowPlugin.self)).engine
        let description = try await engine.describe(id: BillingCredits.workflowID(workspace: workspace))
        let bytes = try #require(description.state.first { $0.key == "credits" }?.value)
        return (description.run, try WorkflowJSON.decode(BillingCredits.Input.self, from: bytes, what: "state"))
    }

    @Test(
        "amounts parse exactly: at most 8 decimals, no sign, exponent or grouping",
        arguments: [
            ("25.00", 2_500_000_000), ("25", 2_500_000_000), ("0.00000001", 1), ("1.5", 150_000_000),
            ("9999999999.99999999", 999_999_999_999_999_999),
        ] as [(String, Int64)])
    func parsesAmounts(_ text: String, _ micros: Int64) throws {
        #expect(try PromoCredits.micros(dollars: text) == micros)
    }

    @Test(
        "bad amounts are refused with bad_amount",
        arguments: ["", "-1", "+1", "1e3", "25.", ".5", "1.123456789", "1,000", "12345678901", " 1", "1 ", "0x10", "２５"])
    func refusesAmounts(_ text: String) {
        #expect(throws: HostError.self) { try PromoCredits.micros(dollars: text) }
    }

    @Test("a grant is posted (3003) and stored once; the same credit id again changes nothing", arguments: DriverKind.allCases)
    func grantOnce(_ kind: DriverKind) async throws {
        let h = try await BillingHarness(kind)
        defer { withExtendedLifetime(h) {} }
        try await h.workspace("acme")
        let outcome = try await h.billing.credits.submit(.add, workspace: "acme", Self.request("c-1", "25.00"))
        guard case .applied(let entry, let available) = outcome else {
            Issue.record("not applied: \(outcome)")
            return
        }
        #expect(entry.kind == "grant" && entry.amountMicros == 25 * Self.usd && entry.reason == "launch promo")
        #expect(entry.initiatedBy == "finance@tenki.cloud" && available == 25 * Self.usd)
        #expect(try await Self.balance(h) == 25 * Self.usd)
        let posted = try await Self.transfers(h, code: .promoCredit)
        #expect(posted.count == 1 && posted.first?.amount == UInt64(25 * Self.usd))
        #expect(posted.first?.debitAccountID == ChartOfAccounts.operatorAccountID(.marketingExpense))
        // Submitted again (a retry): the request id is taken, the outcome is the first one's.
        guard case .applied = try await h.billing.credits.submit(.add, workspace: "acme", Self.request("c-1", "25.00")) else {
            Issue.record("a resubmission is reported applied")
            return
        }
        let listing = try await h.billing.credits.list(workspace: "acme")
        #expect(listing.credits.map(\.id) == ["c-1"] && listing.availableMicros == 25 * Self.usd && listing.available == "25")
        #expect(try await Self.balance(h) == 25 * Self.usd)
    }

    @Test("the same signal delivered twice applies once; a malformed one is recorded, not fatal", arguments: DriverKind.allCases)
    func duplicateSignal(_ kind: DriverKind) async throws {
        let h = try await BillingHarness(kind)
        defer { withExtendedLifetime(h) {} }
        try await h.workspace("acme")
        let engine = try #require(h.host.plugin(WorkflowPlugin.self)).engine
        let id = BillingCredits.workflowID(workspace: "acme")
        let payload = try WorkflowJSON.encode(Self.request("dup-1", "25.00"))
        _ = try await engine.signalWithStart(
            type: BillingCredits.workflowType, input: try WorkflowJSON.encode(BillingCredits.Input(workspaceID: "acme")), id: id,
            signal: BillingCredits.Signal.add.rawValue, payload: payload)
        try await engine.signal(id: id, name: BillingCredits.Signal.add.rawValue, payload: payload)
        try await engine.signal(id: id, name: BillingCredits.Signal.deduct.rawValue, payload: Array(#"{"credit_id":"x"}"#.utf8))
        try await engine.drain()
        let (run, state) = try await Self.state(h)
        #expect(run.status != .failed)
        #expect(state.recent.map(\.outcome) == [.applied, .duplicate, .invalid])
        #expect(state.availableMicros == 25 * Self.usd && state.signalsApplied == 3)
        #expect(try await Self.balance(h) == 25 * Self.usd)
        #expect(try await Self.transfers(h, code: .promoCredit).count == 1)
        #expect(try await h.billing.credits.list(workspace: "acme").credits.count == 1)
    }

    @Test("a revocation posts 3004; one above what is available is refused and posts nothing", arguments: DriverKind.allCases)
    func revoke(_ kind: DriverKind) async throws {
        let h = try await BillingHarness(kind)
        defer { withExtendedLifetime(h) {} }
        try await h.workspace("acme")
        _ = try await h.billing.credits.submit(.add, workspace: "acme", Self.request("g-1", "25.00"))
        let revoked = try await h.billing.credits.submit(.deduct, workspace: "acme", Self.request("r-1", "10", reason: "granted twice"))
        guard case .applied(let entry, let available) = revoked else {
            Issue.record("not applied: \(revoked)")
            return
        }
        #expect(entry.kind == "revoke" && available == 15 * Self.usd)
        #expect(try await Self.balance(h) == 15 * Self.usd)
        let reversal = try await Self.transfers(h, code: .promoCreditReversal)
        #expect(reversal.count == 1 && reversal.first?.amount == UInt64(10 * Self.usd))
        #expect(reversal.first?.creditAccountID == ChartOfAccounts.operatorAccountID(.marketingExpense))

        let refused = try await h.billing.credits.submit(.deduct, workspace: "acme", Self.request("r-2", "15.00000001"))
        guard case .refused(let action) = refused else {
            Issue.record("not refused: \(refused)")
            return
        }
        #expect(action.outcome == .refused && action.detail == "cannot revoke 15.00000001; 15 available")
        #expect(try await Self.balance(h) == 15 * Self.usd)
        #expect(try await Self.transfers(h, code: .promoCreditReversal).count == 1)
        let listing = try await h.billing.credits.list(workspace: "acme")
        #expect(listing.credits.count == 2 && listing.availableMicros == 15 * Self.usd)
        #expect(try await Self.state(h).state.recent.map(\.outcome) == [.applied, .applied, .refused])
    }

    @Test("an invoice preview applies the available promotional credit before the card", arguments: DriverKind.allCases)
    func invoiceUsesCredit(_ kind: DriverKind) async throws {
        let h = try await BillingHarness(kind)
        defer { withExtendedLifetime(h) {} }
        try await h.workspace("acme")
        try await h.subscribe("acme", arch: "x64", count: 10, started: "2026-10-01T00:00:00Z")
        _ = try await h.billing.credits.submit(.add, workspace: "acme", Self.request("g-1", "25.00"))
        _ = try await h.billing.credits.submit(.deduct, workspace: "acme", Self.request("r-1", "10.00"))
        let preview = try await h.invoices.preview(workspace: "acme", period: try BillingPeriod("2026-11"), policies: h.host.policies)
        let promo = preview.lines.filter { $0.kind == .promoCredit }
        #expect(promo.map(\.amountMicros) == [-15 * Self.usd])
        #expect(preview.totalMicros == preview.lines.reduce(0) { $0 + $1.amountMicros })
    }

    @Test("continues as new every 100 signals, carrying what is available", arguments: DriverKind.allCases)
    func continuesAsNew(_ kind: DriverKind) async throws {
        let h = try await BillingHarness(kind)
        defer { withExtendedLifetime(h) {} }
        try await h.workspace("acme")
        let engine = try #require(h.host.plugin(WorkflowPlugin.self)).engine
        _ = try await h.billing.credits.submit(.add, workspace: "acme", Self.request("g-1", "25.00"))
        let id = BillingCredits.workflowID(workspace: "acme")
        for _ in 0..<BillingCredits.signalsPerRun {
            try await engine.signal(id: id, name: BillingCredits.Signal.add.rawValue, payload: Array("{}".utf8))
        }
        try await engine.drain()
        let (run, state) = try await Self.state(h)
        #expect(run.runNumber == 2 && run.status != .failed)
        #expect(state.signalsApplied == 1 + BillingCredits.signalsPerRun && state.availableMicros == 25 * Self.usd)
        #expect(state.recent.count == BillingCredits.recentActionsKept)
        guard case .applied = try await h.billing.credits.submit(.deduct, workspace: "acme", Self.request("r-1", "5")) else {
            Issue.record("the next run takes signals")
            return
        }
        #expect(try await Self.balance(h) == 20 * Self.usd)
    }

    static func post(
        _ client: some TestClientProtocol, _ uri: String, _ body: String, _ check: @escaping (TestResponse) async throws -> Void
    )
        async throws
    {
        try await client.execute(
            uri: uri, method: .post, headers: [.contentType: "application/json"], body: ByteBuffer(string: body), testCallback: check)
    }

    @Test("over HTTP: grant, revoke, list; a missing reason or a bad amount is 400, too much revoked 422", arguments: DriverKind.allCases)
    func routes(_ kind: DriverKind) async throws {
        let h = try await BillingHarness(kind)
        defer { withExtendedLifetime(h) {} }
        try await h.workspace("acme")
        let uri = "/billing/workspaces/acme-slug/credits"
        try await TestHosts.routes(h.host) { client in
            try await Self.post(client, uri, #"{"amount":"25.00","reason":"launch","initiated_by":"ana@tenki.cloud","credit_id":"h-1"}"#) {
                #expect($0.status == .ok)
                let object = try #require(try JSONSerialization.jsonObject(with: Data(buffer: $0.body)) as? [String: Any])
                #expect(object["status"] as? String == "applied" && object["available"] as? String == "25")
                #expect(object["available_micros"] as? Int == 2_500_000_000)
                let credit = try #require(object["credit"] as? [String: Any])
                #expect(credit["id"] as? String == "h-1" && credit["kind"] as? String == "grant" && credit["amount"] as? String == "25")
                // The key's name, not what the body says, is who did it.
                #expect(credit["initiated_by"] as? String == "tests-ops")
            }
            try await Self.post(client, uri + "/revoke", #"{"amount":"10","reason":"typo","initiated_by":"ana@tenki.cloud"}"#) {
                #expect($0.status == .ok)
            }
            for body in [
                #"{"amount":"5","initiated_by":"ana@tenki.cloud"}"#, #"{"amount":"5","reason":"  ","initiated_by":"ana@tenki.cloud"}"#,
            ] {
                try await Self.post(client, uri, body) { _ = RouteAnswers.expectError($0, .badRequest, "bad_request") }
            }
            for body in [
                #"{"amount":"1.123456789","reason":"r","initiated_by":"a"}"#, #"{"amount":"0","reason":"r","initiated_by":"a"}"#,
                #"{"amount":"-5","reason":"r","initiated_by":"a"}"#, #"{"reason":"r","initiated_by":"a"}"#,
            ] {
                try await Self.post(client, uri, body) { _ = RouteAnswers.expectError($0, .badRequest, "bad_amount") }
            }
            try await Self.post(client, uri, #"{"amount":25.5,"reason":"r","initiated_by":"a"}"#) {
                _ = RouteAnswers.expectError($0, .badRequest, "bad_request")
            }
            try await Self.post(client, uri + "/revoke", #"{"amount":"15.01","reason":"r","initiated_by":"a"}"#) {
                _ = RouteAnswers.expectError($0, .unprocessableContent, "exceeds_available")
            }
            try await Self.post(client, "/billing/workspaces/nobody/credits", #"{"amount":"1","reason":"r","initiated_by":"a"}"#) {
                _ = RouteAnswers.expectError($0, .notFound, "not_found")
            }
            try await client.execute(uri: uri, method: .get) { response in
                #expect(response.status == .ok)
                let listing = try JSONDecoder().decode(PromoCredits.Listing.self, from: Data(buffer: response.body))
                #expect(listing.availableMicros == 15 * Self.usd && listing.credits.map(\.kind).sorted() == ["grant", "revoke"])
            }
        }
    }

    @Test("tenki credits add, revoke and list on the configured database", arguments: DriverKind.allCases)
    func commandLine(_ kind: DriverKind) async throws {
        let h = try await BillingHarness(kind)
        defer { withExtendedLifetime(h) {} }
        try await h.workspace("acme")
        await h.database.close()
        let storage = ["--data-dir", h.test.directory, "--database-url", h.test.url]
        let credit = ["--workspace", "acme-slug", "--reason", "conference", "--by", "ana@tenki.cloud"]
        let added = try TenkiProcess.run(["credits", "add", "--amount", "25.00"] + credit + storage)
        #expect(added.status == 0, "\(added.error)")
        #expect(added.output.contains("granted 25 USD, workspace acme") && added.output.contains("available 25 USD"))
        let revoked = try TenkiProcess.run(["credits", "revoke", "--amount", "10", "--json"] + credit + storage)
        #expect(revoked.status == 0, "\(revoked.error)")
        let object = try JSONSerialization.jsonObject(with: Data(revoked.output.utf8)) as? [String: Any]
        #expect(object?["available_micros"] as? Int == 1_500_000_000 && object?["status"] as? String == "applied")
        let refused = try TenkiProcess.run(["credits", "revoke", "--amount", "100"] + credit + storage)
        #expect(refused.status == 65 && refused.error.contains("cannot revoke 100; 15 available"))
        let noReason = try TenkiProcess.run(["credits", "add", "--amount", "1", "--workspace", "acme", "--by", "ana@tenki.cloud"] + storage)
        #expect(noReason.status == 64)
        let badAmount = try TenkiProcess.run(["credits", "add", "--amount", "1.5e2"] + credit + storage)
        #expect(badAmount.status == 64 && badAmount.error.contains("at most 8 decimals"))
        let listed = try TenkiProcess.run(["credits", "list", "--workspace", "acme", "--json"] + storage)
        #expect(listed.status == 0, "\(listed.error)")
        let listing = try JSONDecoder().decode(PromoCredits.Listing.self, from: Data(listed.output.utf8))
        #expect(listing.available == "15" && listing.credits.count == 2 && listing.credits.allSatisfy { $0.initiatedBy == "ana@tenki.cloud" })
        let balance = try TenkiProcess.run(["ledger", "balance", "--workspace", "acme", "--json"] + storage)
        let money = try JSONSerialization.jsonObject(with: Data(balance.output.utf8)) as? [String: Any]
        #expect(money?["balance_micros"] as? Int == 1_500_000_000)
    }

    @Test("with workflow_worker = false a grant is queued (202) for the server's worker, which applies it", arguments: DriverKind.allCases)
    func queuedForTheServer(_ kind: DriverKind) async throws {
        let h = try await BillingHarness(kind) { $0.workflowWorker = false }
        defer { withExtendedLifetime(h) {} }
        try await h.workspace("acme")
        let engine = try #require(h.host.plugin(WorkflowPlugin.self)).engine
        try await TestHosts.routes(h.host) { client in
            try await Self.post(client, "/billing/workspaces/acme/credits", #"{"amount":"7","reason":"r","initiated_by":"a","credit_id":"q-1"}"#) {
                #expect($0.status == .accepted)
                #expect(String(buffer: $0.body) == #"{"credit_id":"q-1","status":"queued"}"#)
            }
            #expect(try await h.billing.credits.list(workspace: "acme").credits.isEmpty)
            try await engine.drain()
            #expect(try await Self.balance(h) == 7 * Self.usd)
            #expect(try await h.billing.credits.list(workspace: "acme").available == "7")
        }
    }
}
