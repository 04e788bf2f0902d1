import Foundation
import Host
import Logging
import RunnerPlugin
import SQL
import ServiceLifecycle

/// One add-on or block of extra slots a workspace bought (`billing_subscriptions`), with its
/// state at the moment it was read: `active`, `cancelled` (still active until `ends_at`) or `ended`.
package struct Subscription: Sendable, Codable, Equatable {
    package enum Status: String, Sendable, Codable { case active, cancelled, ended }

    package let id: String
    package let workspaceID: String
    /// `addon` or `slots`.
    package let item: String
    package let addon: String?
    package let arch: String?
    package let count: Int64
    /// `monthly` or `prepaid_12`.
    package let term: String
    package let startedAt: String
    package let cancelledAt: String?
    package let endsAt: String?
    package let createdBy: String
    package let status: Status

    enum CodingKeys: String, CodingKey {
        case id, workspaceID = "workspace_id", item, addon, arch, count, term, startedAt = "started_at", cancelledAt = "cancelled_at"
        case endsAt = "ends_at", createdBy = "created_by", status
    }

    /// `active`, `cancelled (ends 2026-12-01)` or `ended 2026-12-01`.
    package var statusText: String {
        let day = endsAt.map { String($0.prefix(10)) } ?? "?"
        switch status {
        case .active: return endsAt == nil ? "active" : "active (ends \(day))"
        case .cancelled: return "cancelled (ends \(day))"
        case .ended: return "ended \(day)"
        }
    }
}

/// What a workspace buys: an add-on (`item` `addon`, `addon` its id) or extra slots (`item`
/// `slots`, `arch` and `count`), on a `monthly` or `prepaid_12` term.
package struct SubscriptionOrder: Sendable, Equatable {
    package var item: String
    package var addon: String?
    package var arch: String?
    package var count: Int64
    package var term: String
    package var salesApproved: Bool

    package init(item: String, addon: String? = nil, arch: String? = nil, count: Int64 = 1, term: String = "monthly", salesApproved: Bool = false) {
        self.item = item
        self.addon = addon
        self.arch = arch
        self.count = count
        self.term = term
        self.salesApproved = salesApproved
    }

    package static func addon(_ id: String, term: String = "monthly", salesApproved: Bool = false) -> SubscriptionOrder {
        SubscriptionOrder(item: "addon", addon: id, term: term, salesApproved: salesApproved)
    }

    package static func slots(_ arch: String, count: Int64) -> SubscriptionOrder { SubscriptionOrder(item: "slots", arch: arch, count: count) }
}

/// Which subscriptions a cancellation names: one by id, a workspace's add-on, or all its extra
/// slots of one architecture.
package enum SubscriptionTarget: Sendable, Equatable, CustomStringConvertible {
    case id(String)
    case addon(String)
    case slots(arch: String)

    package var description: String {
        switch self {
        case .id(let id): return "'\(id)'"
        case .addon(let addon): return "to add-on \(addon)"
        case .slots(let arch): return "to \(arch) slots"
        }
    }
}

/// The one writer of `billing_subscriptions`. What is active is projected into the runner's
/// workspace row (`addons`, `extra_slots_x64`, `extra_slots_macos`) through `RunnerStore` in the
/// same transaction, under the workspace row's lock, so admission reads what is active at the
/// moment it decides and two replicas never write a projection from a stale read.
///
/// A monthly subscription runs until cancelled; a cancellation keeps it active (and billed) to
/// the end of the UTC month it was cancelled in. A prepaid 12-month term ends 12 calendar months
/// after its start, cancelled or not (it does not renew, and a cancellation refunds nothing).
/// Ended subscriptions leave the projection when `expire(now:)` next runs.
package struct SubscriptionStore: Sendable {
    package let database: any Database
    let policies: PolicyEngine

    package init(database: any Database, policies: PolicyEngine) {
        self.database = database
        self.policies = policies
    }

    /// Buys `order` for the workspace (id or slug) as of `now` (Unix seconds). Refused with
    /// `rejected` and the policy's reason (`payment_method_required`, `sales_only`, …), or
    /// `already_active` for an add-on the workspace has (cancelled but not ended included).
    package func add(workspace name: String, _ order: SubscriptionOrder, by: String, now: Int64) async throws -> Subscription {
        try SubscriptionStore.validate(order)
        guard !by.isEmpty, by.count <= BillingLimits.subscriptionFieldMaxCharacters else {
            throw HostError(.badRequest, "who asked (by) is 1 to \(BillingLimits.subscriptionFieldMaxCharacters) characters")
        }
        let policies = self.policies
        return try await database.transaction { db in
            let (workspace, hasPaymentMethod) = try SubscriptionStore.lockWorkspace(db, name)
            let request = EligibilityRequest(
                item: order.item, id: order.addon, term: order.term, arch: order.arch, count: order.count, salesApproved: order.salesApproved,
                workspace: .init(hasPaymentMethod: hasPaymentMethod))
            let eligibility = try policies.eligibility(request)
            guard eligibility.eligible else {
                let reason = eligibility.reason ?? "not_eligible"
                throw HostError(.rejected, "\(workspace) may not buy \(order.addon ?? order.arch ?? order.item): \(reason)", reason: reason)
            }
            if let addon = order.addon, let active = try SubscriptionStore.notEnded(db, workspace, item: "addon", "addon", addon, now: now).first {
                throw HostError(.rejected, "\(workspace) already has \(addon) (\(active))", reason: "already_active")
            }
            let id = "sub_" + UUID().uuidString.lowercased().replacingOccurrences(of: "-", with: "").prefix(20)
            // A prepaid term's end is known at purchase: 12 calendar months after it starts.
            let ends: Int64? = order.term == "prepaid_12" ? SubscriptionStore.addingMonths(12, to: now) : nil
            _ = try db.execute(
                """
                INSERT INTO billing_subscriptions (id, workspace_id, item, addon, arch, count, term, started_at, ends_at, created_by, created_at)
                VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)
                """,
                [
                    .text(id), .text(workspace), .text(order.item), SQLValue(order.addon), SQLValue(order.arch), .integer(order.count),
                    .text(order.term), .integer(now), ends.map(SQLValue.integer) ?? .null, .text(by), .integer(now * 1000),
                ])
            try SubscriptionStore.project(db, workspace: workspace, now: now)
            return try SubscriptionStore.subscription(db, id: id, now: now)!
        }
    }

    /// What the store refuses before asking the policy: a shape the tables cannot hold.
    static func validate(_ order: SubscriptionOrder) throws {
        switch order.item {
        case "addon":
            guard order.addon?.isEmpty == false, order.arch == nil, order.count == 1 else {
                throw HostError(.badRequest, "an add-on order names the add-on (--addon ID), and no arch or count")
            }
        case "slots":
            guard order.arch?.isEmpty == false, order.addon == nil else {
                throw HostError(.badRequest, "a slots order names the arch (x64 or macos)")
            }
            guard order.count <= BillingLimits.subscriptionMaxSlotCount else {
                throw HostError(.badRequest, "at most \(BillingLimits.subscriptionMaxSlotCount) slots per order")
            }
            // Extra slots are billed monthly only (`billing.lua` has no prepaid slot price).
            guard order.term == "monthly" else { throw HostError(.rejected, "extra slots are monthly only", reason: "no_prepaid_term") }
        default:
            throw HostError(.badRequest, "item must be addon or slots, not '\(order.item)'")
        }
        guard order.term.count <= BillingLimits.subscriptionFieldMaxCharacters,
            (order.addon ?? order.arch ?? "").count <= BillingLimits.subscriptionFieldMaxCharacters
        else { throw HostError(.badRequest, "add-on, arch and term are at most \(BillingLimits.subscriptionFieldMaxCharacters) characters") }
    }

    /// Cancels what `target` names in the workspace as of `now`: each one not cancelled yet gets
    /// `cancelled_at`, and a monthly one `ends_at` = the next UTC 1st (a prepaid term keeps its
    /// end). Cancelling again changes nothing. Returns the named subscriptions as they now are.
    package func cancel(workspace name: String, _ target: SubscriptionTarget, now: Int64) async throws -> [Subscription] {
        try await database.transaction { db in
            let (workspace, _) = try SubscriptionStore.lockWorkspace(db, name)
            let ids = try SubscriptionStore.ids(db, workspace: workspace, target, now: now)
            let endOfCycle = BillingPeriod(containing: now).end
            for id in ids {
                _ = try db.execute(
                    """
                    UPDATE billing_subscriptions SET cancelled_at = $2, ends_at = CASE WHEN term = 'prepaid_12' THEN ends_at ELSE $3 END
                    WHERE id = $1 AND cancelled_at IS NULL AND (ends_at IS NULL OR ends_at > $2)
                    """, [.text(id), .integer(now), .integer(endOfCycle)])
            }
            try SubscriptionStore.project(db, workspace: workspace, now: now)
            return try ids.compactMap { try SubscriptionStore.subscription(db, id: $0, now: now) }
        }
    }

    /// The subscriptions `target` names; none is `not_found`. An add-on or arch names the ones
    /// not ended (so a cancelled one is named again, and changes nothing).
    static func ids(_ db: any SQLConnection, workspace: String, _ target: SubscriptionTarget, now: Int64) throws -> [String] {
        let ids: [String]
        switch target {
        case .id(let id):
            ids = try db.query("SELECT id FROM billing_subscriptions WHERE workspace_id = $1 AND id = $2", [.text(workspace), .text(id)]).map {
                try $0.string("id")
            }
        case .addon(let addon): ids = try notEnded(db, workspace, item: "addon", "addon", addon, now: now)
        case .slots(let arch): ids = try notEnded(db, workspace, item: "slots", "arch", arch, now: now)
        }
        guard !ids.isEmpty else { throw HostError(.notFound, "no subscription \(target) in workspace \(workspace)") }
        return ids
    }

    /// The ids of the workspace's `item` subscriptions whose `column` (`addon` or `arch`) is
    /// `value` and that have not ended at `now`, oldest first.
    static func notEnded(_ db: any SQLConnection, _ workspace: String, item: String, _ column: String, _ value: String, now: Int64) throws -> [String]
    {
        precondition(column == "addon" || column == "arch")
        return try db.query(
            """
            SELECT id FROM billing_subscriptions WHERE workspace_id = $1 AND item = $2 AND \(column) = $3 AND (ends_at IS NULL OR ends_at > $4)
            ORDER BY started_at, id
            """, [.text(workspace), .text(item), .text(value), .integer(now)]
        ).map { try $0.string("id") }
    }

    /// The workspace's subscriptions, oldest first, with their status at `now`.
    package func list(workspace name: String, now: Int64) async throws -> [Subscription] {
        try await database.read { db in
            let workspace = try SubscriptionStore.workspaceID(db, name)
            return try db.query(
                "SELECT * FROM billing_subscriptions WHERE workspace_id = $1 ORDER BY started_at, id LIMIT $2",
                [.text(workspace), .integer(Int64(HostLimits.listMaxRows))]
            ).map { try SubscriptionStore.subscription(from: $0, now: now) }
        }
    }

    /// Recomputes the projection of each workspace with a subscription that ended by `now`
    /// (after `endedAfter`, when given); returns how many projections changed. Idempotent: a
    /// projection already right is not written, so replicas may sweep at once.
    @discardableResult
    package func expire(now: Int64, endedAfter: Int64? = nil) async throws -> Int {
        var changed = 0
        var last = ""
        while true {
            let batch = try await database.query(
                """
                SELECT DISTINCT workspace_id FROM billing_subscriptions WHERE ends_at IS NOT NULL AND ends_at <= $1 AND ends_at > $2
                    AND workspace_id > $3 ORDER BY workspace_id LIMIT $4
                """, [.integer(now), .integer(endedAfter ?? Int64.min), .text(last), .integer(Int64(BillingLimits.subscriptionSweepBatchWorkspaces))]
            ).map { try $0.string("workspace_id") }
            for workspace in batch {
                let wrote = try await database.transaction { db in
                    _ = try SubscriptionStore.lockWorkspace(db, workspace)
                    return try SubscriptionStore.project(db, workspace: workspace, now: now)
                }
                if wrote { changed += 1 }
            }
            guard batch.count == BillingLimits.subscriptionSweepBatchWorkspaces, let next = batch.last else { return changed }
            last = next
        }
    }
}

extension SubscriptionStore {
    /// Unix seconds now: what the commands and routes pass as `now`.
    static func nowSeconds() -> Int64 { Int64(Date().timeIntervalSince1970) }

    /// The workspace's id and whether it has a payment method, its row locked on PostgreSQL
    /// (SQLite's single writer already serialises the transaction).
    static func lockWorkspace(_ db: any SQLConnection, _ name: String) throws -> (String, Bool) {
        let lock = db.dialect == .postgres ? " FOR UPDATE" : ""
        guard
            let row = try db.queryOne(
                "SELECT id, has_payment_method FROM runner_workspaces WHERE id = $1 OR slug = $1 ORDER BY id LIMIT 1\(lock)", [.text(name)])
        else { throw HostError(.notFound, "no workspace '\(name)'") }
        return (try row.string("id"), try row.bool("has_payment_method"))
    }

    static func workspaceID(_ db: any SQLConnection, _ name: String) throws -> String {
        guard let row = try db.queryOne("SELECT id FROM runner_workspaces WHERE id = $1 OR slug = $1 ORDER BY id LIMIT 1", [.text(name)]) else {
            throw HostError(.notFound, "no workspace '\(name)'")
        }
        return try row.string("id")
    }

    /// Writes what is active at `now` into the runner's workspace row, if it differs from what is
    /// there (jobs go back to admission only on a change); true when it wrote.
    @discardableResult
    static func project(_ db: any SQLConnection, workspace: String, now: Int64) throws -> Bool {
        let active = try db.query(
            """
            SELECT item, addon, arch, count FROM billing_subscriptions
            WHERE workspace_id = $1 AND started_at <= $2 AND (ends_at IS NULL OR ends_at > $2)
            """, [.text(workspace), .integer(now)])
        var addons = Set<String>()
        var x64: Int64 = 0
        var macos: Int64 = 0
        for row in active {
            if try row.string("item") == "addon" {
                addons.insert(try row.string("addon"))
            } else if try row.optionalString("arch") == "x64" {
                x64 += try row.int("count")
            } else if try row.optionalString("arch") == "macos" {
                macos += try row.int("count")
            }
        }
        let current = try db.queryOne("SELECT addons, extra_slots_x64, extra_slots_macos FROM runner_workspaces WHERE id = $1", [.text(workspace)])!
        let currentAddons = (try? JSONDecoder().decode([String].self, from: Data(try current.string("addons").utf8))) ?? []
        if Set(currentAddons) == addons, try current.int("extra_slots_x64") == x64, try current.int("extra_slots_macos") == macos { return false }
        _ = try RunnerStore.update(db, workspace: workspace, .init(addons: addons.sorted(), extraSlotsX64: x64, extraSlotsMacOS: macos))
        return true
    }

    static func subscription(_ db: any SQLConnection, id: String, now: Int64) throws -> Subscription? {
        try db.queryOne("SELECT * FROM billing_subscriptions WHERE id = $1", [.text(id)]).map { try subscription(from: $0, now: now) }
    }

    static func subscription(from row: SQLRow, now: Int64) throws -> Subscription {
        let cancelled = try row.optionalInt("cancelled_at")
        let ends = try row.optionalInt("ends_at")
        let status: Subscription.Status = ends.map { $0 <= now } == true ? .ended : cancelled != nil ? .cancelled : .active
        return Subscription(
            id: try row.string("id"), workspaceID: try row.string("workspace_id"), item: try row.string("item"),
            addon: try row.optionalString("addon"),
            arch: try row.optionalString("arch"), count: try row.int("count"), term: try row.string("term"),
            startedAt: BillingPeriod.iso(try row.int("started_at")), cancelledAt: cancelled.map(BillingPeriod.iso),
            endsAt: ends.map(BillingPeriod.iso),
            createdBy: try row.string("created_by"), status: status)
    }

    /// Unix seconds `months` calendar months after `seconds` in UTC (the 31st becomes the last
    /// day of a shorter month).
    static func addingMonths(_ months: Int, to seconds: Int64) -> Int64 {
        let date = BillingPeriod.calendar.date(byAdding: .month, value: months, to: Date(timeIntervalSince1970: TimeInterval(seconds)))!
        return Int64(date.timeIntervalSince1970)
    }
}

extension BillingLimits {
    /// How often each replica sweeps ended subscriptions out of the projection.
    package static let subscriptionSweepIntervalSeconds: UInt64 = 60
    /// Workspaces recomputed per sweep query (a sweep pages through all of them).
    static let subscriptionSweepBatchWorkspaces = 200
    /// After its first full sweep a replica looks back this far before its previous sweep, so a
    /// slow or failed round misses nothing.
    static let subscriptionSweepOverlapSeconds: Int64 = 3600
    /// Most extra slots one order buys.
    package static let subscriptionMaxSlotCount: Int64 = 10_000
    /// Longest add-on id, arch, term or `by` taken.
    static let subscriptionFieldMaxCharacters = 64
}

/// Sweeps ended subscriptions out of the runner's projection every minute until graceful
/// shutdown: the first round looks at every ended subscription (what ended while no replica
/// ran), later ones at what ended since the previous round.
struct SubscriptionSweeper: Service {
    let store: SubscriptionStore
    let logger: Logger

    func run() async throws {
        await cancelWhenGracefulShutdown {
            var endedAfter: Int64? = nil
            while !Task.isCancelled {
                let now = SubscriptionStore.nowSeconds()
                do {
                    let changed = try await store.expire(now: now, endedAfter: endedAfter)
                    if changed > 0 { logger.info("ended subscriptions swept", metadata: ["workspaces": .stringConvertible(changed)]) }
                    endedAfter = now - BillingLimits.subscriptionSweepOverlapSeconds
                } catch {
                    logger.error("subscription sweep failed", metadata: ["error": .string("\(error)")])
                }
                try? await Task.sleep(nanoseconds: BillingLimits.subscriptionSweepIntervalSeconds * 1_000_000_000)
            }
        }
    }
}
