import Foundation
import Host
import LedgerPlugin
import Logging
import SQL

/// What billing does with Stripe's events once they are stored (`stripe.<type>` on the bus). Each
/// handler is idempotent: the event may be handled again after a crash, and Stripe may send it
/// twice.
/// - `payment_intent.succeeded`: the payment is recorded (if the charge's own answer did not
///   already), the invoice paid, a non-payment suspension lifted, and the invoice's dunning ended;
/// - `payment_intent.payment_failed`: recorded on the payment if it was still pending;
/// - `charge.refunded` (a refund made in Stripe's dashboard) and `charge.dispute.created` (a
///   chargeback): the payment is reversed in the ledger (1003) and marked.
extension Payments {
    static let stripeTopics = [
        "stripe.payment_intent.succeeded", "stripe.payment_intent.payment_failed", "stripe.charge.refunded", "stripe.charge.dispute.created",
    ]

    func stripeSubscription(workflows: any WorkflowClient, logger: Logger) -> EventSubscription {
        EventSubscription(
            name: "billing.stripe-events", source: BillingPlugin.eventSource, topics: Payments.stripeTopics,
            handler: .async { event in
                guard let body = try? JSONSerialization.jsonObject(with: Data(event.payload)) as? [String: Any],
                    let object = (body["data"] as? [String: Any])?["object"] as? [String: Any]
                else {
                    logger.warning("stripe event without data.object", metadata: ["event": .string(event.sourceID)])
                    return
                }
                switch event.topic {
                case "stripe.payment_intent.succeeded": try await intentSucceeded(object, workflows: workflows)
                case "stripe.payment_intent.payment_failed": try await intentFailed(object)
                default:
                    let intent = object["payment_intent"] as? String
                    let refund = event.topic == "stripe.charge.refunded"
                    let why = refund ? "refunded in Stripe" : "dispute: \(object["reason"] as? String ?? "unknown")"
                    // A refund reverses what was refunded; a dispute the disputed amount.
                    let cents = (refund ? object["amount_refunded"] : object["amount"]) as? Int64
                    try await reverseFromStripe(intent: intent, cents: cents, reason: why, eventID: event.sourceID)
                }
            })
    }

    func payment(providerPaymentID intent: String) async throws -> Payment? {
        try await database.read { db in
            try db.queryOne("SELECT * FROM billing_payments WHERE provider_payment_id = $1 ORDER BY attempt DESC LIMIT 1", [.text(intent)])
                .map(Payments.payment(from:))
        }
    }

    func intentSucceeded(_ object: [String: Any], workflows: any WorkflowClient) async throws {
        guard let intent = object["id"] as? String else { return }
        let invoiceID = (object["metadata"] as? [String: Any])?["invoice_id"] as? String
        let known = try await payment(providerPaymentID: intent)
        guard let invoiceID = known?.invoiceID ?? invoiceID, let invoice = try await InvoiceStore(database: database).invoice(invoiceID) else {
            return
        }
        // A payment we did not start, for an invoice already settled, is left for finance:
        // recording it would count the invoice paid twice.
        if known == nil, invoice.status == .paid || invoice.status == .void { return }
        // A payment we did not start (paid another way) is recorded under an id of its own.
        let id = known?.id ?? "pay_" + String(ChartOfAccounts.derivedID("tenki-payment:\(invoiceID):\(intent)").description.prefix(24))
        if known == nil {
            _ = try await database.execute(
                """
                INSERT INTO billing_payments (id, invoice_id, workspace_id, attempt, amount_cents, status, provider_payment_id, created_at)
                VALUES ($1, $2, $3, 0, $4, 'pending', $5, $6) ON CONFLICT DO NOTHING
                """,
                [
                    .text(id), .text(invoiceID), .text(invoice.workspaceID), .integer(invoice.amountDueCents), .text(intent),
                    .integer(Timestamp.ms(Date())),
                ])
        }
        try await succeeded(paymentID: id, providerPaymentID: intent, invoice: invoice, now: Timestamp.ms(Date()))
        _ = try await BillingWorkflows.signalDunning(workflows, invoice: invoiceID, BillingWorkflows.paidSignal)
    }

    func intentFailed(_ object: [String: Any]) async throws {
        guard let intent = object["id"] as? String else { return }
        let error = object["last_payment_error"] as? [String: Any]
        _ = try await database.execute(
            """
            UPDATE billing_payments SET status = 'failed', failure_code = $2, failure_message = $3, settled_at = $4
            WHERE provider_payment_id = $1 AND status = 'pending'
            """, [.text(intent), SQLValue(error?["code"] as? String), SQLValue(error?["message"] as? String), .integer(Timestamp.ms(Date()))])
    }

    func reverseFromStripe(intent: String?, cents: Int64?, reason: String, eventID: String) async throws {
        guard let intent, let payment = try await payment(providerPaymentID: intent), payment.status == "succeeded" else { return }
        let reversed = min(max(0, cents ?? payment.amountCents), payment.amountCents)
        try await BillingLedger.post(
            ledger, workspace: payment.workspaceID,
            [BillingLedger.paymentReversal(paymentID: payment.id, workspace: payment.workspaceID, amountMicros: reversed * ExactMoney.microsPerCent)])
        _ = try await markReversed(payment, reason: reason, by: "stripe:\(eventID)", now: Timestamp.ms(Date()))
    }

}
