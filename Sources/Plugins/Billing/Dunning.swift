import Foundation
import Host
import RunnerPlugin
import SQL

/// The input of `BillingDunningWorkflow` (id `billing-dunning:<invoice>`), started by a cycle
/// whose first charge failed.
package struct DunningInput: Codable, Sendable, Equatable {
    package var invoiceID: String
    package var workspaceID: String
    package var period: String
    /// Unix seconds of the first failed charge.
    package var firstFailureAt: Int64

    enum CodingKeys: String, CodingKey {
        case invoiceID = "invoice_id", workspaceID = "workspace_id", period, firstFailureAt = "first_failure_at"
    }
}

package struct DunningResult: Codable, Sendable, Equatable {
    /// `paid` (by a retry, a webhook or a new payment method) or `void`.
    package var outcome: String
    package var attempts: Int
    package var suspended: Bool
}

/// Dunning (docs/PRODUCT.md §10): the charge is retried on `billing.lua`'s days after the first
/// failure (durable timers); an invoice still unpaid when the plan's suspension time comes
/// suspends the workspace for non-payment (`payment_overdue`: new jobs blocked, running ones
/// finish). Signal `Retry` (a new payment method) charges at once; `Paid` (a payment recorded
/// elsewhere, e.g. Stripe's webhook) ends it. A success lifts the non-payment suspension at once.
/// After the last retry the invoice is `uncollectible` and the run waits for `Retry` or `Paid`.
extension BillingWorkflows {
    package static let retrySignal = "Retry"
    package static let paidSignal = "Paid"

    /// Sends `signal` to the invoice's dunning run; false when none is under way.
    static func signalDunning(_ workflows: any WorkflowClient, invoice: String, _ signal: String) async throws -> Bool {
        do {
            try await workflows.signalWorkflow(id: dunningID(invoice: invoice), name: signal, payload: Array("{}".utf8))
            return true
        } catch let error as HostError where error.code == .notFound || error.code == .notFinished || error.code == .failed {
            return false
        }
    }

    static func dunning(_ services: BillingServices) -> WorkflowDefinition {
        WorkflowDefinition(type: dunningType, taskQueue: taskQueue, input: DunningInput.self) { ctx, input -> DunningResult in
            guard let period = try? BillingPeriod(input.period) else {
                throw WorkflowApplicationError(type: "InvalidInput", "bad period '\(input.period)'", nonRetryable: true)
            }
            let plan = try await ctx.step("plan") { try services.policies.dunningPlan(firstFailureAt: input.firstFailureAt, periodEnd: period.end) }
            try await ctx.setState("plan", plan)
            var state = DunningResult(outcome: "open", attempts: 1, suspended: false)
            var events = plan.retryAt.map { (at: $0, suspend: false) } + [(at: plan.suspendAt, suspend: true)]
            events.sort { ($0.at, $0.suspend ? 1 : 0) < ($1.at, $1.suspend ? 1 : 0) }
            for event in events {
                if try await waitOrSettle(ctx, services, input, until: event.at, &state) { return state }
                if event.suspend {
                    state.suspended = try await ctx.step("suspend-for-non-payment") { try await suspend(services, input) }
                } else if try await attempt(ctx, services, input, &state) {
                    return state
                }
                try await ctx.setState("dunning", state)
            }
            _ = try await ctx.step("uncollectible") {
                try await services.invoices.settle(
                    id: input.invoiceID, status: .uncollectible, now: Timestamp.ms(Date()), detail: "every retry failed")
            }
            while true {
                if try await waitOrSettle(ctx, services, input, until: nil, &state) { return state }
            }
        }
    }

    /// Waits for `until` (or forever), answering signals meanwhile; true once the invoice is settled.
    static func waitOrSettle(
        _ ctx: any WorkflowContext, _ services: BillingServices, _ input: DunningInput, until: Int64?, _ state: inout DunningResult
    ) async throws -> Bool {
        while true {
            var timeout: Duration?
            if let until {
                let now = Int64(try await ctx.now().timeIntervalSince1970)
                guard now < until else { return false }
                timeout = .seconds(until - now)
            }
            guard let signal = try await ctx.signal(anyOf: [retrySignal, paidSignal], timeout: timeout) else { return false }
            if signal.name == paidSignal {
                let status = try await ctx.step("read-invoice-after-paid") {
                    try await services.invoices.invoice(input.invoiceID)?.status.rawValue ?? ""
                }
                if status == Invoice.Status.paid.rawValue || status == Invoice.Status.void.rawValue {
                    state.outcome = status
                    return true
                }
            } else if try await attempt(ctx, services, input, &state) {
                return true
            }
        }
    }

    /// One more charge; true when the invoice is paid.
    static func attempt(
        _ ctx: any WorkflowContext, _ services: BillingServices, _ input: DunningInput, _ state: inout DunningResult
    ) async throws
        -> Bool
    {
        state.attempts += 1
        let number = state.attempts
        let result = try await ctx.step("charge-attempt-\(number)") {
            guard let invoice = try await services.invoices.invoice(input.invoiceID) else {
                throw HostError(.notFound, "no invoice \(input.invoiceID)")
            }
            return try await services.payments.collect(invoice, attempt: number, now: Timestamp.ms(Date()))
        }
        guard result.status == "succeeded" || result.status == "already_paid" else { return false }
        state.outcome = Invoice.Status.paid.rawValue
        return true
    }

    /// Suspends the workspace for non-payment if the invoice is still unpaid; whether it did.
    static func suspend(_ services: BillingServices, _ input: DunningInput) async throws -> Bool {
        guard let invoice = try await services.invoices.invoice(input.invoiceID), invoice.status == .issued || invoice.status == .uncollectible
        else { return false }
        try await services.runner.update(workspace: input.workspaceID, .init(paymentOverdue: true))
        let now = Timestamp.ms(Date())
        try await services.invoices.database.transaction { db in
            try InvoiceStore.history(db, invoice: input.invoiceID, at: now, event: "workspace_suspended", detail: "unpaid after the dunning deadline")
            try Payments.publish(
                db, "workspace.suspended", id: input.invoiceID,
                ["workspace_id": input.workspaceID, "invoice_id": input.invoiceID, "reason": "payment_overdue"])
        }
        return true
    }
}
