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
        // As the runner posts it: the money from the workspace to revenue (2001).
        try await BillingLedger.post(
            ledger, workspace: workspace,
            decision.price.amountMicros > 0
                ? [
                    Transfer(
                        id: ChartOfAccounts.derivedID("test-usage:\(job)"), debitAccountID: ChartOfAccounts.userMoneyAccountID(workspace: workspace),
                        creditAccountID: ChartOfAccounts.operatorAccountID(.revenue), amount: UInt64(decision.price.amountMicros),
                        ledger: ChartOfAccounts.moneyLedger, code: ChartOfAccounts.TransferCode.runnerCharge.rawValue)
                ] : [])
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

    var ledger: LedgerStore { billing.operations.ledger }

    /// A saved card on the workspace, as `set-payment-method` records it.
    func paymentMethod(_ workspace: String, customer: String = "cus_test", method: String = "pm_test") async throws {
        _ = try await database.execute(
            "INSERT INTO billing_customers (workspace_id, provider_customer_id, payment_method_id, updated_at) VALUES ($1, $2, $3, 0)",
            [.text(workspace), .text(customer), .text(method)])
        _ = try await database.execute("UPDATE runner_workspaces SET has_payment_method = 1 WHERE id = $1", [.text(workspace)])
    }

    func promo(_ workspace: String, micros: Int64) async throws {
        try await BillingLedger.post(
            ledger, workspace: workspace,
            [
                Transfer(
                    id: ChartOfAccounts.derivedID("test-promo:\(workspace):\(micros)"),
                    debitAccountID: ChartOfAccounts.operatorAccountID(.marketingExpense),
                    creditAccountID: ChartOfAccounts.userMoneyAccountID(workspace: workspace), amount: UInt64(micros),
                    ledger: ChartOfAccounts.moneyLedger, code: ChartOfAccounts.TransferCode.promoCredit.rawValue)
            ])
        _ = try await database.execute(
            """
            INSERT INTO billing_promo_credits (id, workspace_id, kind, amount_micros, reason, initiated_by, created_at)
            VALUES ($1, $2, 'grant', $3, 'test', 'test', 0)
            """, [.text(UUID().uuidString), .text(workspace), .integer(micros)])
    }

    /// Milliseconds of a UTC time.
    static func ms(_ text: String) -> Int64 { Timestamp.parseUTCSeconds(text)! * 1000 }
}

/// An in-process payment provider for workflow tests (localstripe covers the real one): it
/// declines while `declining` is set, and counts what it was asked.
/// Unchecked Sendable: its state is touched only under `lock`.
final class FakePaymentProvider: PaymentProvider, @unchecked Sendable {
    private let lock = NSLock()
    private var _declining = false
    private var _charges: [PaymentRequest] = []
    private var _refunds: [String] = []

    var declining: Bool {
        get { lock.withLock { _declining } }
        set { lock.withLock { _declining = newValue } }
    }
    var charges: [PaymentRequest] { lock.withLock { _charges } }
    var refunds: [String] { lock.withLock { _refunds } }

    func createCustomer(workspaceID: String, name: String, idempotencyKey: String) async throws -> String { "cus_\(workspaceID)" }

    func attachPaymentMethod(customerID: String, paymentMethod: String) async throws -> PaymentMethodInfo {
        PaymentMethodInfo(id: paymentMethod, brand: "visa", last4: "4242")
    }

    func charge(_ request: PaymentRequest) async throws -> PaymentOutcome {
        lock.withLock {
            _charges.append(request)
            return _declining
                ? .declined(paymentIntentID: "pi_\(_charges.count)", code: "card_declined", message: "Your card was declined.")
                : .succeeded(paymentIntentID: "pi_\(_charges.count)", chargeID: "ch_\(_charges.count)")
        }
    }

    func refund(paymentIntentID: String, amountCents: Int64, idempotencyKey: String, metadata: [String: String]) async throws -> String {
        lock.withLock {
            _refunds.append(paymentIntentID)
            return "re_\(_refunds.count)"
        }
    }
}
