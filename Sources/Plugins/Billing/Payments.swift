import Foundation
import Host
import LedgerPlugin
import RunnerPlugin
import SQL

/// Payments of invoices: each attempt is a row (id derived from the invoice and the attempt, the
/// provider's idempotency key), recorded before the provider is asked and settled after. A
/// success posts 1002 and the fee (5010), marks the invoice paid, lifts a suspension for
/// non-payment (never an ops suspension) and publishes `payment.succeeded`; a decline publishes
/// `payment.failed`.
package struct Payments: Sendable {
    let database: any Database
    let ledger: LedgerStore
    let runner: RunnerStore
    let policies: PolicyEngine
    let provider: (any PaymentProvider)?
    let events: EventBus

    static let migrations: [Migration] = [
        Migration(
            3, "payments, customers and usage reversals",
            sql: """
                CREATE TABLE billing_customers (
                    workspace_id TEXT PRIMARY KEY,
                    provider_customer_id TEXT NOT NULL,
                    payment_method_id TEXT,
                    card_brand TEXT,
                    card_last4 TEXT,
                    updated_at BIGINT NOT NULL
                );
                CREATE TABLE billing_payments (
                    id TEXT PRIMARY KEY,
                    invoice_id TEXT NOT NULL,
                    workspace_id TEXT NOT NULL,
                    attempt BIGINT NOT NULL,
                    amount_cents BIGINT NOT NULL,
                    status TEXT NOT NULL,
                    provider_payment_id TEXT,
                    failure_code TEXT,
                    failure_message TEXT,
                    fee_micros BIGINT NOT NULL DEFAULT 0,
                    created_at BIGINT NOT NULL,
                    settled_at BIGINT,
                    reversed_at BIGINT,
                    reversal_reason TEXT,
                    reversed_by TEXT,
                    refund_id TEXT,
                    UNIQUE (invoice_id, attempt)
                );
                CREATE INDEX billing_payments_by_provider ON billing_payments (provider_payment_id);
                CREATE TABLE billing_usage_reversals (
                    usage_key TEXT PRIMARY KEY,
                    workspace_id TEXT NOT NULL,
                    amount_micros BIGINT NOT NULL,
                    free_minutes BIGINT NOT NULL,
                    reason TEXT NOT NULL,
                    initiated_by TEXT NOT NULL,
                    reversed_at BIGINT NOT NULL
                );
                """)
    ]

    package static func paymentID(invoice: String, attempt: Int) -> String {
        "pay_" + String(ChartOfAccounts.derivedID("tenki-payment:\(invoice):\(attempt)").description.prefix(24))
    }

    /// What an attempt came to, as workflows record it.
    package struct Attempt: Codable, Sendable, Equatable {
        /// `succeeded`, `failed`, `no_payment_method`, `not_configured`, `already_paid`.
        package let status: String
        package let paymentID: String?
        package let code: String?
        package let message: String?
        enum CodingKeys: String, CodingKey { case status, paymentID = "payment_id", code, message }
    }

    /// Charges `invoice` (attempt `attempt`), unless it is settled already.
    package func collect(_ invoice: Invoice, attempt: Int, now: Int64) async throws -> Attempt {
        guard let invoiceID = invoice.id else { throw HostError(.internal, "a preview cannot be paid") }
        if let current = try await InvoiceStore(database: database).invoice(invoiceID), current.status == .paid || current.status == .void {
            return Attempt(status: "already_paid", paymentID: nil, code: nil, message: nil)
        }
        guard let provider else { return Attempt(status: "not_configured", paymentID: nil, code: nil, message: "no payment provider is configured") }
        guard try await runner.workspace(invoice.workspaceID)?.hasPaymentMethod == true, let customer = try await customer(invoice.workspaceID),
            let method = customer.method
        else {
            return Attempt(status: "no_payment_method", paymentID: nil, code: nil, message: "the workspace has no payment method")
        }
        let id = Payments.paymentID(invoice: invoiceID, attempt: attempt)
        if let settled = try await payment(id), settled.status != "pending" {
            return Attempt(status: settled.status, paymentID: id, code: settled.failureCode, message: nil)
        }
        _ = try await database.execute(
            """
            INSERT INTO billing_payments (id, invoice_id, workspace_id, attempt, amount_cents, status, created_at)
            VALUES ($1, $2, $3, $4, $5, 'pending', $6) ON CONFLICT (id) DO NOTHING
            """,
            [.text(id), .text(invoiceID), .text(invoice.workspaceID), .integer(Int64(attempt)), .integer(invoice.amountDueCents), .integer(now)])
        let outcome: PaymentOutcome
        do {
            outcome = try await provider.charge(
                PaymentRequest(
                    customerID: customer.customerID, paymentMethodID: method, amountCents: invoice.amountDueCents, idempotencyKey: id,
                    metadata: ["invoice_id": invoiceID, "invoice_number": invoice.number ?? "", "workspace_id": invoice.workspaceID]))
        } catch let error as HostError where error.code == .rejected {
            // The provider refused the request itself (a detached card, an amount under its
            // minimum): a failed attempt like a decline, so dunning goes on.
            outcome = .declined(paymentIntentID: nil, code: error.reason, message: error.message)
        }
        switch outcome {
        case .succeeded(let intent, _):
            try await succeeded(paymentID: id, providerPaymentID: intent, invoice: invoice, now: now)
            return Attempt(status: "succeeded", paymentID: id, code: nil, message: nil)
        case .declined(let intent, let code, let message):
            try await database.transaction { db in
                _ = try db.execute(
                    """
                    UPDATE billing_payments SET status = 'failed', provider_payment_id = $2, failure_code = $3, failure_message = $4, settled_at = $5
                    WHERE id = $1 AND status = 'pending'
                    """, [.text(id), SQLValue(intent), .text(code), .text(message), .integer(now)])
                try InvoiceStore.history(db, invoice: invoiceID, at: now, event: "payment_failed", detail: "attempt \(attempt): \(code): \(message)")
                try Payments.publish(
                    db, "payment.failed", id: id, ["invoice_id": invoiceID, "workspace_id": invoice.workspaceID, "attempt": attempt, "code": code])
            }
            return Attempt(status: "failed", paymentID: id, code: code, message: message)
        }
    }

    /// Records a succeeded payment once: ledger, payment row, invoice paid, the non-payment
    /// suspension lifted, `payment.succeeded` published.
    package func succeeded(paymentID id: String, providerPaymentID: String?, invoice: Invoice, now: Int64) async throws {
        guard let invoiceID = invoice.id else { return }
        let amount = invoice.amountDueCents * ExactMoney.microsPerCent
        let fee = try policies.paymentFeeMicros(amountMicros: amount)
        try await BillingLedger.post(
            ledger, workspace: invoice.workspaceID,
            BillingLedger.paymentTransfers(paymentID: id, workspace: invoice.workspaceID, amountMicros: amount, feeMicros: fee))
        let lift = try await database.transaction { db -> Bool in
            let changed = try db.execute(
                """
                UPDATE billing_payments SET status = 'succeeded', provider_payment_id = COALESCE($2, provider_payment_id), fee_micros = $3,
                    settled_at = $4 WHERE id = $1 AND status IN ('pending', 'failed')
                """, [.text(id), SQLValue(providerPaymentID), .integer(fee), .integer(now)])
            guard changed > 0 else { return false }
            let paid = try db.execute(
                "UPDATE billing_invoices SET status = 'paid', paid_at = $2 WHERE id = $1 AND status IN ('issued', 'uncollectible')",
                [.text(invoiceID), .integer(now)])
            if paid > 0 { try InvoiceStore.history(db, invoice: invoiceID, at: now, event: "paid", detail: "payment \(id)") }
            try Payments.publish(
                db, "payment.succeeded", id: id,
                ["invoice_id": invoiceID, "workspace_id": invoice.workspaceID, "amount_cents": invoice.amountDueCents])
            return true
        }
        if lift { try await liftSuspensionIfSettled(invoice.workspaceID) }
    }

    /// Lifts a suspension for non-payment once no issued invoice of the workspace is unpaid.
    package func liftSuspensionIfSettled(_ workspace: String) async throws {
        let unpaid = try await database.query(
            "SELECT COUNT(*) AS n FROM billing_invoices WHERE workspace_id = $1 AND status IN ('issued', 'uncollectible') AND amount_due_cents > 0",
            [.text(workspace)])[0].int("n")
        guard unpaid == 0, try await runner.workspace(workspace)?.paymentOverdue == true else { return }
        try await runner.update(workspace: workspace, .init(paymentOverdue: false))
        _ = try await database.transaction { db in
            try Payments.publish(
                db, "workspace.unsuspended", id: "\(workspace):\(Date().timeIntervalSince1970)",
                ["workspace_id": workspace, "reason": "payment_overdue"])
        }
    }

    static func publish(_ db: any SQLConnection, _ topic: String, id: String, _ payload: [String: Any]) throws {
        let body = try JSONSerialization.data(withJSONObject: payload, options: [.sortedKeys])
        _ = try EventInbox.publish(in: db, topic: topic, source: BillingPlugin.billingEventSource, sourceID: "\(topic):\(id)", payload: Array(body))
    }

    // MARK: reads

    package struct Customer: Sendable, Equatable {
        package let customerID: String
        package let method: String?
    }

    package func customer(_ workspace: String) async throws -> Customer? {
        try await database.read { db in
            try db.queryOne("SELECT * FROM billing_customers WHERE workspace_id = $1", [.text(workspace)]).map {
                Customer(customerID: try $0.string("provider_customer_id"), method: try $0.optionalString("payment_method_id"))
            }
        }
    }

    package struct Payment: Sendable, Codable, Equatable {
        package let id: String
        package let invoiceID: String
        package let workspaceID: String
        package let attempt: Int64
        package let amountCents: Int64
        package let status: String
        package let providerPaymentID: String?
        package let failureCode: String?
        package let reversedAt: Int64?
        enum CodingKeys: String, CodingKey {
            case id, invoiceID = "invoice_id", workspaceID = "workspace_id", attempt, amountCents = "amount_cents", status
            case providerPaymentID = "provider_payment_id", failureCode = "failure_code", reversedAt = "reversed_at"
        }
    }

    package func payment(_ id: String) async throws -> Payment? {
        try await database.read { db in try db.queryOne("SELECT * FROM billing_payments WHERE id = $1", [.text(id)]).map(Payments.payment(from:)) }
    }

    package func payments(invoice: String) async throws -> [Payment] {
        try await database.read { db in
            try db.query("SELECT * FROM billing_payments WHERE invoice_id = $1 ORDER BY attempt", [.text(invoice)]).map(Payments.payment(from:))
        }
    }

    static func payment(from row: SQLRow) throws -> Payment {
        Payment(
            id: try row.string("id"), invoiceID: try row.string("invoice_id"), workspaceID: try row.string("workspace_id"),
            attempt: try row.int("attempt"), amountCents: try row.int("amount_cents"), status: try row.string("status"),
            providerPaymentID: try row.optionalString("provider_payment_id"), failureCode: try row.optionalString("failure_code"),
            reversedAt: try row.optionalInt("reversed_at"))
    }
}
