import BillingPlugin
import Foundation
import Host
import LedgerPlugin
import RunnerPlugin
import SQL
import TestSupport
import Testing
import WorkflowPlugin

/// The billing workflows on a test clock, paying through an in-process provider.
final class BillingRig: Sendable {
    let h: BillingHarness
    let provider = FakePaymentProvider()
    let clock: ManualWorkflowClock
    let engine: WorkflowEngine
    let services: BillingServices

    /// Paying through `provider` when given, else through the in-process fake.
    init(
        _ kind: DriverKind, at start: String = "2026-12-01T00:05:00Z", provider real: (any PaymentProvider)? = nil,
        configure: (inout HostConfiguration) -> Void = { _ in }
    ) async throws {
        h = try await BillingHarness(kind, configure: configure)
        clock = ManualWorkflowClock(startMilliseconds: BillingHarness.ms(start))
        let catalog = WorkflowCatalog()
        services = h.billing.operations.paying(through: real ?? provider)
        BillingWorkflows.definitions(services).forEach(catalog.register)
        catalog.register(WorkflowTaskQueue(BillingWorkflows.taskQueue))
        engine = WorkflowEngine(database: h.database, catalog: catalog, clock: clock)
    }

    /// Starts a run with the runbook's JSON input and runs everything runnable now.
    @discardableResult
    func run(_ type: String, _ input: String, id: String? = nil) async throws -> WorkflowRun {
        let bytes = try WorkflowJSON.validate(input, what: "input")
        let started = try await engine.start(type: type, input: bytes, id: id, taskQueue: BillingWorkflows.taskQueue)
        _ = try await engine.drain()
        return try await engine.run(id: started.run.id)
    }

    func output(_ run: WorkflowRun) async throws -> [String: Any] {
        if run.status != .completed {
            let steps = try await engine.describe(id: run.id).steps.filter { $0.error != nil }.map { "\($0.name): \($0.error ?? "")" }
            Issue.record("\(run.type) is \(run.status): \(run.error ?? "") \(steps)")
        }
        return try #require(try JSONSerialization.jsonObject(with: Data(run.output ?? [])) as? [String: Any])
    }

    /// Moves the clock and runs what fell due.
    func advance(days: Int) async throws {
        clock.advance(by: .seconds(Int64(days) * 86_400))
        _ = try await engine.drain()
    }

    func topics() async throws -> [String] {
        try await h.database.query("SELECT topic FROM event_inbox WHERE source = 'billing' ORDER BY id").map { try $0.string("topic") }
    }
}

@Suite("Billing cycle workflows")
struct CycleWorkflowTests {
    static let novemberInput = #"""
        {"workspace_id": "ws-a-slug", "billing_period": "2026-11", "billing_period_start": "2026-11-01T00:00:00Z",
         "billing_period_end": "2026-11-30T23:59:59.999Z"}
        """#

    @Test("the cycle issues, posts the ledger and charges once; the invoice nets to zero on USER", arguments: DriverKind.allCases)
    func cycle(_ kind: DriverKind) async throws {
        let rig = try await BillingRig(kind)
        defer { withExtendedLifetime(rig) {} }
        try await InvoiceTests.monthOfA(rig.h)
        try await rig.h.paymentMethod("ws-a")
        let output = try await rig.output(try await rig.run(BillingWorkflows.cycleType, Self.novemberInput))
        #expect(output["status"] as? String == "paid" && output["payment_status"] as? String == "succeeded")
        #expect(output["invoice_number"] as? String == "TNK-2026-000001" && output["amount_due_cents"] as? Int == 9_163)
        #expect(rig.provider.charges.map(\.amountCents) == [9_163])
        #expect(rig.provider.charges.first?.idempotencyKey == Payments.paymentID(invoice: output["invoice_id"] as! String, attempt: 1))
        // Usage, charges, credits, rounding and the payment cancel out; December's job is what is left.
        #expect(try await rig.h.ledger.balance(workspace: "ws-a").balanceMicros == -1_500_000)
        let invoice = try #require(try await rig.h.invoices.invoice("TNK-2026-000001"))
        #expect(invoice.status == .paid)
        #expect(try await rig.h.invoices.history(invoice: invoice.id!).map(\.event) == ["drafted", "issued", "paid"])
        #expect(try await rig.topics() == ["invoice.issued", "payment.succeeded"])

        // The same cycle by another id (a rerun by hand): the same invoice, no second charge.
        let again = try await rig.output(try await rig.run(BillingWorkflows.cycleType, Self.novemberInput))
        #expect(again["invoice_id"] as? String == invoice.id && again["payment_status"] as? String == "already_paid")
        #expect(rig.provider.charges.count == 1)
        #expect(try await rig.h.ledger.balance(workspace: "ws-a").balanceMicros == -1_500_000)
    }

    @Test("the schedule bills every workspace but the excluded, once, also when run again", arguments: DriverKind.allCases)
    func schedule(_ kind: DriverKind) async throws {
        let rig = try await BillingRig(kind)
        defer { withExtendedLifetime(rig) {} }
        for (i, ws) in ["ws-1", "ws-2", "ws-3"].enumerated() {
            try await rig.h.workspace(ws)
            try await rig.h.paymentMethod(ws)
            try await rig.h.charge(ws, job: 100 + i, labels: ["tenki-standard-2c-4gb"], completed: "2026-11-05T10:00:00Z", minutes: 4_000)
        }
        try await rig.h.workspace("ws-idle")
        let input = #"{"luxor_only": false, "exclude_workspaces": ["ws-3-slug"]}"#
        // Started by the cron tick of December 1st: it bills November.
        let first = try await rig.output(try await rig.run(BillingWorkflows.scheduleType, input, id: "billing-cycle@2026-12-01T00:00Z"))
        #expect(first["billing_period"] as? String == "2026-11" && first["workspaces"] as? Int == 3)
        #expect(first["invoices"] as? Int == 2 && first["nothing_to_bill"] as? Int == 1 && first["paid"] as? Int == 2)
        // 4,000 min × $0.003 = $12.00, less the $10 monthly credit: $2.00 each.
        #expect(first["amount_due_cents"] as? Int == 400)
        let second = try await rig.output(try await rig.run(BillingWorkflows.scheduleType, #"{"billing_period": "2026-11"}"#))
        #expect(second["invoices"] as? Int == 3 && second["paid"] as? Int == 3)
        let invoices = try await rig.h.database.query("SELECT workspace_id FROM billing_invoices ORDER BY workspace_id")
        #expect(try invoices.map { try $0.string("workspace_id") } == ["ws-1", "ws-2", "ws-3"])
        #expect(rig.provider.charges.count == 3)
    }

    @Test("the runbook's list-balance answers the invoice in its shape with exact amounts and changes nothing", arguments: DriverKind.allCases)
    func listBalance(_ kind: DriverKind) async throws {
        let rig = try await BillingRig(kind)
        defer { withExtendedLifetime(rig) {} }
        try await InvoiceTests.monthOfA(rig.h)
        let run = try await rig.run(BillingWorkflows.listBalanceType, Self.novemberInput)
        let text = String(decoding: run.output ?? [], as: UTF8.self)
        let output = try await rig.output(run)
        let items = try #require(output["line_items"] as? [[String: Any]])
        #expect(items.count == InvoiceTests.novemberOfA.count)
        #expect(items.first?["runner_label"] as? String == "macos-m4-6c" && items.first?["quantity"] as? Int == 30)
        // Exact decimals, never a float's rounding: $0.04 a minute, $1.20, and the total $91.63.
        #expect(text.contains(#""unit_price":0.04,"#) && text.contains(#""amount":1.2,"#) && text.contains(#""total_amount":91.63,"#))
        #expect(text.contains(#""amount":-0.00333333,"#))
        #expect(output["total_amount_micros"] as? Int == 9_163_000_000)
        #expect(try await rig.h.database.query("SELECT id FROM billing_invoices").isEmpty)
    }

    @Test("bad runbook inputs fail the run with a clear error", arguments: DriverKind.allCases)
    func badInputs(_ kind: DriverKind) async throws {
        let rig = try await BillingRig(kind)
        defer { withExtendedLifetime(rig) {} }
        try await rig.h.workspace("ws-a")
        let cases: [(String, String, String)] = [
            (BillingWorkflows.cycleType, #"{"workspace_id": "nobody", "billing_period": "2026-11"}"#, "no workspace 'nobody'"),
            (
                BillingWorkflows.cycleType,
                #"{"workspace_id": "ws-a", "billing_period": "2026-11", "billing_period_end": "2026-10-31T23:59:59.999Z"}"#,
                "is not the end of 2026-11"
            ),
            (BillingWorkflows.listBalanceType, #"{"workspace_id": "ws-a"}"#, "give billing_period"),
            (
                BillingWorkflows.paymentReversalType, #"{"payment_id": "pay_x", "workspace_id": "ws-a", "initiated_by_email": "a@b.c"}"#,
                "reason is required"
            ),
            (
                BillingWorkflows.usageReversalType, #"{"usage_event_id": "1/1/1", "workspace_id": "ws-a", "reason": "x"}"#,
                "initiated_by_email is required"
            ),
        ]
        for (type, input, message) in cases {
            let run = try await rig.run(type, input)
            #expect(run.status == .failed, "\(input)")
            #expect(run.error?.contains(message) == true, "\(run.error ?? "")")
        }
    }
}

@Suite("Dunning and reversals")
struct DunningTests {
    static func overdue(_ rig: BillingRig, _ workspace: String) async throws -> (payment: Bool, ops: Bool) {
        let row = try #require(
            try await rig.h.database.query("SELECT payment_overdue, suspended FROM runner_workspaces WHERE id = $1", [.text(workspace)]).first)
        return (try row.bool("payment_overdue"), try row.bool("suspended"))
    }

    @Test(
        "a declined card is retried on days 3, 5, 7, suspends on the 10th, and a payment lifts only that suspension", arguments: DriverKind.allCases)
    func dunning(_ kind: DriverKind) async throws {
        let rig = try await BillingRig(kind)
        defer { withExtendedLifetime(rig) {} }
        try await rig.h.workspace("ws-d")
        try await rig.h.paymentMethod("ws-d")
        try await rig.h.charge("ws-d", job: 1, labels: ["tenki-standard-2c-4gb"], completed: "2026-11-05T10:00:00Z", minutes: 4_000)
        rig.provider.declining = true
        let cycle = try await rig.output(try await rig.run(BillingWorkflows.cycleType, #"{"workspace_id": "ws-d", "billing_period": "2026-11"}"#))
        #expect(cycle["payment_status"] as? String == "failed" && cycle["status"] as? String == "issued")
        let invoice = try #require(cycle["invoice_id"] as? String)
        let dunningID = BillingWorkflows.dunningID(invoice: invoice)
        #expect(try await rig.engine.run(id: dunningID).status == .sleeping)
        // Dec 4, 6 and 8 (00:05): three retries, all declined; the workspace still runs jobs.
        for (days, charges) in [(3, 2), (2, 3), (2, 4)] {
            try await rig.advance(days: days)
            #expect(rig.provider.charges.count == charges)
            #expect(try await Self.overdue(rig, "ws-d").payment == false)
        }
        // December 10th: still unpaid after the 9th → suspended for non-payment.
        try await rig.advance(days: 2)
        #expect(rig.provider.charges.count == 4)
        #expect(try await Self.overdue(rig, "ws-d").payment == true)
        let admission = try rig.h.host.policies.admitJob(
            AdmissionInput(labels: ["tenki-standard-2c-4gb"], workspace: .init(freeMinutesRemaining: 0, hasPaymentMethod: true, paymentOverdue: true))
        )
        #expect(admission.verdict == .block && admission.reason == "payment_overdue")
        // An operator suspends it too; then a new card arrives and the charge succeeds at once.
        try await rig.h.billing.operations.runner.update(workspace: "ws-d", .init(suspended: true))
        rig.provider.declining = false
        try await rig.engine.signal(id: dunningID, name: BillingWorkflows.retrySignal, payload: Array("{}".utf8))
        _ = try await rig.engine.drain()
        let dunning = try await rig.output(try await rig.engine.run(id: dunningID))
        #expect(dunning["outcome"] as? String == "paid" && dunning["attempts"] as? Int == 5 && dunning["suspended"] as? Bool == true)
        #expect(try await Self.overdue(rig, "ws-d") == (false, true))
        #expect(try await rig.h.invoices.invoice(invoice)?.status == .paid)
        let history = try await rig.h.invoices.history(invoice: invoice).map(\.event)
        #expect(
            history == ["drafted", "issued", "payment_failed", "payment_failed", "payment_failed", "payment_failed", "workspace_suspended", "paid"])
        #expect(
            try await rig.topics() == [
                "invoice.issued", "payment.failed", "payment.failed", "payment.failed", "payment.failed", "workspace.suspended", "payment.succeeded",
                "workspace.unsuspended",
            ])
        // Lifting the operator's suspension is the operator's business; the payment left it alone.
        #expect(try await rig.h.billing.operations.runner.workspace("ws-d")?.suspended == true)
    }

    @Test("reversing a payment refunds and posts once; reversing usage gives back money and minutes once", arguments: DriverKind.allCases)
    func reversals(_ kind: DriverKind) async throws {
        let rig = try await BillingRig(kind)
        defer { withExtendedLifetime(rig) {} }
        try await InvoiceTests.monthOfA(rig.h)
        try await rig.h.paymentMethod("ws-a")
        try await rig.h.workspace("ws-other")
        _ = try await rig.output(try await rig.run(BillingWorkflows.cycleType, CycleWorkflowTests.novemberInput))
        let payment = try #require(try await rig.h.database.query("SELECT id FROM billing_payments").first).string("id")
        let before = try await rig.h.ledger.balance(workspace: "ws-a").balanceMicros
        let input =
            #"{"payment_id": "\#(payment)", "workspace_id": "ws-a-slug", "reason": "Customer requested refund", "#
            + #""initiated_by_email": "admin@tenki.test"}"#
        let first = try await rig.output(try await rig.run(BillingWorkflows.paymentReversalType, input))
        #expect(first["success"] as? Bool == true && first["original_amount"] as? String == "91.63" && first["reversed_now"] as? Bool == true)
        #expect((first["reversal_transfer_id"] as? String)?.count == 32)
        let second = try await rig.output(try await rig.run(BillingWorkflows.paymentReversalType, input))
        #expect(second["reversed_now"] as? Bool == false && second["reversal_transfer_id"] as? String == first["reversal_transfer_id"] as? String)
        #expect(rig.provider.refunds.count == 1)
        #expect(try await rig.h.ledger.balance(workspace: "ws-a").balanceMicros == before - 9_163_000_000)
        let wrong = try await rig.run(BillingWorkflows.paymentReversalType, input.replacingOccurrences(of: "ws-a-slug", with: "ws-other"))
        #expect(wrong.status == .failed && wrong.error?.contains("NotFound") == true)

        // December's job (not invoiced yet) is reversed: money back, and no invoice takes it.
        let usage =
            #"{"usage_event_id": "1/7/1", "workspace_id": "ws-a", "reason": "Incorrect runner charge - job failed", "#
            + #""initiated_by_email": "admin@tenki.test"}"#
        let reversed = try await rig.output(try await rig.run(BillingWorkflows.usageReversalType, usage))
        #expect(reversed["original_amount_micros"] as? Int == 1_500_000 && reversed["original_amount"] as? String == "0.02")
        _ = try await rig.output(try await rig.run(BillingWorkflows.usageReversalType, usage))
        #expect(try await rig.h.ledger.balance(workspace: "ws-a").balanceMicros == before - 9_163_000_000 + 1_500_000)
        let december = try await rig.h.invoices.preview(workspace: "ws-a", period: try BillingPeriod("2026-12"), policies: rig.h.host.policies)
        #expect(!december.lines.contains { $0.kind == .usage })
        // A job that consumed free minutes gets them back.
        let minutes = try await rig.h.ledger.balance(workspace: "ws-a").freeMinutesRemaining
        _ = try await rig.output(try await rig.run(BillingWorkflows.usageReversalType, usage.replacingOccurrences(of: "1/7/1", with: "1/6/1")))
        #expect(try await rig.h.ledger.balance(workspace: "ws-a").freeMinutesRemaining == minutes + 20)
        let kept = try await rig.h.database.query("SELECT reversed_at FROM runner_usage WHERE usage_key IN ('1/6/1', '1/7/1')")
        #expect(kept.count == 2 && kept.allSatisfy { !$0["reversed_at"].isNull })
    }
}

@Suite("Stripe's events applied to payments")
struct StripeEventTests {
    static func deliver(_ rig: BillingRig, _ id: String, _ type: String, _ object: [String: Any]) async throws {
        let body = try JSONSerialization.data(withJSONObject: ["id": id, "type": type, "object": "event", "data": ["object": object]])
        try await rig.h.database.transaction { db in
            _ = try EventInbox.publish(in: db, topic: "stripe.\(type)", source: "stripe", sourceID: id, payload: Array(body))
        }
        let dispatcher = rig.h.host.events.dispatcher()
        while try await dispatcher.dispatchOnce() > 0 {}
        // The host's engine signalled at the system clock's time: catch the test clock up.
        let behind = Timestamp.ms(Date()) + 1_000 - rig.clock.nowMilliseconds()
        if behind > 0 { rig.clock.advance(by: .milliseconds(behind)) }
        _ = try await rig.engine.drain()
    }

    @Test("a payment Stripe reports succeeded settles the invoice and ends dunning, once; a refund reverses it", arguments: DriverKind.allCases)
    func succeededThenRefunded(_ kind: DriverKind) async throws {
        let rig = try await BillingRig(kind, at: BillingPeriod.iso(Int64(Date().timeIntervalSince1970)))
        defer { withExtendedLifetime(rig) {} }
        try await rig.h.workspace("ws-e")
        try await rig.h.paymentMethod("ws-e")
        try await rig.h.charge("ws-e", job: 1, labels: ["tenki-standard-2c-4gb"], completed: "2026-11-05T10:00:00Z", minutes: 4_000)
        rig.provider.declining = true
        let cycle = try await rig.output(try await rig.run(BillingWorkflows.cycleType, #"{"workspace_id": "ws-e", "billing_period": "2026-11"}"#))
        let invoice = try #require(cycle["invoice_id"] as? String)
        let intent: [String: Any] = ["id": "pi_1", "object": "payment_intent", "amount": 200, "metadata": ["invoice_id": invoice]]
        let before = try await rig.h.ledger.balance(workspace: "ws-e").balanceMicros
        for _ in 0..<2 {  // Stripe may send it twice: one effect
            try await Self.deliver(rig, "evt_paid", "payment_intent.succeeded", intent)
            try await Self.deliver(rig, "evt_paid_again", "payment_intent.succeeded", intent)
        }
        #expect(try await rig.h.invoices.invoice(invoice)?.status == .paid)
        #expect(try await rig.h.ledger.balance(workspace: "ws-e").balanceMicros == before + 200_000_000)
        #expect(try await rig.engine.run(id: BillingWorkflows.dunningID(invoice: invoice)).status == .completed)
        let charge: [String: Any] = ["id": "ch_1", "object": "charge", "payment_intent": "pi_1", "amount_refunded": 200]
        try await Self.deliver(rig, "evt_refund", "charge.refunded", charge)
        try await Self.deliver(rig, "evt_refund_2", "charge.refunded", charge)
        #expect(try await rig.h.ledger.balance(workspace: "ws-e").balanceMicros == before)
        let payments = try await rig.services.payments.payments(invoice: invoice)
        #expect(payments.map(\.status) == ["reversed"])
    }
}
