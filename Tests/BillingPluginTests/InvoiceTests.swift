import BillingPlugin
import Foundation
import Host
import Hummingbird
import HummingbirdTesting
import SQL
import TestSupport
import Testing

/// Invoices from stored charges and `billing.lua`'s monthly lines, against hand-computed tables.
@Suite("Invoices")
struct InvoiceTests {
    static let november = try! BillingPeriod("2026-11")
    typealias Row = (kind: InvoiceLine.Kind, sku: String?, quantity: Int64, amount: Int64)

    static func rows(_ invoice: Invoice) -> [String] {
        invoice.lines.map { "\($0.kind.rawValue) \($0.sku ?? "-") \($0.quantity) \($0.amountMicros)" }
    }

    static func expect(_ invoice: Invoice, _ rows: [Row], sourceLocation: SourceLocation = #_sourceLocation) {
        #expect(Self.rows(invoice) == rows.map { "\($0.kind.rawValue) \($0.sku ?? "-") \($0.quantity) \($0.amount)" }, sourceLocation: sourceLocation)
        #expect(invoice.lines.reduce(0) { $0 + $1.amountMicros } == invoice.totalMicros, sourceLocation: sourceLocation)
        #expect(invoice.totalMicros == invoice.amountDueCents * 1_000_000, sourceLocation: sourceLocation)
    }

    /// Four SKUs, free minutes, a late job, storage from day 15, an add-on from day 16, slots all
    /// month, the monthly credit and a promotional credit; the rounding line makes whole cents.
    static func monthOfA(_ h: BillingHarness) async throws {
        try await h.workspace("ws-a")
        try await h.charge("ws-a", job: 1, labels: ["tenki-standard-2c-4gb"], completed: "2026-11-03T10:00:00Z", minutes: 100)
        try await h.charge("ws-a", job: 2, labels: ["tenki-standard-4c-8gb"], completed: "2026-11-10T10:00:00Z", minutes: 50)
        try await h.charge("ws-a", job: 3, labels: ["tenki-premium-4c-8gb"], completed: "2026-11-11T10:00:00Z", minutes: 10)
        try await h.charge("ws-a", job: 4, labels: ["tenki-macos-m4-6c"], completed: "2026-11-20T10:00:00Z", minutes: 30)
        try await h.charge("ws-a", job: 5, labels: ["tenki-standard-2c-4gb"], completed: "2026-10-31T23:00:00Z", minutes: 10)
        try await h.charge("ws-a", job: 6, labels: ["tenki-standard-2c-4gb"], completed: "2026-11-04T10:00:00Z", minutes: 20, freeMinutes: 100)
        try await h.charge("ws-a", job: 7, labels: ["tenki-standard-2c-4gb"], completed: "2026-12-01T00:00:00Z", minutes: 5)
        try await StorageSnapshots.record(
            h.database, .init(workspaceID: "ws-a", day: "2026-11-15", billableBytes: 20_000_000_000, cacheBytes: 9_000_000_000), now: 0)
        try await h.subscribe("ws-a", addon: "priority-queue-boost", started: "2026-11-16T09:00:00Z")
        try await h.subscribe("ws-a", arch: "x64", count: 10, started: "2026-10-01T00:00:00Z")
        try await h.promo("ws-a", micros: 500_000_000)
    }

    static let novemberOfA: [Row] = [
        (.usage, "macos-m4-6c", 30, 120_000_000),
        (.usage, "x64-2c-4gb", 20, 0),
        (.usage, "x64-2c-4gb", 100, 30_000_000),
        (.usage, "x64-4c-8gb", 60, 36_000_000),
        (.usage, "x64-4c-8gb", 10, 3_000_000),
        (.lateUsage, nil, 10, 3_000_000),
        (.addon, nil, 1, 2_450_000_000),
        (.slots, nil, 10, 7_000_000_000),
        (.storage, nil, 1, 213_333_333),
        (.monthlyCredit, nil, 1, -192_000_000),
        (.promoCredit, nil, 1, -500_000_000),
        (.rounding, nil, 1, -333_333),
    ]

    @Test("a month's invoice equals the hand-computed table, to the micro-cent", arguments: DriverKind.allCases)
    func handComputed(_ kind: DriverKind) async throws {
        let h = try await BillingHarness(kind)
        defer { withExtendedLifetime(h) {} }
        try await Self.monthOfA(h)
        let preview = try await h.invoices.preview(workspace: "ws-a", period: Self.november, policies: h.host.policies)
        #expect(preview.status == .preview && preview.id == nil && preview.number == nil)
        Self.expect(preview, Self.novemberOfA)
        #expect(preview.amountDueCents == 9_163)
        #expect(preview.lines.first { $0.kind == .lateUsage }?.description.hasPrefix("2026-10-31: ") == true)
        #expect(preview.lines.allSatisfy { !$0.policyVersion.isEmpty })
        #expect(preview.lines.allSatisfy { ($0.sku != nil) == ($0.kind == .usage) })

        let draft = try await h.invoices.draft(
            workspace: "ws-a", period: Self.november, policies: h.host.policies, now: BillingHarness.ms("2026-12-01T00:05:00Z"))
        #expect(draft.status == .draft && draft.number == nil)
        #expect(draft.lines == preview.lines)
        let issued = try await h.invoices.issue(id: try #require(draft.id), now: BillingHarness.ms("2026-12-01T00:06:00Z"))
        #expect(issued.status == .issued && issued.number == "TNK-2026-000001")
        #expect(issued.issuedAt == "2026-12-01T00:06:00.000Z")

        // Nothing is billed twice: drafting and issuing again return the same invoice.
        let again = try await h.invoices.draft(workspace: "ws-a", period: Self.november, policies: h.host.policies, now: 0)
        #expect(again == issued)
        #expect(try await h.invoices.issue(id: issued.id!, now: 0) == issued)
        #expect(try await h.invoices.invoice("TNK-2026-000001") == issued)
        let history = try await h.invoices.history(invoice: issued.id!)
        #expect(history.map(\.event) == ["drafted", "issued"])
    }

    @Test("a job charged after its month was invoiced lands once, on the next invoice, as a dated line", arguments: DriverKind.allCases)
    func lateUsage(_ kind: DriverKind) async throws {
        let h = try await BillingHarness(kind)
        defer { withExtendedLifetime(h) {} }
        try await Self.monthOfA(h)
        let issued = try await h.invoices.issue(
            id: try #require(try await h.invoices.draft(workspace: "ws-a", period: Self.november, policies: h.host.policies, now: 1).id), now: 2)
        // The webhook of a job that finished on November 30th arrives after the cycle.
        try await h.charge("ws-a", job: 8, labels: ["tenki-standard-8c-16gb"], completed: "2026-11-30T22:00:00Z", minutes: 7)
        #expect(try await h.invoices.invoice(issued.id!) == issued)
        let december = try await h.invoices.preview(workspace: "ws-a", period: try BillingPeriod("2026-12"), policies: h.host.policies)
        let late = december.lines.filter { $0.kind == .lateUsage }
        #expect(late.map(\.quantity) == [7] && late.map(\.amountMicros) == [7 * 1_200_000])
        #expect(late.first?.description.hasPrefix("2026-11-30: ") == true)
        // December's own job (completed at 00:00 on the 1st) is December usage; the promo credit was used up.
        #expect(december.lines.filter { $0.kind == .usage }.map(\.amountMicros) == [1_500_000])
        #expect(!december.lines.contains { $0.kind == .promoCredit })
        let decemberInvoice = try await h.invoices.draft(workspace: "ws-a", period: try BillingPeriod("2026-12"), policies: h.host.policies, now: 3)
        #expect(decemberInvoice.lines == december.lines)
        let taken = try await h.database.query("SELECT invoice_id, COUNT(*) AS n FROM billing_invoice_usage GROUP BY invoice_id ORDER BY n")
        #expect(try taken.map { try $0.int("n") } == [2, 6])
    }

    @Test("a contract's rates, discount and commitment true-up", arguments: DriverKind.allCases)
    func contract(_ kind: DriverKind) async throws {
        let h = try await BillingHarness(kind)
        defer { withExtendedLifetime(h) {} }
        try await h.workspace("ws-c", contract: "example-enterprise")
        try await h.charge(
            "ws-c", job: 1, labels: ["tenki-standard-4c-8gb"], completed: "2026-11-05T10:00:00Z", minutes: 100, contract: "example-enterprise")
        let invoice = try await h.invoices.preview(workspace: "ws-c", period: Self.november, policies: h.host.policies)
        Self.expect(
            invoice,
            [
                (.usage, "x64-4c-8gb", 100, 50_000_000), (.contractDiscount, nil, 1, -5_000_000), (.trueUp, nil, 1, 199_955_000_000),
                (.monthlyCredit, nil, 1, -45_000_000),
            ])
        #expect(invoice.amountDueCents == 199_955)
    }

    @Test("numbers are gap-free per year of issue", arguments: DriverKind.allCases)
    func numbering(_ kind: DriverKind) async throws {
        let h = try await BillingHarness(kind)
        defer { withExtendedLifetime(h) {} }
        var numbers: [String] = []
        for (i, issuedAt) in ["2026-12-01T00:05:00Z", "2026-12-01T00:06:00Z", "2027-01-01T00:05:00Z"].enumerated() {
            try await h.workspace("ws-\(i)")
            try await h.charge("ws-\(i)", job: i, labels: ["tenki-standard-2c-4gb"], completed: "2026-11-05T10:00:00Z", minutes: 3)
            let draft = try await h.invoices.draft(workspace: "ws-\(i)", period: Self.november, policies: h.host.policies, now: 0)
            numbers.append(try await h.invoices.issue(id: draft.id!, now: BillingHarness.ms(issuedAt)).number ?? "")
        }
        #expect(numbers == ["TNK-2026-000001", "TNK-2026-000002", "TNK-2027-000001"])
    }

    @Test("invoices over HTTP: list, show, CSV, preview, history; another workspace's invoice is 404", arguments: DriverKind.allCases)
    func routes(_ kind: DriverKind) async throws {
        let h = try await BillingHarness(kind)
        defer { withExtendedLifetime(h) {} }
        try await Self.monthOfA(h)
        try await h.workspace("ws-b")
        let draft = try await h.invoices.draft(workspace: "ws-a", period: Self.november, policies: h.host.policies, now: 1)
        let issued = try await h.invoices.issue(id: draft.id!, now: BillingHarness.ms("2026-12-01T00:06:00Z"))
        try await TestHosts.routes(h.host) { client in
            try await client.execute(uri: "/billing/workspaces/ws-a-slug/invoices", method: .get) { response in
                #expect(response.status == .ok)
                let list = try JSONDecoder().decode([Invoice].self, from: Data(buffer: response.body))
                #expect(list == [issued])
            }
            try await client.execute(uri: "/billing/workspaces/ws-a/invoices/TNK-2026-000001", method: .get) { response in
                let object = try #require(try JSONSerialization.jsonObject(with: Data(buffer: response.body)) as? [String: Any])
                #expect(
                    Set(object.keys).isSuperset(of: ["id", "number", "workspace_id", "period", "status", "lines", "total_micros", "amount_due_cents"])
                )
                let line = try #require((object["lines"] as? [[String: Any]])?.first)
                #expect(Set(line.keys) == ["kind", "description", "sku", "quantity", "unit_price_micros", "amount_micros", "policy_version"])
            }
            try await client.execute(uri: "/billing/workspaces/ws-a/invoices/\(issued.id!)?format=csv", method: .get) { response in
                #expect(response.headers[.contentType] == "text/csv; charset=utf-8")
                let rows = String(buffer: response.body).split(separator: "\r\n")
                #expect(rows.count == 1 + Self.novemberOfA.count)
                #expect(
                    rows.last
                        == "TNK-2026-000001,2026-11,rounding,Rounding to the cent,,1,-333333,-333333,-0.00333333,\(issued.lines.last!.policyVersion)")
            }
            try await client.execute(uri: "/billing/workspaces/ws-a/invoices/\(issued.id!)/history", method: .get) { response in
                #expect(String(buffer: response.body).contains("\"event\":\"issued\""))
            }
            try await client.execute(uri: "/billing/workspaces/ws-b/invoices/\(issued.id!)", method: .get) { response in
                _ = RouteAnswers.expectError(response, .notFound, "not_found")
            }
            try await client.execute(uri: "/billing/workspaces/nobody/invoices", method: .get) { response in
                _ = RouteAnswers.expectError(response, .notFound, "not_found")
            }
            try await client.execute(uri: "/billing/workspaces/ws-b/invoices/preview?period=2026-13", method: .get) { response in
                _ = RouteAnswers.expectError(response, .badRequest, "bad_request")
            }
            try await client.execute(uri: "/billing/workspaces/ws-b/invoices/preview?period=2026-11", method: .get) { response in
                let preview = try JSONDecoder().decode(Invoice.self, from: Data(buffer: response.body))
                #expect(preview.status == .preview && preview.lines.isEmpty && preview.amountDueCents == 0)
            }
        }
    }

    @Test("storage snapshots: one per day (the latest wins), a missing day counts as the last known value", arguments: DriverKind.allCases)
    func storage(_ kind: DriverKind) async throws {
        let h = try await BillingHarness(kind)
        defer { withExtendedLifetime(h) {} }
        try await h.workspace("ws-s")
        try await TestHosts.routes(h.host) { client in
            for (day, bytes) in [("2026-10-20", 50_000_000_000), ("2026-11-16", 10_000_000_000), ("2026-11-16", 20_000_000_000)] {
                try await client.execute(
                    uri: "/billing/workspaces/ws-s/storage", method: .post,
                    body: ByteBuffer(string: #"{"day":"\#(day)","billable_bytes":\#(bytes),"cache_bytes":10000000000}"#)
                ) { response in #expect(response.status == .ok) }
            }
            for body in [#"{"day":"2026-11-31","billable_bytes":1}"#, #"{"day":"2026-11-01","billable_bytes":-1}"#, "[]"] {
                try await client.execute(uri: "/billing/workspaces/ws-s/storage", method: .post, body: ByteBuffer(string: body)) { response in
                    _ = RouteAnswers.expectError(response, .badRequest, "bad_request")
                }
            }
            #expect(try await StorageSnapshots.list(h.database, workspace: "ws-s").map(\.billableBytes) == [50_000_000_000, 20_000_000_000])
            // 50 GB for days 1–15, 20 GB for days 16–30: (15 × 50 + 15 × 20) / 30 = 35 GB → $7.00.
            let invoice = try await h.invoices.preview(workspace: "ws-s", period: Self.november, policies: h.host.policies)
            #expect(invoice.lines.filter { $0.kind == .storage }.map(\.amountMicros) == [700_000_000])
        }
    }
}
