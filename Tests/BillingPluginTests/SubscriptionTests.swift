import BillingPlugin
import Foundation
import Host
import Hummingbird
import HummingbirdTesting
import RunnerPlugin
import SQL
import Synchronization
import TestSupport
import Testing

/// Add-on and slot subscriptions: eligibility by policy, the projection admission reads, the end
/// of the cycle after a cancellation, the sweep, invoices, the CLI and the routes.
@Suite("Subscriptions")
struct SubscriptionTests {
    static func at(_ text: String) -> Int64 { Timestamp.parseUTCSeconds(text)! }

    /// A workspace with (or without) a payment method.
    static func workspace(_ h: BillingHarness, _ id: String, paymentMethod: Bool = true) async throws -> RunnerStore {
        try await h.workspace(id)
        let store = try h.host.require(RunnerPlugin.self).store
        if paymentMethod { try await store.update(workspace: id, .init(hasPaymentMethod: true)) }
        return store
    }

    static func projection(_ store: RunnerStore, _ id: String) async throws -> (addons: [String], x64: Int64, macos: Int64) {
        let w = try #require(try await store.workspace(id))
        return (w.addons, w.extraSlotsX64, w.extraSlotsMacOS)
    }

    static func refusal(_ body: () async throws -> Void) async -> HostError? {
        do {
            try await body()
            return nil
        } catch { return error as? HostError }
    }

    @Test("without a payment method an add-on is refused and nothing is stored", arguments: DriverKind.allCases)
    func paymentMethodRequired(_ kind: DriverKind) async throws {
        let h = try await BillingHarness(kind)
        let store = try await Self.workspace(h, "ws", paymentMethod: false)
        let error = await Self.refusal {
            _ = try await h.billing.subscriptionStore.add(workspace: "ws", .addon("macos-m4"), by: "t", now: Self.at("2026-11-16T09:00:00Z"))
        }
        #expect(error?.code == .rejected && error?.reason == "payment_method_required")
        #expect(try await h.database.query("SELECT id FROM billing_subscriptions").isEmpty)
        #expect(try await Self.projection(store, "ws").addons == [])
    }

    @Test("a bought add-on is active at once, and buying it again is refused", arguments: DriverKind.allCases)
    func addonActive(_ kind: DriverKind) async throws {
        let h = try await BillingHarness(kind)
        let store = try await Self.workspace(h, "ws")
        let now = Self.at("2026-11-16T09:00:00Z")
        let bought = try await h.billing.subscriptionStore.add(workspace: "ws-slug", .addon("macos-m4"), by: "ops", now: now)
        #expect(bought.status == .active && bought.workspaceID == "ws" && bought.startedAt == "2026-11-16T09:00:00Z" && bought.endsAt == nil)
        #expect(try await Self.projection(store, "ws").addons == ["macos-m4"])
        let again = await Self.refusal {
            _ = try await h.billing.subscriptionStore.add(workspace: "ws", .addon("macos-m4"), by: "ops", now: now + 60)
        }
        #expect(again?.code == .rejected && again?.reason == "already_active")
        _ = try await h.billing.subscriptionStore.add(workspace: "ws", .addon("priority-support"), by: "ops", now: now + 60)
        #expect(try await Self.projection(store, "ws").addons == ["macos-m4", "priority-support"])
        let unknown = await Self.refusal { _ = try await h.billing.subscriptionStore.add(workspace: "ws", .addon("nope"), by: "ops", now: now) }
        #expect(unknown?.reason == "unknown_addon")
        let nobody = await Self.refusal {
            _ = try await h.billing.subscriptionStore.add(workspace: "nobody", .addon("macos-m4"), by: "ops", now: now)
        }
        #expect(nobody?.code == .notFound)
    }

    @Test("a cancelled add-on stays active to the next UTC 1st, then the sweep removes it", arguments: DriverKind.allCases)
    func cancelToEndOfCycle(_ kind: DriverKind) async throws {
        let h = try await BillingHarness(kind)
        let store = try await Self.workspace(h, "ws")
        let subscriptions = h.billing.subscriptionStore
        _ = try await subscriptions.add(workspace: "ws", .addon("priority-queue-boost"), by: "t", now: Self.at("2026-11-16T09:00:00Z"))
        let cancelled = try #require(
            try await subscriptions.cancel(workspace: "ws", .addon("priority-queue-boost"), now: Self.at("2026-11-20T10:00:00Z")).first)
        #expect(cancelled.status == .cancelled && cancelled.cancelledAt == "2026-11-20T10:00:00Z" && cancelled.endsAt == "2026-12-01T00:00:00Z")
        #expect(cancelled.statusText == "cancelled (ends 2026-12-01)")
        // Cancelling again changes nothing; buying it again before it ends is refused.
        let twice = try await subscriptions.cancel(workspace: "ws", .id(cancelled.id), now: Self.at("2026-11-25T00:00:00Z"))
        #expect(twice == [cancelled])
        let rebuy = await Self.refusal {
            _ = try await subscriptions.add(workspace: "ws", .addon("priority-queue-boost"), by: "t", now: Self.at("2026-11-26T00:00:00Z"))
        }
        #expect(rebuy?.reason == "already_active")

        #expect(try await subscriptions.expire(now: Self.at("2026-11-30T23:59:59Z")) == 0)
        #expect(try await Self.projection(store, "ws").addons == ["priority-queue-boost"])
        #expect(try await subscriptions.expire(now: Self.at("2026-12-01T00:00:00Z")) == 1)
        #expect(try await Self.projection(store, "ws").addons == [])
        // A second sweep (another replica) finds the projection right and writes nothing.
        #expect(try await subscriptions.expire(now: Self.at("2026-12-01T00:01:00Z")) == 0)
        let listed = try await subscriptions.list(workspace: "ws", now: Self.at("2026-12-01T00:01:00Z"))
        #expect(listed.map(\.status) == [.ended] && listed.first?.statusText == "ended 2026-12-01")
        let missing = await Self.refusal {
            _ = try await subscriptions.cancel(workspace: "ws", .addon("macos-m4"), now: Self.at("2026-12-02T00:00:00Z"))
        }
        #expect(missing?.code == .notFound)
        // Once ended it may be bought again.
        _ = try await subscriptions.add(workspace: "ws", .addon("priority-queue-boost"), by: "t", now: Self.at("2026-12-02T00:00:00Z"))
        #expect(try await Self.projection(store, "ws").addons == ["priority-queue-boost"])
    }

    @Test("a prepaid year needs sales approval and ends 12 months after it starts, cancelled or not", arguments: DriverKind.allCases)
    func prepaidYear(_ kind: DriverKind) async throws {
        let h = try await BillingHarness(kind)
        let store = try await Self.workspace(h, "ws")
        let subscriptions = h.billing.subscriptionStore
        let start = Self.at("2026-11-10T00:00:00Z")
        let refused = await Self.refusal {
            _ = try await subscriptions.add(workspace: "ws", .addon("macos-m4", term: "prepaid_12"), by: "t", now: start)
        }
        #expect(refused?.code == .rejected && refused?.reason == "sales_only")
        let noTerm = await Self.refusal {
            _ = try await subscriptions.add(workspace: "ws", .addon("priority-support", term: "prepaid_12", salesApproved: true), by: "t", now: start)
        }
        #expect(noTerm?.reason == "no_prepaid_term")
        let bought = try await subscriptions.add(
            workspace: "ws", .addon("macos-m4", term: "prepaid_12", salesApproved: true), by: "sales", now: start)
        #expect(bought.endsAt == "2027-11-10T00:00:00Z" && bought.statusText == "active (ends 2027-11-10)")
        let cancelled = try await subscriptions.cancel(workspace: "ws", .id(bought.id), now: Self.at("2026-12-05T00:00:00Z"))
        #expect(cancelled.first?.endsAt == "2027-11-10T00:00:00Z" && cancelled.first?.status == .cancelled)
        #expect(try await subscriptions.expire(now: Self.at("2027-11-09T23:59:59Z")) == 0)
        #expect(try await Self.projection(store, "ws").addons == ["macos-m4"])
        #expect(try await subscriptions.expire(now: Self.at("2027-11-10T00:00:00Z")) == 1)
        #expect(try await Self.projection(store, "ws").addons == [])
    }

    @Test("extra slots add up per arch; cancelled ones count to the end of the month", arguments: DriverKind.allCases)
    func slots(_ kind: DriverKind) async throws {
        let h = try await BillingHarness(kind)
        let store = try await Self.workspace(h, "ws")
        let subscriptions = h.billing.subscriptionStore
        let now = Self.at("2026-11-03T00:00:00Z")
        _ = try await subscriptions.add(workspace: "ws", .slots("x64", count: 10), by: "t", now: now)
        #expect(try await Self.projection(store, "ws").x64 == 10)
        _ = try await subscriptions.add(workspace: "ws", .slots("x64", count: 5), by: "t", now: now + 1)
        let macos = try await subscriptions.add(workspace: "ws", .slots("macos", count: 2), by: "t", now: now + 2)
        let bought = try await Self.projection(store, "ws")
        #expect(bought.x64 == 15 && bought.macos == 2)
        let refusals: [(SubscriptionOrder, String)] = [(.slots("arm", count: 1), "unknown_arch"), (.slots("x64", count: 0), "invalid_count")]
        for (order, reason) in refusals {
            #expect(await Self.refusal { _ = try await subscriptions.add(workspace: "ws", order, by: "t", now: now) }?.reason == reason)
        }
        var prepaid = SubscriptionOrder.slots("x64", count: 1)
        prepaid.term = "prepaid_12"
        #expect(await Self.refusal { _ = try await subscriptions.add(workspace: "ws", prepaid, by: "t", now: now) }?.reason == "no_prepaid_term")

        let cancelled = try await subscriptions.cancel(workspace: "ws", .slots(arch: "x64"), now: Self.at("2026-11-20T00:00:00Z"))
        #expect(cancelled.count == 2 && cancelled.allSatisfy { $0.endsAt == "2026-12-01T00:00:00Z" })
        #expect(try await Self.projection(store, "ws").x64 == 15)
        #expect(try await subscriptions.expire(now: Self.at("2026-12-01T00:00:00Z")) == 1)
        let swept = try await Self.projection(store, "ws")
        #expect(swept.x64 == 0 && swept.macos == 2)
        #expect(
            try await subscriptions.list(workspace: "ws", now: Self.at("2026-12-01T00:00:00Z")).filter { $0.status == .active }.map(\.id) == [
                macos.id
            ])
    }

    @Test("invoices bill a mid-month add-on by days and a prepaid year once, up front", arguments: DriverKind.allCases)
    func invoiced(_ kind: DriverKind) async throws {
        let h = try await BillingHarness(kind)
        _ = try await Self.workspace(h, "ws-a")
        _ = try await Self.workspace(h, "ws-b")
        _ = try await h.billing.subscriptionStore.add(
            workspace: "ws-a", .addon("priority-queue-boost"), by: "t", now: Self.at("2026-11-16T09:00:00Z"))
        _ = try await h.billing.subscriptionStore.add(
            workspace: "ws-b", .addon("macos-m4", term: "prepaid_12", salesApproved: true), by: "t", now: Self.at("2026-11-10T00:00:00Z"))
        func addonLines(_ workspace: String, _ period: String) async throws -> [Int64] {
            let invoice = try await h.invoices.preview(workspace: workspace, period: try BillingPeriod(period), policies: h.host.policies)
            return invoice.lines.filter { $0.kind == .addon }.map(\.amountMicros)
        }
        #expect(try await addonLines("ws-a", "2026-11") == [2_450_000_000])
        #expect(try await addonLines("ws-a", "2026-12") == [4_900_000_000])
        #expect(try await addonLines("ws-b", "2026-11") == [39_900_000_000])
        #expect(try await addonLines("ws-b", "2026-12") == [])
    }

    @Test("tenki workspaces addons and slots buy, list and cancel; set no longer takes add-ons", arguments: DriverKind.allCases)
    func commandLine(_ kind: DriverKind) async throws {
        let h = try await BillingHarness(kind)
        let store = try await Self.workspace(h, "ws")
        let storage = ["--data-dir", h.test.directory, "--database-url", h.test.url]
        let add = try TenkiProcess.run(
            ["workspaces", "addons", "add", "--workspace", "ws", "--addon", "macos-m4", "--by", "ops", "--json"] + storage)
        #expect(add.status == 0, "\(add.error)")
        let object = try #require(try JSONSerialization.jsonObject(with: Data(add.output.utf8)) as? [String: Any])
        #expect(object["addon"] as? String == "macos-m4" && object["status"] as? String == "active" && object["created_by"] as? String == "ops")
        #expect(try await Self.projection(store, "ws").addons == ["macos-m4"])
        let again = try TenkiProcess.run(["workspaces", "addons", "add", "--workspace", "ws", "--addon", "macos-m4"] + storage)
        #expect(again.status == 65 && again.error.contains("already has macos-m4"), "\(again.status) \(again.error)")
        let prepaid = try TenkiProcess.run(
            ["workspaces", "addons", "add", "--workspace", "ws", "--addon", "priority-queue-boost", "--term", "prepaid_12"] + storage)
        #expect(prepaid.status == 65 && prepaid.error.contains("sales_only"), "\(prepaid.error)")

        let slots = try TenkiProcess.run(["workspaces", "slots", "add", "--workspace", "ws", "--arch", "x64", "--count", "10"] + storage)
        #expect(slots.status == 0 && slots.output.contains("10 x64 slots"), "\(slots.error)")
        #expect(try await Self.projection(store, "ws").x64 == 10)
        let cancel = try TenkiProcess.run(["workspaces", "addons", "cancel", "--workspace", "ws", "--addon", "macos-m4"] + storage)
        #expect(cancel.status == 0 && cancel.output.contains("cancelled (ends "), "\(cancel.error)")
        let cancelSlots = try TenkiProcess.run(["workspaces", "slots", "cancel", "--workspace", "ws", "--arch", "x64", "--json"] + storage)
        #expect(cancelSlots.status == 0 && cancelSlots.output.contains("\"status\" : \"cancelled\""), "\(cancelSlots.error)")
        let list = try TenkiProcess.run(["workspaces", "addons", "list", "--workspace", "ws", "--json"] + storage)
        let listed = try JSONSerialization.jsonObject(with: Data(list.output.utf8)) as? [[String: Any]]
        #expect(listed?.count == 2 && listed?.allSatisfy { $0["status"] as? String == "cancelled" } == true)
        // Still active until the month ends.
        let projected = try await Self.projection(store, "ws")
        #expect(projected.addons == ["macos-m4"] && projected.x64 == 10)

        let neither = try TenkiProcess.run(["workspaces", "addons", "cancel", "--workspace", "ws"] + storage)
        #expect(neither.status == 64)
        let old = try TenkiProcess.run(["workspaces", "set", "ws", "--addons", "macos-m4"] + storage)
        #expect(old.status == 64, "\(old.output)")
        let set = try TenkiProcess.run(["workspaces", "set", "ws", "--suspended", "true"] + storage)
        #expect(set.status == 0, "\(set.error)")
        #expect(try await store.workspace("ws")?.suspended == true)
    }

    @Test("the subscription routes buy, list and cancel, and answer refusals in the one error shape", arguments: DriverKind.allCases)
    func routes(_ kind: DriverKind) async throws {
        let h = try await BillingHarness(kind)
        _ = try await Self.workspace(h, "ws")
        _ = try await Self.workspace(h, "poor", paymentMethod: false)
        let store = try h.host.require(RunnerPlugin.self).store
        try await TestHosts.routes(h.host) { client in
            func post(_ uri: String, _ body: String, _ check: @escaping @Sendable (TestResponse) async throws -> Void) async throws {
                try await client.execute(
                    uri: uri, method: .post, headers: [.contentType: "application/json"], body: ByteBuffer(string: body), testCallback: check)
            }
            let base = "/billing/workspaces/ws/subscriptions"
            let id = Mutex<String>("")
            try await post(base, #"{"item":"addon","addon":"macos-m4","term":"monthly"}"#) { response in
                #expect(response.status == .created, "\(RouteAnswers.text(response))")
                let object = RouteAnswers.json(response) as? [String: Any]
                #expect(object?["status"] as? String == "active" && object?["created_by"] as? String == "http")
                id.withLock { $0 = object?["id"] as? String ?? "" }
            }
            #expect(try await store.workspace("ws")?.addons == ["macos-m4"])
            try await post(base, #"{"item":"slots","arch":"x64","count":10}"#) { response in
                #expect(response.status == .created, "\(RouteAnswers.text(response))")
            }
            #expect(try await store.workspace("ws")?.extraSlotsX64 == 10)
            try await post(base, #"{"item":"addon","addon":"macos-m4"}"#) { RouteAnswers.expectError($0, .unprocessableContent, "already_active") }
            try await post("/billing/workspaces/poor/subscriptions", #"{"item":"slots","arch":"x64","count":1}"#) {
                RouteAnswers.expectError($0, .unprocessableContent, "payment_method_required")
            }
            try await post(base, #"{"addon":"macos-m4"}"#) { RouteAnswers.expectError($0, .badRequest, "bad_request") }
            try await post("/billing/workspaces/nobody/subscriptions", #"{"item":"addon","addon":"macos-m4"}"#) {
                RouteAnswers.expectError($0, .notFound, "not_found")
            }
            try await client.execute(uri: base, method: .get) { response in
                #expect(response.status == .ok)
                #expect((RouteAnswers.json(response) as? [[String: Any]])?.compactMap { $0["item"] as? String } == ["addon", "slots"])
            }
            let subscription = id.withLock { $0 }
            try await post("\(base)/\(subscription)/cancel", "") { response in
                #expect(response.status == .ok, "\(RouteAnswers.text(response))")
                let object = RouteAnswers.json(response) as? [String: Any]
                #expect(object?["status"] as? String == "cancelled" && object?["ends_at"] != nil)
            }
            try await post("\(base)/sub_nope/cancel", "") { RouteAnswers.expectError($0, .notFound, "not_found") }
        }
    }
}
