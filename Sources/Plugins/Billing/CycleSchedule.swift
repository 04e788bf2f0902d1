import Foundation
import Host
import SQL

/// `BillingCycleScheduleWorkflow`: bills every workspace for a period, one `BillingCycleWorkflow`
/// child per workspace (id = workspace + period) with at most `BillingLimits.cycleFanOut`
/// unfinished at once, a page of workspaces per run (it continues as new for the next page, so
/// any number of workspaces keeps each run's history short). A failed child is counted and
/// listed; it does not stop the others.
package struct ScheduleInput: Codable, Sendable, Equatable {
    /// The runbook's filter for one customer group; it selects nothing extra here (accepted, ignored).
    package var luxorOnly: Bool?
    /// Workspace ids or slugs to leave out.
    package var excludeWorkspaces: [String]?
    /// The period to bill (default: the month before the run's scheduled time, or before now).
    package var billingPeriod: String?
    /// Where the previous run stopped (continue-as-new), and what it counted.
    package var after: String?
    package var totals: ScheduleResult?

    enum CodingKeys: String, CodingKey {
        case luxorOnly = "luxor_only", excludeWorkspaces = "exclude_workspaces", billingPeriod = "billing_period", after, totals
    }
}

/// A cycle run another run started, as a schedule run records it: its status and, once it
/// completed, its result.
package struct EarlierCycle: Codable, Sendable, Equatable {
    package let status: String
    package let result: CycleResult?

    init(_ run: WorkflowRunSummary, id: String) {
        status = run.status
        result = run.status == "completed" ? run.output.flatMap { try? WorkflowJSON.decode(CycleResult.self, from: $0, what: id) } : nil
    }
}

package struct ScheduleResult: Codable, Sendable, Equatable {
    package var billingPeriod: String
    package var workspaces: Int
    package var invoices: Int
    package var nothingToBill: Int
    package var paid: Int
    package var paymentFailed: Int
    package var amountDueCents: Int64
    package var failed: [String]
    /// Cycles another run started that had not finished when this one looked.
    package var runningElsewhere: [String]

    enum CodingKeys: String, CodingKey {
        case billingPeriod = "billing_period", workspaces, invoices, nothingToBill = "nothing_to_bill", paid, paymentFailed = "payment_failed"
        case amountDueCents = "amount_due_cents", failed, runningElsewhere = "running_elsewhere"
    }

    init(period: BillingPeriod) {
        billingPeriod = period.description
        workspaces = 0
        invoices = 0
        nothingToBill = 0
        paid = 0
        paymentFailed = 0
        amountDueCents = 0
        failed = []
        runningElsewhere = []
    }

    /// A cycle run that another run started: its result if it completed, else listed as running
    /// elsewhere or failed.
    mutating func addEarlier(_ run: EarlierCycle, id: String) {
        if let result = run.result {
            add(result)
        } else if run.status == "failed" || run.status == "cancelled" {
            failed.append(id)
        } else {
            runningElsewhere.append(id)
        }
    }

    mutating func add(_ result: CycleResult) {
        workspaces += 1
        if result.invoiceID == nil { nothingToBill += 1 } else { invoices += 1 }
        if result.status == Invoice.Status.paid.rawValue { paid += 1 }
        if result.paymentStatus == "failed" || result.paymentStatus == "no_payment_method" { paymentFailed += 1 }
        amountDueCents += result.amountDueCents
    }
}

extension BillingWorkflows {
    /// The cron schedule: 00:00 UTC on the 1st, for the month before.
    package static let scheduleName = "billing-cycle"
    package static let scheduleCron = "0 0 1 * *"

    static func schedule(_ services: BillingServices) -> WorkflowDefinition {
        WorkflowDefinition(type: scheduleType, taskQueue: taskQueue, input: ScheduleInput.self) { ctx, input -> ScheduleResult in
            let period = try await schedulePeriod(ctx, input)
            let excluded = Set(input.excludeWorkspaces ?? [])
            let after = input.after ?? ""
            let page = try await ctx.step("select-workspaces-after:\(after)") {
                try await services.invoices.database.query(
                    "SELECT id, slug FROM runner_workspaces WHERE id > $1 ORDER BY id LIMIT $2",
                    [.text(after), .integer(Int64(BillingLimits.cycleWorkspacesPerRun))]
                ).map { [try $0.string("id"), try $0.string("slug")] }
            }
            var totals = input.totals ?? ScheduleResult(period: period)
            var running: [String] = []
            func collect(_ id: String) async throws {
                do { totals.add(try await ctx.childResult(id, as: CycleResult.self)) } catch let failure as WorkflowChildFailed {
                    totals.failed.append(failure.childID)
                }
            }
            let selected = page.filter { !excluded.contains($0[0]) && !excluded.contains($0[1]) }
            // Cycles another run started (an earlier schedule run, a second replica's, one started
            // by hand) are not started again: their results count, or they are left to finish.
            // One recorded step looks for the whole page (the run's own calls are serial).
            let parent = ctx.workflowID
            let earlier = try await ctx.step("earlier-cycles-after:\(after)") { () -> [String: EarlierCycle] in
                var found: [String: EarlierCycle] = [:]
                for row in selected {
                    let id = cycleID(workspace: row[0], period: period)
                    if let run = try await ctx.client.runSummary(id: id), run.parentID != parent { found[id] = EarlierCycle(run, id: id) }
                }
                return found
            }
            for row in selected {
                let id = cycleID(workspace: row[0], period: period)
                if let cycle = earlier[id] {
                    totals.addEarlier(cycle, id: id)
                    continue
                }
                if running.count >= services.cycleFanOut { try await collect(running.removeFirst()) }
                do {
                    running.append(try await ctx.startChild(cycleType, id: id, input: RunbookPeriodInput(workspaceID: row[0], period: period)))
                } catch is WorkflowChildIDTaken {
                    // Another run started it between the look and the start (a second replica's schedule).
                    let taken = try await ctx.step("taken-cycle:\(row[0])") {
                        try await ctx.client.runSummary(id: id).map { EarlierCycle($0, id: id) }
                    }
                    if let taken { totals.addEarlier(taken, id: id) }
                }
            }
            for id in running { try await collect(id) }
            if page.count == BillingLimits.cycleWorkspacesPerRun, let last = page.last?[0] {
                var next = input
                next.billingPeriod = period.description
                next.after = last
                next.totals = totals
                try await ctx.continueAsNew(next)
            }
            return totals
        }
    }

    /// The period a schedule run bills: as given, else the month before its cron tick (the id's
    /// `@YYYY-MM-DDThh:mmZ`), else the month before now.
    static func schedulePeriod(_ ctx: any WorkflowContext, _ input: ScheduleInput) async throws -> BillingPeriod {
        if let text = input.billingPeriod {
            do { return try BillingPeriod(text) } catch let error as HostError {
                throw WorkflowApplicationError(type: "InvalidInput", error.message, nonRetryable: true)
            }
        }
        if let tick = ctx.workflowID.split(separator: "@").last, ctx.workflowID.contains("@"),
            let seconds = Timestamp.parseUTCSeconds(tick.replacingOccurrences(of: "Z", with: ":00Z"))
        {
            return BillingPeriod(containing: seconds).previous
        }
        return BillingPeriod(containing: Int64(try await ctx.now().timeIntervalSince1970)).previous
    }
}
