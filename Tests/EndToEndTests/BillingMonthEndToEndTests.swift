import Foundation
import HTTPClient
import PluginTestSupport
import TestSupport
import Testing

/// A whole month through a running `tenki serve` paying through localstripe: GitHub jobs on three
/// SKUs, a card saved, an add-on bought and slots bought and cancelled mid-month, a storage
/// snapshot, a contract with a commitment and a promotional credit → the running month's invoice
/// equals the table computed here, localstripe is charged and the ledger shows the payment.
@Suite("A billing month through tenki serve")
struct BillingMonthEndToEndTests {
    /// `amount × days / total`, rounded half-up, as `money.muldiv(…, "half_up")` does.
    static func prorate(_ amount: Int64, _ days: Int64, _ total: Int64) -> Int64 { (2 * amount * days + total) / (2 * total) }

    static func policies(in directory: String) throws -> String {
        let root = directory + "/policies"
        try FileManager.default.copyItem(atPath: Fixtures.packageRoot + "/policies", toPath: root)
        // A contract in force whenever the test runs: 10 % off, a $100 monthly commitment.
        try """
        return { workspace = "e2e", starts = "2020-01-01T00:00:00Z", ends = "2100-01-01T00:00:00Z",
                 discount_percent = "10", monthly_commitment_micros = money.usd(100) }
        """.write(toFile: root + "/contracts/e2e-commit.lua", atomically: true, encoding: .utf8)
        return root
    }

    static func job(_ action: String, id: Int64, labels: [String], started: Date, minutes: Int) -> [UInt8] {
        let iso = ISO8601DateFormatter()
        let completed = started.addingTimeInterval(Double(minutes * 60))
        return RunnerEndToEndTests.job(
            action, id: id, labels: labels, started: action == "queued" ? nil : iso.string(from: started),
            completed: action == "completed" ? iso.string(from: completed) : nil, created: iso.string(from: started.addingTimeInterval(-30)))
    }

    @Test("the running month's invoice equals the hand-computed table and is paid through Stripe", arguments: DriverKind.allCases)
    func month(_ kind: DriverKind) async throws {
        let harness = try WebhookIngressTests.Harness(kind)
        let key = harness.test.directory + "/stripe-key"
        try LocalStripe.secretKey.write(toFile: key, atomically: true, encoding: .utf8)
        let environment = [
            "TENKI_STRIPE_API_URL": try await LocalStripe.shared.url(), "TENKI_STRIPE_SECRET_KEY_FILE": key,
            "TENKI_POLICY_ROOT": try Self.policies(in: harness.test.directory), "TENKI_RUNNER_PROVIDER": "none",
            "TENKI_RUNNER_SCHEDULER_INTERVAL_MS": "50", "TENKI_WORKFLOW_POLL_INTERVAL_MS": "50",
        ]
        let server = try await harness.serve(environment)
        defer { server.kill() }
        let storage = harness.storageArguments
        func tenki(_ arguments: [String]) throws -> String {
            let result = try TenkiProcess.run(arguments + storage, environment: environment)
            #expect(result.status == 0, "tenki \(arguments.joined(separator: " ")): \(result.error)")
            return result.output
        }
        let install = try Fixtures.github().first { $0.file == "installation.created.payload.json" }!
        #expect(try await WebhookIngressTests.post(server, event: "installation", delivery: UUID().uuidString, body: install.body).status == 202)
        _ = try await RunnerEndToEndTests.waitFor(["ledger", "balance", "--workspace", "codertocat", "--json"] + storage) { json in
            (json as? [String: Any])?["free_minutes_remaining"] as? Int == 1_000
        }
        // Mid-month: a contract, a card, the macOS add-on, 10 x64 slots bought and cancelled, storage, a $5 promo.
        _ = try tenki(["workspaces", "set", "codertocat", "--contract", "e2e-commit"])
        let saved = try tenki(["workspaces", "set-payment-method", "codertocat", "--provider-ref", "pm_card_visa", "--json"])
        let customer = try #require((try JSONSerialization.jsonObject(with: Data(saved.utf8)) as? [String: Any])?["customer_id"] as? String)
        _ = try tenki(["workspaces", "addons", "add", "--workspace", "codertocat", "--addon", "macos-m4", "--json"])
        _ = try tenki(["workspaces", "slots", "add", "--workspace", "codertocat", "--arch", "x64", "--count", "10"])
        _ = try tenki(["workspaces", "slots", "cancel", "--workspace", "codertocat", "--arch", "x64"])
        let now = Date()
        let seconds = Int64(now.timeIntervalSince1970)
        let day = ISO8601DateFormatter().string(from: now).prefix(10)
        let monthStart = String(day.prefix(8)) + "01"
        _ = try tenki(["storage", "record", "--workspace", "codertocat", "--day", monthStart, "--billable-bytes", "100000000000"])
        _ = try tenki(["credits", "add", "--workspace", "codertocat", "--amount", "5.00", "--reason", "launch", "--by", "finance@tenki.test"])

        // Jobs finishing just now, one after another: 600 min on 2 vCPU (free), 300 min on 4 vCPU
        // (200 free, 100 paid), 30 min on macOS (paid).
        let jobs: [(Int64, String, Int)] = [(1, "tenki-2c-4gb", 600), (2, "tenki-4c-8gb", 300), (3, "tenki-macos-m4-6c", 30)]
        for (n, (id, label, minutes)) in jobs.enumerated() {
            let started = now.addingTimeInterval(-Double(minutes * 60 + (3 - n) * 10))
            for action in ["queued", "in_progress", "completed"] {
                let body = Self.job(action, id: id, labels: [label], started: started, minutes: minutes)
                #expect(try await WebhookIngressTests.post(server, event: "workflow_job", delivery: UUID().uuidString, body: body).status == 202)
            }
            _ = try await RunnerEndToEndTests.waitFor(["runner", "usage", "--workspace", "codertocat", "--json"] + storage) { json in
                ((json as? [[String: Any]]) ?? []).filter { $0["posted"] as? Bool == true }.count == n + 1
            }
        }
        let period = String(day.prefix(7))
        let input = #"{"workspace_id": "codertocat", "billing_period": "\#(period)"}"#
        _ = try tenki([
            "workflow", "start", "--task-queue", "BILLING_TASK_QUEUE", "--type", "BillingCycleWorkflow", "--input", input, "--id", "e2e-cycle",
        ])
        let described =
            try await RunnerEndToEndTests.waitFor(["workflow", "describe", "e2e-cycle", "--json"] + storage) { json in
                (json as? [String: Any])?["status"] as? String == "completed"
            } as? [String: Any]
        let result = described?["output"] as? [String: Any]
        #expect(result?["payment_status"] as? String == "succeeded", "\(described ?? [:]) \(server.log.suffix(1500))")

        let shown = try tenki(["invoices", "show", "--workspace", "codertocat", "--period", period, "--json"])
        let invoice = try #require(try JSONSerialization.jsonObject(with: Data(shown.utf8)) as? [String: Any])
        let lines = (invoice["lines"] as? [[String: Any]] ?? []).map {
            "\($0["kind"]!) \($0["sku"] ?? "-") \($0["quantity"]!) \($0["amount_micros"]!)"
        }
        let expected = Self.expectedLines(now: seconds)
        #expect(lines == expected.lines, "\(shown)")
        #expect(invoice["status"] as? String == "paid" && invoice["amount_due_cents"] as? Int64 == expected.cents)
        let intents = try await LocalStripe.shared.get("/v1/payment_intents?limit=100")
        let amounts = (intents["data"] as? [[String: Any]] ?? []).filter { $0["customer"] as? String == customer }.map { $0["amount"] as? Int64 ?? 0 }
        #expect(amounts == [expected.cents])
        let transfers = try tenki(["ledger", "transfers", "--workspace", "codertocat", "--code", "1002", "--json"])
        let payments = try JSONSerialization.jsonObject(with: Data(transfers.utf8)) as? [[String: Any]] ?? []
        #expect(payments.count == 1 && payments.first?["amount"] as? Int64 == expected.cents * 1_000_000, "\(transfers)")
    }

    /// The invoice for the month containing `now`, line by line as `kind sku quantity amount`.
    static func expectedLines(now: Int64) -> (lines: [String], cents: Int64) {
        var calendar = Calendar(identifier: .gregorian)
        calendar.timeZone = TimeZone(identifier: "UTC")!
        let date = Date(timeIntervalSince1970: TimeInterval(now))
        let total = Int64(calendar.range(of: .day, in: .month, for: date)!.count)
        let billed = total - Int64(calendar.component(.day, from: date)) + 1
        let usage: [(String, String, Int64, Int64)] = [
            ("usage", "macos-m4-6c", 30, 120_000_000), ("usage", "x64-2c-4gb", 600, 0), ("usage", "x64-4c-8gb", 200, 0),
            ("usage", "x64-4c-8gb", 100, 60_000_000), ("contract_discount", "-", 1, -18_000_000),
        ]
        let addon = prorate(3_900_000_000, billed, total)
        let slot = prorate(700_000_000, billed, total)
        let storage: Int64 = 2_000_000_000  // 100 GB all month at $0.20
        let net: Int64 = 162_000_000  // usage after the discount
        let trueUp = 10_000_000_000 - net
        var rows =
            usage + [
                ("addon", "-", 1, addon), ("slots", "-", 10, slot * 10), ("storage", "-", 1, storage), ("true_up", "-", 1, trueUp),
                ("monthly_credit", "-", 1, -net), ("promo_credit", "-", 1, -500_000_000),
            ]
        let subtotal = rows.reduce(0) { $0 + $1.3 }
        let cents = (subtotal + 500_000) / 1_000_000
        if cents * 1_000_000 != subtotal { rows.append(("rounding", "-", 1, cents * 1_000_000 - subtotal)) }
        return (rows.map { "\($0.0) \($0.1) \($0.2) \($0.3)" }, cents)
    }
}
