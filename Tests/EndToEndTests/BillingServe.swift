import Foundation
import HTTPClient
import PluginTestSupport
import SQL
import TestSupport
import Testing

/// One database billed by `tenki serve` processes that pay through localstripe, seeded as the
/// runner leaves it (workspaces, usage records priced by the shipped `pricing.lua` through
/// `tenki policy eval`), with the CLI pointed at the same database and configuration.
final class BillingServe: Sendable {
    let test: TestDatabase
    let environment: [String: String]
    let database: any Database
    /// The Stripe webhook endpoint's signing secret `serve` is configured with.
    let webhookSecret = "whsec_e2e_\(UInt32.random(in: 0...UInt32.max))"

    var dataDir: String { test.directory + "/data" }
    /// Both drivers by URL (SQLite's is the file `TestDatabase` made), so this process opens the same one.
    var storage: [String] { ["--data-dir", dataDir, "--database-url", test.url] }

    /// A migrated, empty database; serve and the CLI configured for localstripe.
    init(_ kind: DriverKind) async throws {
        test = try TestDatabase.make(kind)
        let keyFile = test.directory + "/stripe-secret-key"
        let webhookFile = test.directory + "/stripe-webhook-secret"
        try (LocalStripe.secretKey + "\n").write(toFile: keyFile, atomically: true, encoding: .utf8)
        try (webhookSecret + "\n").write(toFile: webhookFile, atomically: true, encoding: .utf8)
        environment = [
            "TENKI_STRIPE_SECRET_KEY_FILE": keyFile, "TENKI_STRIPE_API_URL": try await LocalStripe.shared.url(),
            "TENKI_STRIPE_WEBHOOK_SECRET_FILE": webhookFile, "TENKI_POLICY_ROOT": Fixtures.packageRoot + "/policies",
            "TENKI_WORKFLOW_POLL_INTERVAL_MS": "20",
        ]
        let migrated = try TenkiProcess.run(
            ["migrate", "--data-dir", test.directory + "/data", "--database-url", test.url], environment: environment)
        guard migrated.status == 0 else { throw MissingDependency(description: "tenki migrate failed: \(migrated.error)") }
        database = try test.open(poolSize: 2)
    }

    /// `tenki serve` on this database (a second one is a second replica, PostgreSQL only).
    func serve(_ extra: [String: String] = [:]) async throws -> TenkiProcess {
        try await TenkiProcess.serve(
            dataDir: dataDir, databaseURL: test.url, secret: "e2e",
            environment: environment.merging(extra) { $1 })
    }

    /// `tenki ARGS` on this database; a failure is recorded with what it printed.
    @discardableResult
    func tenki(_ arguments: [String], expect status: Int32 = 0) throws -> String {
        let result = try TenkiProcess.run(arguments + storage, environment: environment)
        #expect(result.status == status, "tenki \(arguments.joined(separator: " ")): \(result.status) \(result.error)")
        return result.output
    }

    /// `tenki workflow start` as the runbook writes it, with an id to wait on.
    func start(_ type: String, id: String, input: String) throws {
        let output = try tenki(["workflow", "start", "--task-queue", "BILLING_TASK_QUEUE", "--type", type, "--input", input, "--id", id])
        #expect(output.hasPrefix("started: \(id)  \(type)"), "\(output)")
    }

    /// `tenki workflow result --wait`: the output's text as printed, and parsed.
    func result(_ id: String, seconds: Int = 60) throws -> (text: String, object: [String: Any]) {
        let text = try tenki(["workflow", "result", id, "--wait", "--wait-seconds", String(seconds)])
        let object = (try? JSONSerialization.jsonObject(with: Data(text.utf8))) as? [String: Any]
        return (text, object ?? [:])
    }

    /// A workspace as an installation makes it.
    func workspace(_ id: String, slug: String) async throws {
        try await database.execute(
            "INSERT INTO runner_workspaces (id, slug, credited, created_at) VALUES ($1, $2, 1, 0)", [.text(id), .text(slug)])
    }

    /// A finished job of `minutes` on `labels`, completed at `completed`, priced by the shipped
    /// policy (no free minutes left) and stored as the runner stores a posted charge.
    @discardableResult
    func charge(_ workspace: String, key: String, labels: [String], minutes: Int64, completed: String) async throws -> Int64 {
        let priced = try price(labels: labels, minutes: minutes, completed: completed)
        try await database.execute(
            """
            INSERT INTO runner_usage (usage_key, workspace_id, sku, billable_minutes, free_minutes_consumed, amount_micros, policy_version,
                decision, posted, created_at, completed_at)
            VALUES ($1, $2, $3, $4, 0, $5, $6, $7, 1, 0, $8)
            """,
            [
                .text(key), .text(workspace), .text(priced.sku), .integer(minutes), .integer(priced.amountMicros), .text(priced.version),
                .text(priced.decision), .integer(Int64(ISO8601DateFormatter().date(from: completed)!.timeIntervalSince1970)),
            ])
        return priced.amountMicros
    }

    struct Priced {
        let sku: String
        let amountMicros: Int64
        let version: String
        /// The decision record the runner keeps beside the charge.
        let decision: String
    }

    func price(labels: [String], minutes: Int64, completed: String) throws -> Priced {
        let end = ISO8601DateFormatter().date(from: completed)!
        let input: [String: Any] = [
            "labels": labels, "started_at": ISO8601DateFormatter().string(from: end.addingTimeInterval(-Double(minutes) * 60)),
            "completed_at": completed, "workspace": ["free_minutes_remaining": 0, "has_payment_method": true, "addons": [String]()],
        ]
        let inputText = String(decoding: try JSONSerialization.data(withJSONObject: input, options: [.sortedKeys]), as: UTF8.self)
        let output = try tenki(["policy", "eval", "price", "--input", inputText, "--json"])
        let price = try #require(try JSONSerialization.jsonObject(with: Data(output.utf8)) as? [String: Any], "\(output)")
        let version = try #require(price["policy_version"] as? String)
        let record: [String: Any] = ["decision": "price", "policy_version": version, "input": inputText, "output": output]
        return Priced(
            sku: try #require(price["sku"] as? String), amountMicros: try #require(price["amount_micros"] as? Int).int64, version: version,
            decision: String(decoding: try JSONSerialization.data(withJSONObject: record), as: UTF8.self))
    }

    /// `n` workspaces `ws-NNN`, each with one priced job in `period` and the same saved card
    /// (`customer`, `method`) on file.
    func seedMany(_ n: Int, customer: String, method: String, completed: String) async throws {
        let priced = try price(labels: ["tenki-standard-2c-4gb"], minutes: 4_000, completed: completed)
        let seconds = Int64(ISO8601DateFormatter().date(from: completed)!.timeIntervalSince1970)
        for i in 0..<n {
            let id = String(format: "ws-%03d", i)
            try await database.transaction { db in
                _ = try db.execute(
                    "INSERT INTO runner_workspaces (id, slug, credited, has_payment_method, created_at) VALUES ($1, $2, 1, 1, 0)",
                    [.text(id), .text(id + "-slug")])
                _ = try db.execute(
                    """
                    INSERT INTO runner_usage (usage_key, workspace_id, sku, billable_minutes, free_minutes_consumed, amount_micros,
                        policy_version, decision, posted, created_at, completed_at)
                    VALUES ($1, $2, $3, 4000, 0, $4, $5, $6, 1, 0, $7)
                    """,
                    [
                        .text("7/\(i)/1"), .text(id), .text(priced.sku), .integer(priced.amountMicros), .text(priced.version),
                        .text(priced.decision), .integer(seconds),
                    ])
                _ = try db.execute(
                    "INSERT INTO billing_customers (workspace_id, provider_customer_id, payment_method_id, updated_at) VALUES ($1, $2, $3, 0)",
                    [.text(id), .text(customer), .text(method)])
            }
        }
    }

    func count(_ sql: String, _ parameters: [SQLValue] = []) async throws -> Int64 {
        try await database.query(sql, parameters)[0].int("n")
    }

    /// Invoices with a number of succeeded payments other than one.
    func invoicesNotPaidOnce() async throws -> [String] {
        try await database.query(
            """
            SELECT i.id, (SELECT COUNT(*) FROM billing_payments p WHERE p.invoice_id = i.id AND p.status = 'succeeded') AS n
            FROM billing_invoices i ORDER BY i.id
            """
        ).filter { try $0.int("n") != 1 }.map { try $0.string("id") }
    }

    /// How many succeeded PaymentIntents of `customer` localstripe holds for each of this
    /// database's invoices (by the `invoice_id` metadata every charge carries; invoice ids derive
    /// from workspace and period, so other tests' databases have the same ones). localstripe ignores `Idempotency-Key`, so a
    /// charge repeated after a crash shows here as a second intent.
    func intentsPerInvoice(customer: String) async throws -> [String: Int] {
        let ours = Set(try await database.query("SELECT id FROM billing_invoices").map { try $0.string("id") })
        let list = try await LocalStripe.shared.get("/v1/payment_intents?limit=1000000")
        var counts: [String: Int] = [:]
        for intent in list["data"] as? [[String: Any]] ?? [] {
            guard intent["status"] as? String == "succeeded", intent["customer"] as? String == customer,
                let invoice = (intent["metadata"] as? [String: Any])?["invoice_id"] as? String,
                ours.contains(invoice)
            else { continue }
            counts[invoice, default: 0] += 1
        }
        return counts
    }
}

extension Int {
    fileprivate var int64: Int64 { Int64(self) }
}
