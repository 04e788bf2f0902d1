import Foundation
import Host
import LedgerPlugin
import SQL

/// The data `tenki billing bench` bills: workspaces with a saved card, usage records spread over
/// the SKUs and the days of the period (each reusing the decision record of one of a handful of
/// jobs priced once by the real `pricing.lua`, so invoices parse real records), the usage's
/// ledger transfers, and storage snapshots and subscriptions for a fraction of the workspaces.
/// Written in large multi-row transactions, straight into the tables (it is a fixture, not a
/// path under test).
struct BillingBenchSeed {
    let database: any Database
    let ledger: LedgerStore
    let policies: PolicyEngine
    let workspaces: Int
    let usage: Int
    let period: BillingPeriod

    /// Rows of one multi-row INSERT (11 parameters each: far below either database's limit).
    static let rowsPerInsert = 500
    /// Rows of one seeding transaction.
    static let rowsPerTransaction = 20_000
    /// Every `storageEvery`-th workspace reports storage daily; every `subscriptionEvery`-th has an add-on and extra slots.
    static let storageEvery = 10
    static let subscriptionEvery = 20

    /// One priced job whose decision record the usage records reuse.
    struct PricedJob {
        let sku: String?
        let billableMinutes: Int64
        let amountMicros: Int64
        let policyVersion: String
        let decision: String
    }

    static func workspaceID(_ w: Int) -> String { "bench-ws-" + Timestamp.padded(Int64(w), 6) }

    /// The representative jobs (labels, minutes). The first is large enough (over the monthly
    /// free credit on its own) that every workspace has something to pay.
    static let jobs: [(label: String, minutes: Int64)] = [
        ("tenki-macos-m4-6c", 300), ("tenki-standard-2c-4gb", 12), ("tenki-standard-4c-8gb", 25), ("tenki-premium-2c-4gb", 8),
        ("tenki-standard-8c-16gb", 40), ("tenki-macos-m4-12c", 18), ("tenki-standard-16c-32gb", 9), ("tenki-standard-2c-4gb", 3),
    ]

    func pricedJobs() throws -> [PricedJob] {
        let completed = period.start + 86_400
        return try BillingBenchSeed.jobs.map { job in
            let input = JobPriceInput(
                labels: [job.label], startedAt: BillingPeriod.iso(completed - job.minutes * 60), completedAt: BillingPeriod.iso(completed),
                workspace: .init(freeMinutesRemaining: 0, hasPaymentMethod: true, contract: nil))
            let decision = try policies.priceJob(input)
            guard decision.price.matched, decision.price.amountMicros > 0 else { throw HostError(.internal, "\(job.label) did not price") }
            return PricedJob(
                sku: decision.price.sku, billableMinutes: decision.price.billableMinutes, amountMicros: decision.price.amountMicros,
                policyVersion: decision.price.policyVersion, decision: String(decoding: try JSONEncoder().encode(decision.record), as: UTF8.self))
        }
    }

    /// Seeds everything; returns the usage records' total (micro-cents).
    func run() async throws -> Int64 {
        try await seedWorkspaces()
        let jobs = try pricedJobs()
        var total: Int64 = 0
        var first = 0
        while first < usage {
            let last = min(usage, first + BillingBenchSeed.rowsPerTransaction)
            total += try await seedUsage(first..<last, jobs: jobs)
            first = last
        }
        try await seedMonthlyItems()
        return total
    }

    /// Workspaces (with a saved card) and their ledger accounts.
    func seedWorkspaces() async throws {
        let now = UInt64(Date().timeIntervalSince1970 * 1_000_000_000)
        for chunk in BillingBenchSeed.chunks(0..<workspaces, BillingBenchSeed.rowsPerTransaction) {
            try await database.transaction { db in
                for rows in BillingBenchSeed.chunks(chunk, BillingBenchSeed.rowsPerInsert) {
                    let ids = rows.map(BillingBenchSeed.workspaceID)
                    _ = try db.execute(
                        "INSERT INTO runner_workspaces (id, slug, has_payment_method, credited, created_at) VALUES "
                            + BillingBenchSeed.placeholders(rows: ids.count, columns: 2, constants: "1, 1, 0"),
                        ids.flatMap { [SQLValue.text($0), .text($0 + "-slug")] })
                    _ = try db.execute(
                        "INSERT INTO billing_customers (workspace_id, provider_customer_id, payment_method_id, updated_at) VALUES "
                            + BillingBenchSeed.placeholders(rows: ids.count, columns: 2, constants: "'pm_bench', 0"),
                        ids.flatMap { [SQLValue.text($0), .text("cus_" + $0)] })
                }
            }
        }
        let perBatch = LedgerLimits.maxBatchEvents / ChartOfAccounts.workspaceAccounts("x").count
        for chunk in BillingBenchSeed.chunks(0..<workspaces, perBatch) {
            let accounts = chunk.flatMap { ChartOfAccounts.workspaceAccounts(BillingBenchSeed.workspaceID($0)) }
            let results = try await ledger.createAccounts(accounts, now: now)
            guard results.allSatisfy({ $0 == .ok || $0 == .exists }) else { throw HostError(.internal, "bench accounts refused") }
        }
    }

    /// Usage records `indices` (record i belongs to workspace i mod workspaces, completes on day
    /// i mod the period's days) in one transaction, then their ledger transfers (2001, USER →
    /// REVENUE, as the runner posts them); returns their total.
    func seedUsage(_ indices: Range<Int>, jobs: [PricedJob]) async throws -> Int64 {
        let days = Int((period.end - period.start) / 86_400)
        let workspaces = self.workspaces
        let start = period.start
        func job(_ i: Int) -> PricedJob { jobs[i < workspaces ? 0 : 1 + i % (jobs.count - 1)] }
        try await database.transaction { db in
            for rows in BillingBenchSeed.chunks(indices, BillingBenchSeed.rowsPerInsert) {
                var values: [SQLValue] = []
                values.reserveCapacity(rows.count * 8)
                for i in rows {
                    let j = job(i)
                    let completed = start + Int64(i % days) * 86_400 + Int64(i % 86_000)
                    values += [
                        .text("\(i)/\(i)/1"), .text(BillingBenchSeed.workspaceID(i % workspaces)), SQLValue(j.sku), .integer(j.billableMinutes),
                        .integer(j.amountMicros), .text(j.policyVersion), .text(j.decision), .integer(completed),
                    ]
                }
                _ = try db.execute(
                    """
                    INSERT INTO runner_usage (usage_key, workspace_id, sku, billable_minutes, amount_micros, policy_version, decision,
                        completed_at, free_minutes_consumed, posted, created_at) VALUES
                    """ + BillingBenchSeed.placeholders(rows: rows.count, columns: 8, constants: "0, 1, 0"), values)
            }
        }
        let transfers = indices.map { i in
            Transfer(
                id: ChartOfAccounts.derivedID("bench-usage:\(i)"),
                debitAccountID: ChartOfAccounts.userMoneyAccountID(workspace: BillingBenchSeed.workspaceID(i % workspaces)),
                creditAccountID: ChartOfAccounts.operatorAccountID(.revenue), amount: UInt64(job(i).amountMicros),
                ledger: ChartOfAccounts.moneyLedger, code: ChartOfAccounts.TransferCode.runnerCharge.rawValue)
        }
        let now = UInt64(Date().timeIntervalSince1970 * 1_000_000_000)
        for batch in BillingBenchSeed.chunks(transfers.indices, LedgerLimits.maxBatchEvents) {
            let results = try await ledger.createTransfers(Array(transfers[batch]), now: now)
            guard results.allSatisfy({ $0 == .ok }) else { throw HostError(.internal, "bench usage transfers refused") }
        }
        return indices.reduce(Int64(0)) { $0 + job($1).amountMicros }
    }

    /// Daily storage for every `storageEvery`-th workspace; an add-on and two extra x64 slots
    /// for every `subscriptionEvery`-th, from before the period.
    func seedMonthlyItems() async throws {
        let period = self.period
        let days = Int((period.end - period.start) / 86_400)
        let storing = Array(stride(from: 0, to: workspaces, by: BillingBenchSeed.storageEvery))
        let subscribing = Array(stride(from: 0, to: workspaces, by: BillingBenchSeed.subscriptionEvery))
        try await database.transaction { db in
            for rows in BillingBenchSeed.chunks(storing.indices, BillingBenchSeed.rowsPerInsert / days) {
                var values: [SQLValue] = []
                for w in storing[rows] {
                    for d in 0..<days {
                        values += [
                            .text(BillingBenchSeed.workspaceID(w)), .text(BillingPeriod.day(period.start + Int64(d) * 86_400)),
                            .integer(Int64(1 + w % 50) << 30),
                        ]
                    }
                }
                _ = try db.execute(
                    "INSERT INTO billing_storage_snapshots (workspace_id, day, billable_bytes, cache_bytes, recorded_at) VALUES "
                        + BillingBenchSeed.placeholders(rows: rows.count * days, columns: 3, constants: "0, 0"), values)
            }
            for rows in BillingBenchSeed.chunks(subscribing.indices, BillingBenchSeed.rowsPerInsert) {
                var values: [SQLValue] = []
                for w in subscribing[rows] {
                    let id = SQLValue.text(BillingBenchSeed.workspaceID(w))
                    values += [.text("sub-a-\(w)"), id, .text("addon"), .text("priority-queue-boost"), .null, .integer(period.start - 86_400)]
                    values += [.text("sub-s-\(w)"), id, .text("slots"), .null, .text("x64"), .integer(period.start + 86_400 * 10)]
                }
                _ = try db.execute(
                    "INSERT INTO billing_subscriptions (id, workspace_id, item, addon, arch, started_at, count, term, created_by, created_at) VALUES "
                        + BillingBenchSeed.placeholders(rows: rows.count * 2, columns: 6, constants: "2, 'monthly', 'bench', 0"), values)
            }
        }
    }

    /// `($1, $2, c), ($3, $4, c), ...` for `rows` rows of `columns` parameters and the same constants.
    static func placeholders(rows: Int, columns: Int, constants: String) -> String {
        (0..<rows).map { r in "(" + (1...columns).map { "$\(r * columns + $0)" }.joined(separator: ", ") + ", " + constants + ")" }
            .joined(separator: ", ")
    }

    static func chunks(_ range: Range<Int>, _ size: Int) -> [Range<Int>] {
        precondition(size > 0)
        return stride(from: range.lowerBound, to: range.upperBound, by: size).map { $0..<min(range.upperBound, $0 + size) }
    }
}

/// A payment provider that answers at once and always succeeds, so a benchmark measures the
/// host, not the network.
struct InstantPaymentProvider: PaymentProvider {
    func createCustomer(workspaceID: String, name: String, idempotencyKey: String) async throws -> String { "cus_\(workspaceID)" }

    func attachPaymentMethod(customerID: String, paymentMethod: String) async throws -> PaymentMethodInfo {
        PaymentMethodInfo(id: paymentMethod, brand: "visa", last4: "4242")
    }

    func charge(_ request: PaymentRequest) async throws -> PaymentOutcome {
        .succeeded(paymentIntentID: "pi_" + request.idempotencyKey, chargeID: "ch_" + request.idempotencyKey)
    }

    func refund(paymentIntentID: String, amountCents: Int64, idempotencyKey: String, metadata: [String: String]) async throws -> String {
        "re_" + idempotencyKey
    }
}
