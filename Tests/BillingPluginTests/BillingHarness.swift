import BillingPlugin
import Foundation
import GitHubPlugin
import Host
import LedgerPlugin
import RunnerPlugin
import SQL
import TestSupport
import Testing
import WorkflowPlugin

/// A host with the billing plugin and what it needs, on a test database. Jobs are charged as the
/// runner charges them: priced by the shipped `pricing.lua` and stored as usage records.
final class BillingHarness: Sendable {
    static let plugins: [any Plugin.Type] = [GitHubPlugin.self, LedgerPlugin.self, WorkflowPlugin.self, RunnerPlugin.self, BillingPlugin.self]

    let test: TestDatabase
    let host: TenkiHost
    let billing: BillingPlugin

    init(_ kind: DriverKind, configure: (inout HostConfiguration) -> Void = { _ in }) async throws {
        test = try TestDatabase.make(kind)
        host = try await TestHosts.open(test, plugins: BillingHarness.plugins, configure: configure)
        billing = try #require(host.plugin(BillingPlugin.self))
    }

    var database: any Database { host.database }
    var invoices: InvoiceStore { billing.invoices }

    /// A workspace as an installation makes it (no free minutes unless granted).
    func workspace(_ id: String, contract: String? = nil) async throws {
        _ = try await database.execute(
            "INSERT INTO runner_workspaces (id, slug, contract, credited, created_at) VALUES ($1, $2, $3, 1, 0)",
            [.text(id), .text(id + "-slug"), SQLValue(contract)])
    }

    /// One finished job priced by the policy and stored as a posted usage record.
    @discardableResult
    func charge(
        _ workspace: String, job: Int, labels: [String], completed: String, minutes: Int64, freeMinutes: Int64 = 0, contract: String? = nil
    ) async throws -> Int64 {
        let end = try #require(Timestamp.parseUTCSeconds(completed))
        let input = JobPriceInput(
            labels: labels, startedAt: BillingPeriod.iso(end - minutes * 60), completedAt: completed,
            workspace: .init(freeMinutesRemaining: freeMinutes, hasPaymentMethod: true, contract: contract))
        let decision = try host.policies.priceJob(input)
        #expect(decision.price.matched)
        let record = String(decoding: try JSONEncoder().encode(decision.record), as: UTF8.self)
        _ = try await database.execute(
            """
            INSERT INTO runner_usage (usage_key, workspace_id, sku, billable_minutes, free_minutes_consumed, amount_micros, policy_version,
                decision, posted, created_at, completed_at)
            VALUES ($1, $2, $3, $4, $5, $6, $7, $8, 1, 0, $9)
            """,
            [
                .text("1/\(job)/1"), .text(workspace), SQLValue(decision.price.sku), .integer(decision.price.billableMinutes),
                .integer(decision.price.freeMinutesConsumed), .integer(decision.price.amountMicros), .text(decision.price.policyVersion),
                .text(record), .integer(end),
            ])
        return decision.price.amountMicros
    }

    func subscribe(
        _ workspace: String, addon: String? = nil, arch: String? = nil, count: Int64 = 1, started: String, cancelled: String? = nil
    )
        async throws
    {
        _ = try await database.execute(
            """
            INSERT INTO billing_subscriptions (id, workspace_id, item, addon, arch, count, term, started_at, cancelled_at, created_by, created_at)
            VALUES ($1, $2, $3, $4, $5, $6, 'monthly', $7, $8, 'test', 0)
            """,
            [
                .text(UUID().uuidString), .text(workspace), .text(addon == nil ? "slots" : "addon"), SQLValue(addon), SQLValue(arch),
                .integer(count), .integer(Timestamp.parseUTCSeconds(started)!),
                cancelled.flatMap(Timestamp.parseUTCSeconds).map(SQLValue.integer) ?? .null,
            ])
    }

    func promo(_ workspace: String, micros: Int64) async throws {
        _ = try await database.execute(
            """
            INSERT INTO billing_promo_credits (id, workspace_id, kind, amount_micros, reason, initiated_by, created_at)
            VALUES ($1, $2, 'grant', $3, 'test', 'test', 0)
            """, [.text(UUID().uuidString), .text(workspace), .integer(micros)])
    }

    /// Milliseconds of a UTC time.
    static func ms(_ text: String) -> Int64 { Timestamp.parseUTCSeconds(text)! * 1000 }
}
