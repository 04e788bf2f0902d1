import Foundation
import HTTPClient
import PluginTestSupport
import SQL
import TestSupport
import Testing

/// The monthly cycle where it can go wrong at scale: run twice, on two replicas at once, and
/// with the replica killed mid-cycle. Each workspace ends with one invoice and one charge.
extension BillingEndToEndTests {
    static let completed = "2026-11-12T08:00:00Z"

    /// One customer and card at localstripe, made through `set-payment-method` on a workspace
    /// of its own, that every seeded workspace pays with.
    static func card(_ billing: BillingServe) async throws -> (customer: String, method: String) {
        try await billing.workspace("card-holder", slug: "card-holder")
        let saved = try billing.tenki(["workspaces", "set-payment-method", "card-holder", "--provider-ref", "pm_card_visa", "--json"])
        let card = try #require(try JSONSerialization.jsonObject(with: Data(saved.utf8)) as? [String: Any], "\(saved)")
        return (try #require(card["customer_id"] as? String), try #require(card["payment_method_id"] as? String))
    }

    /// Starts `BillingCycleScheduleWorkflow` over HTTP on `server` with id `id`.
    static func startSchedule(on server: TenkiProcess, id: String) async throws {
        let body = #"{"type": "BillingCycleScheduleWorkflow", "id": "\#(id)", "input": {"luxor_only": false, "exclude_workspaces": [], \#(period)}}"#
        let response = try await HTTPClient().post(
            server.baseURL + "/workflows", headers: server.authorization + [("Content-Type", "application/json")], body: Array(body.utf8))
        #expect(response.status == 201, "\(response.bodyText)")
    }

    @Test("the cycle run twice at once on two replicas, then again: one invoice per workspace, one charge per invoice")
    func twoReplicas() async throws {
        let billing = try await BillingServe(.postgres)
        let card = try await Self.card(billing)
        try await billing.seedMany(20, customer: card.customer, method: card.method, completed: Self.completed)
        let first = try await billing.serve()
        let second = try await billing.serve()
        defer {
            first.kill()
            second.kill()
        }
        async let a: Void = Self.startSchedule(on: first, id: "e2e-schedule-a")
        async let b: Void = Self.startSchedule(on: second, id: "e2e-schedule-b")
        _ = try await (a, b)
        let results = [try billing.result("e2e-schedule-a").object, try billing.result("e2e-schedule-b").object]
        for result in results {
            // Each counts what it billed and what the other had finished; the rest it saw running elsewhere.
            let seen = (result["workspaces"] as? Int ?? 0) + ((result["running_elsewhere"] as? [Any])?.count ?? 0)
            #expect(seen == 21 && (result["failed"] as? [Any])?.isEmpty == true, "\(result)")
        }
        // Run again after both ended: it finds every cycle done and starts nothing.
        try await Self.startSchedule(on: second, id: "e2e-schedule-c")
        let again = try billing.result("e2e-schedule-c").object
        // card-holder has nothing to bill; the 20 workspaces each owe $12.00 less the $10.00 monthly credit.
        #expect(again["workspaces"] as? Int == 21 && again["invoices"] as? Int == 20 && again["paid"] as? Int == 20, "\(again)")
        #expect(again["amount_due_cents"] as? Int == 20 * 200 && (again["running_elsewhere"] as? [Any])?.isEmpty == true)
        try await Self.expectBilledOnce(billing, workspaces: 20)
        let intents = try await billing.intentsPerInvoice(customer: card.customer)
        #expect(intents.count == 20 && intents.values.allSatisfy { $0 == 1 }, "localstripe saw \(intents)")
        #expect(first.terminate() == 0 && second.terminate() == 0)
    }

    /// Every seeded workspace has one invoice, paid, with one succeeded payment of $2.00.
    static func expectBilledOnce(_ billing: BillingServe, workspaces: Int64) async throws {
        #expect(try await billing.count("SELECT COUNT(*) AS n FROM billing_invoices") == workspaces)
        #expect(try await billing.count("SELECT COUNT(DISTINCT workspace_id) AS n FROM billing_invoices") == workspaces)
        #expect(try await billing.count("SELECT COUNT(*) AS n FROM billing_invoices WHERE status = 'paid' AND amount_due_cents = 200") == workspaces)
        #expect(try await billing.count("SELECT COUNT(*) AS n FROM billing_payments WHERE status = 'succeeded'") == workspaces)
        #expect(try await billing.invoicesNotPaidOnce().isEmpty)
    }

    @Test("kill -9 during a cycle of 200 workspaces: after a restart each has one invoice and one succeeded charge", arguments: DriverKind.allCases)
    func killedMidCycle(_ kind: DriverKind) async throws {
        let billing = try await BillingServe(kind)
        let card = try await Self.card(billing)
        try await billing.seedMany(200, customer: card.customer, method: card.method, completed: Self.completed)
        // A short lease, so the restarted server takes over the dead one's runs soon.
        let settings = ["TENKI_WORKFLOW_LEASE_SECONDS": "2"]
        let server = try await billing.serve(settings)
        let began = Date()
        try billing.start(
            "BillingCycleScheduleWorkflow", id: "e2e-schedule", input: #"{"luxor_only": false, "exclude_workspaces": [], \#(Self.period)}"#)
        // Killed with a charge in flight if one is seen once 10 invoices exist, else at 100.
        var invoices: Int64 = 0
        var pending: Int64 = 0
        while invoices < 100, invoices < 10 || pending == 0, Date().timeIntervalSince(began) < 60 {
            invoices = try await billing.count("SELECT COUNT(*) AS n FROM billing_invoices")
            pending = try await billing.count("SELECT COUNT(*) AS n FROM billing_payments WHERE status = 'pending'")
        }
        server.kill()
        let atKill = (
            invoices: try await billing.count("SELECT COUNT(*) AS n FROM billing_invoices"),
            pending: try await billing.count("SELECT COUNT(*) AS n FROM billing_payments WHERE status = 'pending'"),
            paid: try await billing.count("SELECT COUNT(*) AS n FROM billing_payments WHERE status = 'succeeded'")
        )
        #expect(atKill.invoices > 0 && atKill.invoices < 200, "killed too late: \(atKill.invoices) invoices")
        let restarted = try await billing.serve(settings)
        defer { restarted.kill() }
        let result = try billing.result("e2e-schedule", seconds: 120).object
        let took = Date().timeIntervalSince(began)
        #expect(result["workspaces"] as? Int == 201 && result["paid"] as? Int == 200 && (result["failed"] as? [Any])?.isEmpty == true, "\(result)")
        try await Self.expectBilledOnce(billing, workspaces: 200)
        let intents = try await billing.intentsPerInvoice(customer: card.customer)
        let duplicated = intents.filter { $0.value > 1 }
        #expect(intents.count == 200)
        print(
            "billing e2e kill -9 (\(kind)): killed at \(atKill.invoices) invoices, \(atKill.paid) paid, \(atKill.pending) pending; "
                + "cycle done in \(Int(took * 1000)) ms; localstripe duplicate charges: \(duplicated.count) \(duplicated)")
        #expect(restarted.terminate() == 0)
    }
}
