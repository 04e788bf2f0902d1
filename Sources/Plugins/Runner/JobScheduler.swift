import Foundation
import GitHubPlugin
import Host
import LedgerPlugin
import Logging
import SQL
import TenkiCrypto

/// A `workflow_job` event reduced to what the job's record needs.
struct JobEvent: Sendable {
    typealias Action = JobLifecycle.Report.Action
    let action: Action
    let installationID: Int64
    let jobID: Int64
    let runAttempt: Int64
    let repository: String
    let name: String
    let labels: [String]
    let startedAt: String?
    let completedAt: String?
    let conclusion: String?
    let runnerName: String?
    let headSha: String?
    /// When GitHub queued the job (its `created_at`).
    var createdAt: String? = nil
    /// When the delivery reached us (ms since the epoch).
    var receivedAt: Int64? = nil
}

/// One round of the runner's work, in order: grant signup credits, admit queued jobs through the
/// admission policy, fill free concurrency slots, provision runners, charge completed jobs, and
/// release runners of finished jobs. Each step is idempotent and safe to run from several
/// replicas at once: slots are taken under the workspace's row lock, provisioning under a lease.
package struct JobScheduler: Sendable {
    package let store: RunnerStore
    package let ledger: LedgerStore
    package let policies: PolicyEngine
    package let provider: any ComputeProvider
    package let logger: Logger
    /// Asked whether a job released from a block is still queued on GitHub (nil: not asked).
    package let github: GitHubAppClient?
    /// Slots per architecture when the admission policy names no limit.
    package static let includedSlots: Int64 = 40
    let backgroundProvisioning = ConcurrencyLimit(limit: RunnerLimits.backgroundProvisioningStepsMax)
    /// The one writer of `runner_jobs`.
    var jobs: JobStore { store.jobStore }

    package init(
        store: RunnerStore, ledger: LedgerStore, policies: PolicyEngine, provider: any ComputeProvider, logger: Logger,
        github: GitHubAppClient? = nil
    ) {
        RunnerLimits.check()
        self.github = github
        self.store = store
        self.ledger = ledger
        self.policies = policies
        self.provider = provider
        self.logger = logger
    }

    /// What one round did.
    package struct Round: Sendable, Equatable, Codable {
        package var credited = 0
        package var admitted = 0
        package var blocked = 0
        package var foreign = 0
        package var scheduled = 0
        package var provisioned = 0
        package var charged = 0
        package var released = 0
        /// Abuse verdicts that raised a workspace's recorded action.
        package var flagged = 0
        /// Jobs released from a block that GitHub no longer shows queued: dropped, never run.
        package var dropped = 0
        package var failures = 0

        package var didWork: Bool { credited + admitted + blocked + foreign + scheduled + provisioned + charged + released + flagged + dropped > 0 }
    }

    /// One round. With `provisionInBackground` (the service), the runners for the jobs it
    /// scheduled are requested by a task of their own, so the next round's admission does not
    /// wait for the provider; at most `RunnerLimits.backgroundProvisioningStepsMax` such tasks run at once, beyond
    /// that the round provisions inline.
    @discardableResult
    package func runOnce(provisionInBackground: Bool = false) async throws -> Round {
        var round = Round()
        try await grantSignupCredits(&round)
        let decided = try await admit(&round)
        let scheduled = try await schedule(&round, decided: decided)
        if provisionInBackground, !scheduled.isEmpty, backgroundProvisioning.tryEnter() {
            let scheduler = self
            Task {
                var background = Round()
                do { try await scheduler.provisionRunners(&background, scheduled: scheduled) } catch {
                    scheduler.logger.error("provisioning failed", metadata: ["error": "\(error)"])
                }
                scheduler.backgroundProvisioning.leave()
            }
        } else {
            try await provisionRunners(&round, scheduled: scheduled)
        }
        try await chargeCompleted(&round)
        try await releaseRunners(&round)
        return round
    }

    static func ledgerNow() -> UInt64 { UInt64(Date().timeIntervalSince1970 * 1_000_000_000) }

    // MARK: credits

    func grantSignupCredits(_ round: inout Round) async throws {
        let pending = try await store.database.query(
            """
            SELECT id FROM runner_workspaces WHERE credited = 0 ORDER BY id LIMIT \(RunnerLimits.workspacesCreditedPerRoundMax)
            """)
        for row in pending {
            let workspace = try row.string("id")
            try await ledger.ensureWorkspace(workspace, now: JobScheduler.ledgerNow())
            let minutes = try policies.signupFreeMinutes(workspace: workspace)
            let grant = Transfer(
                id: ChartOfAccounts.derivedID("tenki-signup-credit:\(workspace)"),
                debitAccountID: ChartOfAccounts.freeMinutesOperatorID(ChartOfAccounts.freeMinutesGrantsCode),
                creditAccountID: ChartOfAccounts.userMinutesAccountID(workspace: workspace),
                amount: UInt64(minutes), ledger: ChartOfAccounts.freeMinutesLedger,
                code: ChartOfAccounts.TransferCode.signupCredit.rawValue)
            let result = try await ledger.createTransfers([grant], now: JobScheduler.ledgerNow())
            guard result.allSatisfy({ $0 == .ok || $0 == .exists }) else {
                logger.error("signup credit refused by the ledger", metadata: ["workspace": "\(workspace)", "result": "\(result)"])
                round.failures += 1
                continue
            }
            try await RunnerStore.markCredited(workspace, database: store.database)
            round.credited += 1
        }
    }

    // MARK: admission

    /// The state admission reads for each workspace: its row, free minutes and the jobs holding
    /// its slots, read together for a round's workspaces (three reads, not three per workspace).
    func admissionStates(_ ids: [String]) async throws -> [String: (RunnerWorkspace, AdmissionInput.Workspace)] {
        guard !ids.isEmpty else { return [:] }
        let balances = try await ledger.balances(workspaces: ids)
        let (workspaces, running) = try await store.database.read { db in
            let workspaces = try db.query("SELECT * FROM runner_workspaces WHERE id IN (\(placeholders(ids.count)))", ids.map { .text($0) })
                .map(RunnerStore.workspace(from:))
            return (workspaces, try JobScheduler.slotsInUse(db, workspaces: ids))
        }
        var states: [String: (RunnerWorkspace, AdmissionInput.Workspace)] = [:]
        for workspace in workspaces {
            let used = running[workspace.id] ?? [:]
            let macos = used["macos"] ?? 0
            let x64 = used.filter { $0.key != "macos" }.values.reduce(0, +)
            states[workspace.id] = (
                workspace,
                AdmissionInput.Workspace(
                    freeMinutesRemaining: balances[workspace.id]?.freeMinutesRemaining ?? 0, hasPaymentMethod: workspace.hasPaymentMethod,
                    addons: workspace.addons, suspended: workspace.suspended, paymentOverdue: workspace.paymentOverdue,
                    abuseAction: workspace.abuseAction,
                    extraSlotsX64: workspace.extraSlotsX64, extraSlotsMacOS: workspace.extraSlotsMacOS,
                    runningX64: x64, runningMacOS: macos)
            )
        }
        return states
    }

    /// Jobs holding a slot, per workspace and architecture (read from the slot index alone).
    static func slotsInUse(_ db: any SQLConnection, workspaces: [String]) throws -> [String: [String: Int64]] {
        guard !workspaces.isEmpty else { return [:] }
        let list = placeholders(workspaces.count)
        var used: [String: [String: Int64]] = [:]
        for row in try db.query(
            """
            SELECT workspace_id, arch, COUNT(*) AS n FROM runner_jobs
            WHERE workspace_id IN (\(list)) AND \(JobStatus.sqlCondition(JobStatus.holdingSlot)) AND arch IS NOT NULL
            GROUP BY workspace_id, arch
            """, workspaces.map { .text($0) })
        {
            used[try row.string("workspace_id"), default: [:]][try row.string("arch")] = try row.int("n")
        }
        return used
    }

    /// Asks the abuse rules and the admission policy about queued jobs; returns the decisions,
    /// which `schedule` writes in the same transaction that fills slots.
    func admit(_ round: inout Round) async throws -> [(RunnerJob, AdmissionDecision)] {
        let queued = try await store.jobs(status: .queued, limit: RunnerLimits.jobsAdmittedPerRoundMax)
        var states = try await admissionStates(Array(Set(queued.map(\.workspaceID))).sorted())
        let inactive = try await store.inactiveInstallations(Array(Set(queued.map(\.installationID))).sorted())
        var decided: [(RunnerJob, AdmissionDecision)] = []
        for job in queued {
            // A workspace that appeared after this round granted signup credits (its first job
            // came before its installation was applied) waits a round, so it is judged with them.
            guard states[job.workspaceID]?.0.credited == true else { continue }
            // A job whose block cleared runs only if GitHub still has it waiting.
            if job.releasedFromBlock, let github, !(try await stillQueued(job, github)) {
                round.dropped += 1
                continue
            }
            // The abuse rules see every job as it arrives; a stronger verdict is recorded on the
            // workspace first, so admission already reads it.
            if try await screen(job, durationSeconds: 0, &round) {
                states[job.workspaceID] = try await admissionStates([job.workspaceID])[job.workspaceID]
            }
            guard var (_, state) = states[job.workspaceID] else { continue }
            // An installation that was suspended or uninstalled gets no runners: admission sees
            // its workspace as suspended (the job is blocked until the installation is active).
            if inactive.contains(job.installationID) { state.suspended = true }
            let decision: AdmissionDecision
            do {
                decision = try policies.admitJob(AdmissionInput(labels: job.labels, workspace: state))
            } catch {
                // A broken policy leaves the job queued: it is admitted once the policy is fixed.
                logger.error("admission policy failed", metadata: ["job": "\(job.key)", "error": "\(error)"])
                round.failures += 1
                continue
            }
            decided.append((job, decision))
        }
        return decided
    }

    func count(_ decided: [(RunnerJob, AdmissionDecision)], changes: [Bool], _ round: inout Round) {
        for ((job, decision), changed) in zip(decided, changes) where changed {
            switch decision.verdict {
            case .allow, .queue: round.admitted += 1
            case .block:
                round.blocked += 1
                logger.info(
                    "job blocked",
                    metadata: ["job": "\(job.key)", "reason": "\(decision.reason ?? "")", "policy_version": "\(decision.policyVersion)"])
            case .foreign: round.foreign += 1
            }
        }
    }

    /// Whether GitHub still shows the job queued. A job GitHub no longer has, or shows started or
    /// finished elsewhere, is closed here without running or charging; when GitHub cannot be
    /// asked, the job is admitted as usual (a runner nobody takes is released when it times out).
    func stillQueued(_ job: RunnerJob, _ github: GitHubAppClient) async throws -> Bool {
        let conclusion: String
        do {
            let response = try await github.request(
                installation: job.installationID, method: "GET",
                path: "/repos/\(job.repository)/actions/jobs/\(job.jobID)")
            let fields = (try? JSONSerialization.jsonObject(with: Data(response.body))) as? [String: Any]
            let status = fields?["status"] as? String
            if status.map(GitHubJobStatus.notStarted.contains) ?? true { return true }
            conclusion = (fields?["conclusion"] as? String) ?? "not_queued_on_github"
        } catch let error as GitHubAPIError where error.kind == .status && error.status == 404 {
            conclusion = "gone_from_github"
        } catch {
            logger.warning("could not ask GitHub about a released job", metadata: ["job": "\(job.key)", "error": "\(error)"])
            return true
        }
        _ = try await jobs.closeOnGitHub(job, conclusion: conclusion)
        logger.info("released job no longer queued on GitHub", metadata: ["job": "\(job.key)", "conclusion": "\(conclusion)"])
        return false
    }

    // MARK: abuse

    /// Runs the abuse rules on a job event. A verdict stronger than the workspace's recorded one
    /// is recorded (blocked and suspended workspaces get no new jobs at admission; waiting ones go
    /// back to admission). Returns whether the workspace's verdict changed.
    func screen(_ job: RunnerJob, durationSeconds: Int64, _ round: inout Round) async throws -> Bool {
        let verdict: AbuseVerdict
        do {
            verdict = try policies.abuseOnJob(JobActivity(name: job.name, labels: job.labels, durationSeconds: durationSeconds))
        } catch {
            logger.error("abuse policy failed", metadata: ["job": "\(job.key)", "error": "\(error)"])
            round.failures += 1
            return false
        }
        guard verdict.action > .allow, let workspace = try await store.workspace(job.workspaceID) else { return false }
        let current = workspace.abuseAction.flatMap(AbuseVerdict.Action.init(rawValue:)) ?? .allow
        guard verdict.action > current else { return false }
        logger.warning(
            "abuse verdict on a job",
            metadata: [
                "job": "\(job.key)", "workspace": "\(workspace.id)", "action": "\(verdict.action.rawValue)",
                "score": "\(verdict.score)", "reasons": "\(verdict.reasons.joined(separator: ","))", "policy_version": "\(verdict.policyVersion)",
            ])
        try await store.update(workspace: workspace.id, .init(abuseAction: .some(verdict.action.rawValue)))
        round.flagged += 1
        return true
    }

    // MARK: slots

    /// Writes the round's admission decisions, then moves waiting jobs into free slots,
    /// workspace by workspace (boosted workspaces and older jobs first), in one transaction holding the row locks of the workspaces it fills (taken
    /// in id order, so replicas never deadlock), so replicas never overfill a limit. A job that
    /// takes a slot is claimed for provisioning in the same write (its lease and request time);
    /// returns those jobs.
    func schedule(_ round: inout Round, decided: [(RunnerJob, AdmissionDecision)]) async throws -> [RunnerJob] {
        let waiting = try await store.database.query("SELECT 1 AS one FROM runner_jobs WHERE status = 'waiting' LIMIT 1")
        guard !waiting.isEmpty || !decided.isEmpty else { return [] }
        let (changes, claimed) = try await store.database.transaction { db -> ([Bool], [RunnerJob]) in
            let now = RunnerStore.nowMilliseconds()
            let changes = try JobStore.recordAdmissions(decided, db, now: now)
            let workspaces = try db.query(
                """
                SELECT workspace_id, MAX(priority) AS p, MIN(enqueue_sequence) AS s FROM runner_jobs WHERE status = 'waiting'
                GROUP BY workspace_id ORDER BY p DESC, s ASC LIMIT \(RunnerLimits.workspacesScheduledPerRoundMax)
                """
            ).map { try $0.string("workspace_id") }
            guard !workspaces.isEmpty else { return (changes, []) }
            let list = placeholders(workspaces.count)
            if db.dialect == .postgres {
                _ = try db.query(
                    "SELECT id FROM runner_workspaces WHERE id IN (\(list)) ORDER BY id FOR UPDATE", workspaces.sorted().map { .text($0) })
            }
            var inUse = try JobScheduler.slotsInUse(db, workspaces: workspaces)
            var waitingJobs: [String: [RunnerJob]] = [:]
            for row in try db.query(
                """
                SELECT * FROM runner_jobs WHERE status = 'waiting' AND workspace_id IN (\(list)) ORDER BY priority DESC, enqueue_sequence, job_id
                """, workspaces.map { .text($0) })
            {
                let job = try RunnerStore.job(from: row)
                waitingJobs[job.workspaceID, default: []].append(job)
            }
            var claimed: [RunnerJob] = []
            for workspace in workspaces {
                for job in waitingJobs[workspace] ?? [] {
                    let arch = job.arch ?? "x64"
                    guard inUse[workspace, default: [:]][arch, default: 0] < job.slotLimit ?? JobScheduler.includedSlots else { continue }
                    inUse[workspace, default: [:]][arch, default: 0] += 1
                    if try JobStore.takeSlot(db, job, now: now) { claimed.append(job) }
                }
            }
            return (changes, claimed)
        }
        count(decided, changes: changes, &round)
        round.scheduled += claimed.count
        return claimed
    }

    // MARK: provisioning

    /// Asks the provider for runners, concurrently, for the jobs this round scheduled (claimed
    /// already) and for jobs holding a slot whose earlier attempt failed or whose replica died
    /// (claimed here, a lease per job), and records the handles in one transaction.
    func provisionRunners(_ round: inout Round, scheduled: [RunnerJob]) async throws {
        let now = RunnerStore.nowMilliseconds()
        let claimed = try await jobs.hasStaleProvisioning(now: now) ? scheduled + jobs.claimStaleProvisioning(now: now) : scheduled
        guard !claimed.isEmpty else { return }
        let provider = self.provider
        // Each job's runner handle, or why the provider could not give one, in claim order.
        var outcomes: [(index: Int, handle: String?, error: String?)] = []
        for window in stride(from: 0, to: claimed.count, by: RunnerLimits.provisioningRequestsInFlightMax) {
            let indices = window..<min(claimed.count, window + RunnerLimits.provisioningRequestsInFlightMax)
            outcomes += await withTaskGroup(of: (index: Int, handle: String?, error: String?).self) { group in
                for index in indices {
                    let job = claimed[index]
                    group.addTask {
                        do { return (index, try await provider.provision(job), nil) } catch { return (index, nil, "\(error)") }
                    }
                }
                var results: [(index: Int, handle: String?, error: String?)] = []
                for await result in group { results.append(result) }
                return results
            }
        }
        outcomes.sort { $0.index < $1.index }
        let handles = outcomes.map(\.handle)
        let errors = outcomes.map(\.error)
        let retryAt = RunnerStore.nowMilliseconds() + RunnerLimits.provisioningRetryDelayMilliseconds
        try await jobs.recordProvisioning(zip(claimed, handles).map { (job: $0, handle: $1) }, retryAt: retryAt)
        for (job, error) in zip(claimed, errors) {
            if let error {
                logger.error("provisioning failed", metadata: ["job": "\(job.key)", "provider": "\(provider.name)", "error": "\(error)"])
                round.failures += 1
            } else {
                round.provisioned += 1
            }
        }
    }

    func releaseRunners(_ round: inout Round) async throws {
        let finished = try await store.database.query(
            """
            SELECT * FROM runner_jobs WHERE status = 'completed' AND provider_handle IS NOT NULL AND released = 0
            LIMIT \(RunnerLimits.runnersReleasedPerRoundMax)
            """
        ).map(RunnerStore.job(from:))
        for job in finished {
            do {
                try await provider.release(job, handle: job.providerHandle ?? "")
                try await jobs.markRunnerReleased(job)
                round.released += 1
            } catch {
                logger.error("releasing a runner failed", metadata: ["job": "\(job.key)", "error": "\(error)"])
                round.failures += 1
            }
        }
    }
}

/// A counter with a limit: how many background provisioning steps may run at once.
/// Unchecked Sendable: `running` is touched only under `lock`.
final class ConcurrencyLimit: @unchecked Sendable {
    private let lock = NSLock()
    private var running = 0
    let limit: Int

    init(limit: Int) { self.limit = limit }

    func tryEnter() -> Bool {
        lock.withLock {
            guard running < limit else { return false }
            running += 1
            return true
        }
    }

    func leave() { lock.withLock { running -= 1 } }
}
