import BillingPlugin
import Foundation
import HTTPClient
import Host
import PluginTestSupport
import SQL
import TestSupport
import Testing
import WorkflowPlugin

/// The cycle paying through the real Stripe client against localstripe.
@Suite("Billing cycle against localstripe")
struct LocalStripeCycleTests {
    static func rig(_ kind: DriverKind) async throws -> (BillingRig, StripeProvider) {
        let url = try await LocalStripe.shared.url()
        let stripe = StripeProvider(apiURL: url, secretKey: LocalStripe.secretKey, http: HTTPClient())
        return (try await BillingRig(kind, provider: stripe), stripe)
    }

    @Test("a saved card pays the invoice; a card declined at charge walks into dunning", arguments: DriverKind.allCases)
    func payAndDecline(_ kind: DriverKind) async throws {
        let (rig, _) = try await Self.rig(kind)
        defer { withExtendedLifetime(rig) {} }
        let payments = rig.services.payments
        for ws in ["ws-good", "ws-bad"] {
            try await rig.h.workspace(ws)
            try await rig.h.charge(
                ws, job: ws == "ws-good" ? 1 : 2, labels: ["tenki-standard-2c-4gb"], completed: "2026-11-05T10:00:00Z", minutes: 4_000)
        }
        let good = try await payments.savePaymentMethod(workspace: "ws-good", reference: "pm_card_visa", workflows: rig.engine)
        #expect(good.customerID.hasPrefix("cus_") && good.paymentMethodID.hasPrefix("pm_") && good.last4 == "4242")
        #expect(try await rig.h.billing.operations.runner.workspace("ws-good")?.hasPaymentMethod == true)
        // 4000000000000341 attaches, then declines when charged.
        let card = try await LocalStripe.shared.cardPaymentMethod(number: "4000000000000341")
        _ = try await payments.savePaymentMethod(workspace: "ws-bad", reference: card, workflows: rig.engine)

        let paid = try await rig.output(try await rig.run(BillingWorkflows.cycleType, #"{"workspace_id": "ws-good", "billing_period": "2026-11"}"#))
        #expect(paid["status"] as? String == "paid" && paid["amount_due_cents"] as? Int == 200)
        let payment = try #require(try await payments.payment(paid["payment_id"] as! String))
        let intent = try await LocalStripe.shared.get("/v1/payment_intents/\(payment.providerPaymentID ?? "")")
        #expect(intent["status"] as? String == "succeeded" && intent["amount"] as? Int == 200)
        #expect((intent["metadata"] as? [String: Any])?["invoice_id"] as? String == paid["invoice_id"] as? String)

        let declined = try await rig.output(
            try await rig.run(BillingWorkflows.cycleType, #"{"workspace_id": "ws-bad", "billing_period": "2026-11"}"#))
        #expect(declined["payment_status"] as? String == "failed" && declined["status"] as? String == "issued")
        let invoice = try #require(declined["invoice_id"] as? String)
        #expect(try await rig.engine.run(id: BillingWorkflows.dunningID(invoice: invoice)).status == .sleeping)
        // A good card arrives: saving it charges the unpaid invoice at once.
        let fixed = try await payments.savePaymentMethod(workspace: "ws-bad", reference: "pm_card_visa", workflows: rig.engine)
        #expect(fixed.retried == [invoice])
        _ = try await rig.engine.drain()
        #expect(try await rig.h.invoices.invoice(invoice)?.status == .paid)
        #expect(try await rig.engine.run(id: BillingWorkflows.dunningID(invoice: invoice)).status == .completed)
    }
}
