import Foundation
import Host
import LedgerPlugin
import SQL

/// Charging finished jobs: the pricing policy's decision stored as the usage record, then free
/// minutes and money posted to the ledger as one linked batch (docs/PRODUCT.md §3, §11).
extension JobScheduler {
    func chargeCompleted(_ round: inout Round) async throws {
        let pending = try await store.database.query(
            """
            SELECT * FROM runner_jobs WHERE status = 'completed' AND charge_status = 'pending' ORDER BY completed_at, job_id
            LIMIT \(RunnerLimits.jobsChargedPerRoundMax)
            """
        ).map(RunnerStore.job(from:))
        for job in pending {
            do {
                if let started = job.startedAt.flatMap(Timestamp.parseUTCSeconds), let completed = job.completedAt.flatMap(Timestamp.parseUTCSeconds)
                {
                    _ = try await screen(job, durationSeconds: max(0, completed - started), &round)
                }
                if try await charge(job) { round.charged += 1 }
            } catch {
                logger.error("charging failed", metadata: ["job": "\(job.key)", "error": "\(error)"])
                round.failures += 1
            }
        }
    }

    /// Prices one finished job and posts it to the ledger as one linked batch: free minutes on
    /// the minutes ledger, money on the money ledger (docs/PRODUCT.md §3, §11). The priced
    /// decision is stored first under the job's key; the transfers' ids derive from the key, so a
    /// crash or a replay at any point posts the same transfers once. Returns whether it charged.
    func charge(_ job: RunnerJob) async throws -> Bool {
        let key = job.key
        let setCharge: (ChargeStatus) async throws -> Void = { outcome in try await jobs.settleCharge(job, outcome) }
        for _ in 0..<RunnerLimits.pricingAttemptsPerChargeMax {
            var usage = try await store.usage(key: key)
            if usage == nil {
                guard let workspace = try await store.workspace(job.workspaceID) else { throw HostError(.internal, "job \(key): no workspace") }
                // A credited workspace has its accounts already (granting made them).
                if !workspace.credited { try await ledger.ensureWorkspace(workspace.id, now: JobScheduler.ledgerNow()) }
                let balance = try await ledger.balance(workspace: workspace.id)
                guard let startedAt = job.startedAt, let completedAt = job.completedAt else {
                    try await setCharge(.notBillable)
                    return false
                }
                let decision = try policies.priceJob(
                    JobPriceInput(
                        labels: job.labels, startedAt: startedAt, completedAt: completedAt,
                        workspace: .init(
                            freeMinutesRemaining: max(0, balance.freeMinutesRemaining), hasPaymentMethod: workspace.hasPaymentMethod,
                            addons: workspace.addons, contract: workspace.contract)))
                guard decision.price.matched else {
                    try await setCharge(.notBillable)
                    return false
                }
                let record = String(decoding: try JSONEncoder().encode(decision.record), as: UTF8.self)
                _ = try await store.database.execute(
                    """
                    INSERT INTO runner_usage (usage_key, workspace_id, sku, billable_minutes, free_minutes_consumed, amount_micros,
                        policy_version, decision, created_at, completed_at)
                    VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10) ON CONFLICT (usage_key) DO NOTHING
                    """,
                    [
                        .text(key), .text(workspace.id), SQLValue(decision.price.sku), .integer(decision.price.billableMinutes),
                        .integer(decision.price.freeMinutesConsumed), .integer(decision.price.amountMicros),
                        .text(decision.price.policyVersion), .text(record), .integer(RunnerStore.nowMilliseconds()),
                        Timestamp.parseUTCSeconds(completedAt).map(SQLValue.integer) ?? .null,
                    ])
                usage = try await store.usage(key: key)
            }
            guard let usage else { continue }
            if !usage.posted {
                let transfers = JobScheduler.transfers(for: usage)
                let results = transfers.isEmpty ? [] : try await ledger.createTransfers(transfers, now: JobScheduler.ledgerNow())
                if results.contains(.exceedsCredits) {
                    // Another job used the free minutes first: price again with what is left.
                    _ = try await store.database.execute("DELETE FROM runner_usage WHERE usage_key = $1 AND posted = 0", [.text(key)])
                    continue
                }
                guard results.allSatisfy({ $0 == .ok || $0 == .exists }) else {
                    logger.error("ledger refused a job's charge", metadata: ["job": "\(key)", "results": "\(results.map(\.rawValue))"])
                    try await setCharge(.failed)
                    return false
                }
                _ = try await store.database.execute("UPDATE runner_usage SET posted = 1 WHERE usage_key = $1", [.text(key)])
            }
            try await setCharge(.charged)
            return true
        }
        throw HostError(.unavailable, "job \(key): free minutes kept changing while it was priced")
    }

    /// The linked batch for a usage record: minutes from the workspace to consumption, money
    /// from the workspace to revenue (runner charge, code 2001).
    static func transfers(for usage: RunnerStore.Usage) -> [Transfer] {
        var batch: [Transfer] = []
        if usage.freeMinutesConsumed > 0 {
            batch.append(
                Transfer(
                    id: ChartOfAccounts.derivedID("tenki-usage:\(usage.key):minutes"),
                    debitAccountID: ChartOfAccounts.userMinutesAccountID(workspace: usage.workspaceID),
                    creditAccountID: ChartOfAccounts.freeMinutesOperatorID(ChartOfAccounts.freeMinutesConsumedCode),
                    amount: UInt64(usage.freeMinutesConsumed), ledger: ChartOfAccounts.freeMinutesLedger,
                    code: ChartOfAccounts.TransferCode.runnerCharge.rawValue))
        }
        if usage.amountMicros > 0 {
            batch.append(
                Transfer(
                    id: ChartOfAccounts.derivedID("tenki-usage:\(usage.key):money"),
                    debitAccountID: ChartOfAccounts.userMoneyAccountID(workspace: usage.workspaceID),
                    creditAccountID: ChartOfAccounts.operatorAccountID(.revenue),
                    amount: UInt64(usage.amountMicros), ledger: ChartOfAccounts.moneyLedger,
                    code: ChartOfAccounts.TransferCode.runnerCharge.rawValue))
        }
        for i in batch.indices.dropLast() { batch[i].flags.insert(.linked) }
        return batch
    }
}
