import Foundation
import Host
import LedgerPlugin
import RunnerPlugin
import SQL

/// The runbook's reversal inputs: `reason` and `initiated_by_email` are required, the object must
/// belong to `workspace_id` (an id or a slug).
package struct PaymentReversalInput: Codable, Sendable, Equatable {
    package var paymentID: String
    package var workspaceID: String
    package var reason: String?
    package var initiatedByEmail: String?
    enum CodingKeys: String, CodingKey {
        case paymentID = "payment_id", workspaceID = "workspace_id", reason, initiatedByEmail = "initiated_by_email"
    }
}

package struct UsageReversalInput: Codable, Sendable, Equatable {
    package var usageEventID: String
    package var workspaceID: String
    package var reason: String?
    package var initiatedByEmail: String?
    enum CodingKeys: String, CodingKey {
        case usageEventID = "usage_event_id", workspaceID = "workspace_id", reason, initiatedByEmail = "initiated_by_email"
    }
}

/// Both reversals' result, in the runbook's shape (`original_amount` is a string with two
/// decimals, as the runbook writes it) with an integer twin.
package struct ReversalResult: Codable, Sendable, Equatable {
    package var success: Bool
    package var reversalTransferID: String
    package var originalAmount: String
    package var originalAmountMicros: Int64
    package var reversedAt: String
    /// False when an earlier run had reversed it already (nothing was posted again).
    package var reversedNow: Bool

    enum CodingKeys: String, CodingKey {
        case success, reversalTransferID = "reversal_transfer_id", originalAmount = "original_amount"
        case originalAmountMicros = "original_amount_micros", reversedAt = "reversed_at", reversedNow = "reversed_now"
    }
}

extension BillingWorkflows {
    static func required(_ value: String?, _ name: String) throws -> String {
        guard let value, !value.trimmingCharacters(in: .whitespaces).isEmpty else {
            throw WorkflowApplicationError(type: "InvalidInput", "\(name) is required", nonRetryable: true)
        }
        return value
    }

    static func notFound(_ message: String) -> WorkflowApplicationError { WorkflowApplicationError(type: "NotFound", message, nonRetryable: true) }

    /// Refunds a succeeded payment through the provider, posts the opposite of its 1002 (1003) and
    /// marks it reversed; the invoice's history says so. Reversing twice reverses once.
    static func paymentReversal(_ services: BillingServices) -> WorkflowDefinition {
        WorkflowDefinition(type: paymentReversalType, taskQueue: taskQueue, input: PaymentReversalInput.self) { ctx, input -> ReversalResult in
            let reason = try required(input.reason, "reason")
            let by = try required(input.initiatedByEmail, "initiated_by_email")
            let workspace = try await ctx.step("resolve-workspace", retry: .none) { try await services.workspaceID(input.workspaceID) }
            let payment = try await ctx.step("look-up-payment", retry: .none) { () -> Payments.Payment in
                guard let payment = try await services.payments.payment(input.paymentID), payment.workspaceID == workspace else {
                    throw notFound("no payment '\(input.paymentID)' in workspace \(input.workspaceID)")
                }
                guard payment.status == "succeeded" || payment.status == "reversed" else {
                    throw WorkflowApplicationError(type: "NotReversible", "payment \(payment.id) is \(payment.status)", nonRetryable: true)
                }
                return payment
            }
            let amount = payment.amountCents * ExactMoney.microsPerCent
            let transfer = BillingLedger.paymentReversal(paymentID: payment.id, workspace: workspace, amountMicros: amount)
            let reversedNow = payment.status == "succeeded"
            if reversedNow {
                _ = try await ctx.step("refund") { () -> String in
                    guard let provider = services.payments.provider, let intent = payment.providerPaymentID else { return "" }
                    return try await provider.refund(
                        paymentIntentID: intent, amountCents: payment.amountCents, idempotencyKey: "refund:\(payment.id)",
                        metadata: ["reason": reason, "initiated_by": by, "payment_id": payment.id])
                }
                _ = try await ctx.step("post-reversal") {
                    try await BillingLedger.post(services.ledger, workspace: workspace, [transfer])
                    return true
                }
            }
            let reversedAt = try await now(ctx)
            let at = try await ctx.step("mark-reversed") {
                try await services.payments.markReversed(payment, reason: reason, by: by, now: reversedAt)
            }
            return ReversalResult(
                success: true, reversalTransferID: transfer.id.description, originalAmount: ExactMoney.twoDecimals(cents: payment.amountCents),
                originalAmountMicros: amount, reversedAt: BillingPeriod.iso(at / 1000), reversedNow: reversedNow)
        }
    }

    /// Gives a usage record's money (2003) and free minutes back, marks it reversed (never
    /// deleted: the job can never be charged again, and no invoice takes it). Reversing twice
    /// reverses once.
    static func usageReversal(_ services: BillingServices) -> WorkflowDefinition {
        WorkflowDefinition(type: usageReversalType, taskQueue: taskQueue, input: UsageReversalInput.self) { ctx, input -> ReversalResult in
            let reason = try required(input.reason, "reason")
            let by = try required(input.initiatedByEmail, "initiated_by_email")
            let workspace = try await ctx.step("resolve-workspace", retry: .none) { try await services.workspaceID(input.workspaceID) }
            let usage = try await ctx.step("look-up-usage", retry: .none) { () -> UsageFacts in
                guard let usage = try await UsageFacts.read(services.invoices.database, key: input.usageEventID), usage.workspaceID == workspace
                else {
                    throw notFound("no usage event '\(input.usageEventID)' in workspace \(input.workspaceID)")
                }
                return usage
            }
            let transfers = BillingLedger.usageReversal(
                usageKey: usage.key, workspace: workspace, amountMicros: usage.amountMicros, freeMinutes: usage.freeMinutes)
            let reversedAt = try await now(ctx)
            let recorded = try await ctx.step("reverse-usage") { () -> Int64 in
                if usage.reversedAt == nil { try await BillingLedger.post(services.ledger, workspace: workspace, transfers) }
                return try await UsageFacts.markReversed(services.invoices.database, usage, reason: reason, by: by, now: reversedAt)
            }
            let id = (transfers.last?.id ?? ChartOfAccounts.derivedID("tenki-billing:usage-reversal:\(usage.key):none")).description
            return ReversalResult(
                success: true, reversalTransferID: id,
                originalAmount: ExactMoney.twoDecimals(cents: ExactMoney.cents(roundingHalfUp: usage.amountMicros)),
                originalAmountMicros: usage.amountMicros, reversedAt: BillingPeriod.iso(recorded / 1000), reversedNow: usage.reversedAt == nil)
        }
    }
}

/// A usage record as a reversal needs it.
package struct UsageFacts: Codable, Sendable, Equatable {
    package let key: String
    package let workspaceID: String
    package let amountMicros: Int64
    package let freeMinutes: Int64
    /// Milliseconds; set once reversed.
    package let reversedAt: Int64?

    static func read(_ database: any Database, key: String) async throws -> UsageFacts? {
        try await database.read { db in
            try db.queryOne(
                """
                SELECT u.usage_key, u.workspace_id, u.amount_micros, u.free_minutes_consumed, r.reversed_at FROM runner_usage u
                LEFT JOIN billing_usage_reversals r ON r.usage_key = u.usage_key WHERE u.usage_key = $1 AND u.posted = 1
                """, [.text(key)]
            ).map {
                UsageFacts(
                    key: try $0.string("usage_key"), workspaceID: try $0.string("workspace_id"), amountMicros: try $0.int("amount_micros"),
                    freeMinutes: try $0.int("free_minutes_consumed"), reversedAt: try $0.optionalInt("reversed_at"))
            }
        }
    }

    /// Records the reversal once (the usage row keeps existing, marked); returns when it was reversed.
    static func markReversed(_ database: any Database, _ usage: UsageFacts, reason: String, by: String, now: Int64) async throws -> Int64 {
        try await database.transaction { db in
            _ = try db.execute(
                """
                INSERT INTO billing_usage_reversals (usage_key, workspace_id, amount_micros, free_minutes, reason, initiated_by, reversed_at)
                VALUES ($1, $2, $3, $4, $5, $6, $7) ON CONFLICT (usage_key) DO NOTHING
                """,
                [
                    .text(usage.key), .text(usage.workspaceID), .integer(usage.amountMicros), .integer(usage.freeMinutes), .text(reason), .text(by),
                    .integer(now),
                ])
            try RunnerStore.markUsageReversed(db, key: usage.key, at: now / 1000)
            return try db.queryOne("SELECT reversed_at FROM billing_usage_reversals WHERE usage_key = $1", [.text(usage.key)])!.int("reversed_at")
        }
    }
}

extension Payments {
    /// Marks a payment reversed once, with why and by whom; returns when it was reversed (ms).
    func markReversed(_ payment: Payment, reason: String, by: String, now: Int64) async throws -> Int64 {
        try await database.transaction { db in
            let changed = try db.execute(
                """
                UPDATE billing_payments SET status = 'reversed', reversed_at = $2, reversal_reason = $3, reversed_by = $4
                WHERE id = $1 AND status = 'succeeded'
                """,
                [.text(payment.id), .integer(now), .text(reason), .text(by)])
            if changed > 0 {
                try InvoiceStore.history(
                    db, invoice: payment.invoiceID, at: now, event: "payment_reversed", detail: "\(payment.id) by \(by): \(reason)")
                try Payments.publish(
                    db, "payment.reversed", id: payment.id, ["payment_id": payment.id, "invoice_id": payment.invoiceID, "reason": reason])
            }
            return try db.queryOne("SELECT reversed_at FROM billing_payments WHERE id = $1", [.text(payment.id)])!.int("reversed_at")
        }
    }
}
