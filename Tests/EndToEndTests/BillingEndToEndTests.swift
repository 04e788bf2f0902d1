import Foundation
import HTTPClient
import PluginTestSupport
import SQL
import TenkiCrypto
import TestSupport
import Testing

/// Billing through running `tenki serve` processes paying through localstripe: the runbook's
/// five workflows started with the CLI as written, a cycle run twice and on two replicas, a
/// replica killed mid-cycle, and Stripe's webhooks through the real server.
@Suite("Billing through a running tenki serve")
struct BillingEndToEndTests {
    /// A workspace id in the runbook's form (a UUID).
    static let workspace = "123e4567-e89b-12d3-a456-426614174000"
    static let period = #""billing_period": "2026-11""#
    static let runbookPeriod =
        #""billing_period": "2026-11", "billing_period_start": "2026-11-01T00:00:00Z", "billing_period_end": "2026-11-30T23:59:59.999Z""#

    @Test("the runbook's five workflows, started with the CLI as written, bill, charge, refund and reverse", arguments: DriverKind.allCases)
    func runbook(_ kind: DriverKind) async throws {
        let billing = try await BillingServe(kind)
        try await billing.workspace(Self.workspace, slug: "acme")
        // 4,000 minutes at $0.003 and 1,001 at $0.006: $18.006 of usage, $10 of it the monthly credit.
        try await billing.charge(
            Self.workspace, key: "957387/41/1", labels: ["tenki-standard-2c-4gb"], minutes: 4_000, completed: "2026-11-05T10:00:00Z")
        try await billing.charge(
            Self.workspace, key: "957387/42/1", labels: ["tenki-standard-4c-8gb"], minutes: 1_001, completed: "2026-11-20T10:00:00Z")
        let server = try await billing.serve()
        defer { server.kill() }

        let saved = try billing.tenki(["workspaces", "set-payment-method", Self.workspace, "--provider-ref", "pm_card_visa", "--json"])
        let card = try #require(try JSONSerialization.jsonObject(with: Data(saved.utf8)) as? [String: Any], "\(saved)")
        let customer = try #require(card["customer_id"] as? String)
        #expect(customer.hasPrefix("cus_") && card["last4"] as? String == "4242" && card["workspace_id"] as? String == Self.workspace)
        #expect(try await LocalStripe.shared.get("/v1/customers/\(customer)")["id"] as? String == customer)

        try Self.listBalance(billing)
        let paymentID = try await Self.cycle(billing)
        try billing.start(
            "BillingCycleScheduleWorkflow", id: "e2e-schedule", input: #"{"luxor_only": false, "exclude_workspaces": [], \#(Self.period)}"#)
        let schedule = try billing.result("e2e-schedule").object
        // The cycle started by hand had billed it: the schedule's own cycle finds it paid.
        #expect(schedule["workspaces"] as? Int == 1 && schedule["invoices"] as? Int == 1 && schedule["paid"] as? Int == 1, "\(schedule)")
        #expect((schedule["failed"] as? [Any])?.isEmpty == true && schedule["billing_period"] as? String == "2026-11")
        #expect(try await billing.count("SELECT COUNT(*) AS n FROM billing_invoices") == 1)
        #expect(try await billing.invoicesNotPaidOnce().isEmpty)
        try await Self.paymentReversal(billing, paymentID: paymentID)
        try await Self.usageReversal(billing)
        let codes = try Self.transferCodes(billing, Self.workspace)
        // On the workspace's account: monthly credit, rounding, payment, its reversal, the usage reversal.
        for code in [3002, 2020, 1002, 1003, 2003] { #expect(codes.contains(code), "transfer code \(code) missing from \(codes)") }
        #expect(server.terminate() == 0)
    }

    /// `BillingListWorkspaceBalanceWorkflow` with the runbook's input: its fields, exact decimals.
    static func listBalance(_ billing: BillingServe) throws {
        try billing.start(
            "BillingListWorkspaceBalanceWorkflow", id: "e2e-balance", input: #"{"workspace_id": "\#(workspace)", \#(runbookPeriod)}"#)
        let (text, balance) = try billing.result("e2e-balance")
        let items = try #require(balance["line_items"] as? [[String: Any]], "\(text)")
        let usage = items.filter { $0["kind"] as? String == "usage" }
        #expect(usage.map { $0["runner_label"] as? String } == ["x64-2c-4gb", "x64-4c-8gb"], "\(text)")
        #expect(usage.map { $0["quantity"] as? Int } == [4_000, 1_001])
        #expect(usage.map { $0["amount_micros"] as? Int } == [1_200_000_000, 600_600_000])
        #expect(items.allSatisfy { $0["description"] is String && $0["unit_price"] is NSNumber && $0["amount"] is NSNumber })
        #expect(balance["total_amount_micros"] as? Int == 801_000_000 && balance["amount_due_cents"] as? Int == 801, "\(text)")
        #expect(balance["status"] as? String == "preview" && (balance["timestamp"] as? String)?.hasSuffix("Z") == true, "\(text)")
        // Amounts are JSON numbers written exactly: no binary floating point on the way out.
        for exact in [#""unit_price":0.003"#, #""unit_price":0.006"#, #""amount":6.006"#, #""amount":12"#, #""total_amount":8.01"#] {
            #expect(text.contains(exact), "\(exact) not in \(text)")
        }
    }

    /// `BillingCycleWorkflow` with the runbook's input: the invoice issued and paid through
    /// localstripe; returns the payment's id.
    static func cycle(_ billing: BillingServe) async throws -> String {
        try billing.start("BillingCycleWorkflow", id: "e2e-cycle", input: #"{"workspace_id": "\#(workspace)", \#(runbookPeriod)}"#)
        let (text, cycle) = try billing.result("e2e-cycle")
        #expect(cycle["status"] as? String == "paid" && cycle["payment_status"] as? String == "succeeded", "\(text)")
        #expect(
            cycle["amount_due_cents"] as? Int == 801 && cycle["total_amount_micros"] as? Int == 801_000_000 && text.contains(#""total_amount":8.01"#))
        #expect(cycle["workspace_id"] as? String == workspace && cycle["billing_period"] as? String == "2026-11")
        #expect((cycle["invoice_number"] as? String)?.isEmpty == false)
        let paymentID = try #require(cycle["payment_id"] as? String, "\(text)")
        let invoiceID = try #require(cycle["invoice_id"] as? String)
        let row = try #require(try await billing.database.query("SELECT * FROM billing_payments WHERE id = $1", [.text(paymentID)]).first)
        #expect(try row.string("status") == "succeeded" && row.int("amount_cents") == 801)
        let intentID = try #require(try row.optionalString("provider_payment_id"))
        let intent = try await LocalStripe.shared.get("/v1/payment_intents/\(intentID)")
        #expect(intent["status"] as? String == "succeeded" && intent["amount"] as? Int == 801 && intent["currency"] as? String == "usd")
        #expect((intent["metadata"] as? [String: Any])?["invoice_id"] as? String == invoiceID)
        return paymentID
    }

    /// `BillingPaymentReversalWorkflow`: refunded at localstripe, the opposite transfer posted.
    static func paymentReversal(_ billing: BillingServe, paymentID: String) async throws {
        let input =
            #"{"payment_id": "\#(paymentID)", "workspace_id": "\#(workspace)", "reason": "Customer requested refund", "#
            + #""initiated_by_email": "admin@tenki.cloud"}"#
        try billing.start("BillingPaymentReversalWorkflow", id: "e2e-payment-reversal", input: input)
        let (text, reversal) = try billing.result("e2e-payment-reversal")
        #expect(reversal["success"] as? Bool == true && reversal["original_amount"] as? String == "8.01", "\(text)")
        #expect(reversal["original_amount_micros"] as? Int == 801_000_000 && reversal["reversed_now"] as? Bool == true)
        #expect((reversal["reversal_transfer_id"] as? String)?.isEmpty == false && (reversal["reversed_at"] as? String)?.hasSuffix("Z") == true)
        let row = try #require(try await billing.database.query("SELECT * FROM billing_payments WHERE id = $1", [.text(paymentID)]).first)
        #expect(try row.string("status") == "reversed" && row.optionalString("reversed_by") == "admin@tenki.cloud")
        let intentID = try row.string("provider_payment_id")
        // The refund step's output is localstripe's refund id.
        let described = try billing.tenki(["workflow", "describe", "e2e-payment-reversal", "--json"])
        let steps = (try JSONSerialization.jsonObject(with: Data(described.utf8)) as? [String: Any])?["steps"] as? [[String: Any]] ?? []
        let refundID = try #require(steps.first { $0["name"] as? String == "refund" }?["output"] as? String, "\(described)")
        let refund = try await LocalStripe.shared.get("/v1/refunds/\(refundID)")
        #expect(refund["status"] as? String == "succeeded" && refund["amount"] as? Int == 801 && refund["payment_intent"] as? String == intentID)
        #expect((refund["metadata"] as? [String: Any])?["payment_id"] as? String == paymentID)
    }

    /// `BillingUsageReversalWorkflow`: the 1,001-minute job given back, its record kept, marked.
    static func usageReversal(_ billing: BillingServe) async throws {
        let input =
            #"{"usage_event_id": "957387/42/1", "workspace_id": "\#(workspace)", "reason": "Incorrect runner charge - job failed", "#
            + #""initiated_by_email": "admin@tenki.cloud"}"#
        try billing.start("BillingUsageReversalWorkflow", id: "e2e-usage-reversal", input: input)
        let (text, reversal) = try billing.result("e2e-usage-reversal")
        #expect(reversal["success"] as? Bool == true && reversal["original_amount"] as? String == "6.01", "\(text)")
        #expect(reversal["original_amount_micros"] as? Int == 600_600_000 && reversal["reversed_now"] as? Bool == true)
        #expect(try await billing.count("SELECT COUNT(*) AS n FROM runner_usage WHERE usage_key = '957387/42/1' AND reversed_at IS NOT NULL") == 1)
        #expect(try await billing.count("SELECT COUNT(*) AS n FROM billing_usage_reversals") == 1)
        // A reversal names an object of the workspace given: another workspace's is not found.
        try await billing.workspace("other", slug: "other")
        let wrong = #"{"usage_event_id": "957387/41/1", "workspace_id": "other", "reason": "r", "initiated_by_email": "a@b.c"}"#
        try billing.start("BillingUsageReversalWorkflow", id: "e2e-usage-reversal-wrong", input: wrong)
        let failed = try TenkiProcess.run(
            ["workflow", "result", "e2e-usage-reversal-wrong", "--wait"] + billing.storage, environment: billing.environment)
        #expect(failed.status == 1 && failed.error.contains("no usage event '957387/41/1' in workspace other"), "\(failed.error)")
    }

    static func transferCodes(_ billing: BillingServe, _ workspace: String) throws -> Set<Int> {
        let output = try billing.tenki(["ledger", "transfers", "--workspace", workspace, "--json"])
        let transfers = (try? JSONSerialization.jsonObject(with: Data(output.utf8))) as? [[String: Any]] ?? []
        return Set(transfers.compactMap { $0["code"] as? Int })
    }

    static func postStripe(_ server: TenkiProcess, body: [UInt8], signature: String?) async throws -> OutboundResponse {
        var headers: [(name: String, value: String)] = [(name: "Content-Type", value: "application/json")]
        if let signature { headers.append((name: "Stripe-Signature", value: signature)) }
        return try await HTTPClient().send(OutboundRequest(method: "POST", url: server.baseURL + "/webhooks/stripe", headers: headers, body: body))
    }

    @Test("Stripe webhooks through serve: forged 401, a repeat is a duplicate with no second effect, malformed 400", arguments: DriverKind.allCases)
    func stripeWebhooks(_ kind: DriverKind) async throws {
        let billing = try await BillingServe(kind)
        let server = try await billing.serve()
        defer { server.kill() }
        let event = "evt_e2e_\(UInt32.random(in: 0...UInt32.max))"
        let body = Array(#"{"id":"\#(event)","object":"event","type":"payment_intent.succeeded","data":{"object":{"id":"pi_1"}}}"#.utf8)
        func signed(_ body: [UInt8], secret: String = billing.webhookSecret) -> String {
            StripeSignature.header(secret: Array(secret.utf8), payload: body, timestamp: Int64(Date().timeIntervalSince1970))
        }
        let forged = try await Self.postStripe(server, body: body, signature: signed(body, secret: "whsec_forged"))
        #expect(forged.status == 401 && forged.bodyText.contains("signature_mismatch"), "\(forged.bodyText)")
        let unsigned = try await Self.postStripe(server, body: body, signature: nil)
        #expect(unsigned.status == 401 && unsigned.bodyText.contains("signature_missing"), "\(unsigned.bodyText)")
        #expect(try await billing.count("SELECT COUNT(*) AS n FROM billing_stripe_events") == 0)
        #expect(try await billing.count("SELECT COUNT(*) AS n FROM event_inbox WHERE source = 'stripe'") == 0)

        let first = try await Self.postStripe(server, body: body, signature: signed(body))
        #expect(first.status == 200 && first.bodyText == #"{"event_id":"\#(event)","status":"accepted"}"#, "\(first.bodyText)")
        let again = try await Self.postStripe(server, body: body, signature: signed(body))
        #expect(again.status == 200 && again.bodyText == #"{"event_id":"\#(event)","status":"duplicate"}"#, "\(again.bodyText)")
        #expect(try await billing.count("SELECT COUNT(*) AS n FROM billing_stripe_events") == 1)
        // One inbox event, dispatched once.
        let deadline = Date().addingTimeInterval(30)
        while try await billing.count("SELECT COUNT(*) AS n FROM event_inbox WHERE source = 'stripe' AND status = 'done'") == 0, Date() < deadline {
            try await Task.sleep(for: .milliseconds(50))
        }
        let inbox = try await billing.database.query("SELECT topic, status, attempts FROM event_inbox WHERE source = 'stripe'")
        let topics = try inbox.map { "\(try $0.string("topic")) \(try $0.string("status"))" }
        #expect(topics == ["stripe.payment_intent.succeeded done"])

        for malformed in ["not json", #"{"object":"event"}"#, "[1,2]"] {
            let bytes = Array(malformed.utf8)
            let response = try await Self.postStripe(server, body: bytes, signature: signed(bytes))
            #expect(response.status == 400, "\(malformed): \(response.status) \(response.bodyText)")
        }
        #expect(try await billing.count("SELECT COUNT(*) AS n FROM billing_stripe_events") == 1)
        #expect(server.terminate() == 0)
    }
}
