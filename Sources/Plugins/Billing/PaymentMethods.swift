import Foundation
import Host
import RunnerPlugin
import SQL

extension Payments {
    /// What `set-payment-method` did.
    package struct SavedMethod: Codable, Sendable, Equatable {
        package let workspaceID: String
        package let customerID: String
        package let paymentMethodID: String
        package let brand: String?
        package let last4: String?
        /// Jobs sent back to admission (blocked ones may run now).
        package let jobsRequeued: Int
        /// Unpaid invoices whose dunning was asked to charge again.
        package let retried: [String]
        enum CodingKeys: String, CodingKey {
            case workspaceID = "workspace_id", customerID = "customer_id", paymentMethodID = "payment_method_id", brand, last4
            case jobsRequeued = "jobs_requeued", retried
        }
    }

    /// Saves a payment method by the provider's reference: the provider's customer is created on
    /// first use, the method attached and made the default; the host keeps only the provider's
    /// ids (and brand and last four digits). The workspace pays as it goes from now on (trial →
    /// payg), its blocked jobs go back to admission, and unpaid invoices are charged again.
    package func savePaymentMethod(workspace name: String, reference: String, workflows: any WorkflowClient) async throws -> SavedMethod {
        guard let provider else {
            throw HostError(.unavailable, "no payment provider is configured: set stripe_secret_key_file", reason: "payments_not_configured")
        }
        guard !reference.isEmpty, reference.count <= 255, reference.allSatisfy({ $0.isLetter || $0.isNumber || $0 == "_" }) else {
            throw HostError(.badRequest, "a payment method reference is the provider's id, e.g. pm_…")
        }
        guard let workspace = try await runner.workspace(name) else { throw HostError(.notFound, "no workspace '\(name)'") }
        let now = Timestamp.ms(Date())
        var customerID = try await customer(workspace.id)?.customerID
        if customerID == nil {
            let created = try await provider.createCustomer(
                workspaceID: workspace.id, name: workspace.slug, idempotencyKey: "customer:\(workspace.id)")
            _ = try await database.execute(
                """
                INSERT INTO billing_customers (workspace_id, provider_customer_id, updated_at) VALUES ($1, $2, $3)
                ON CONFLICT (workspace_id) DO NOTHING
                """, [.text(workspace.id), .text(created), .integer(now)])
            customerID = try await customer(workspace.id)?.customerID
        }
        guard let customerID else { throw HostError(.internal, "no customer recorded for \(workspace.id)") }
        let info = try await provider.attachPaymentMethod(customerID: customerID, paymentMethod: reference)
        _ = try await database.execute(
            "UPDATE billing_customers SET payment_method_id = $2, card_brand = $3, card_last4 = $4, updated_at = $5 WHERE workspace_id = $1",
            [.text(workspace.id), .text(info.id), SQLValue(info.brand), SQLValue(info.last4), .integer(now)])
        let requeued = try await runner.update(workspace: workspace.id, .init(hasPaymentMethod: true, paymentMethodRef: .some(info.id)))
        var retried: [String] = []
        for invoice in try await unpaidInvoices(workspace.id) {
            if try await BillingWorkflows.signalDunning(workflows, invoice: invoice, BillingWorkflows.retrySignal) { retried.append(invoice) }
        }
        return SavedMethod(
            workspaceID: workspace.id, customerID: customerID, paymentMethodID: info.id, brand: info.brand, last4: info.last4, jobsRequeued: requeued,
            retried: retried)
    }

    func unpaidInvoices(_ workspace: String) async throws -> [String] {
        try await database.query(
            """
            SELECT id FROM billing_invoices WHERE workspace_id = $1 AND status IN ('issued', 'uncollectible') AND amount_due_cents > 0
            ORDER BY period
            """,
            [.text(workspace)]
        ).map { try $0.string("id") }
    }
}
