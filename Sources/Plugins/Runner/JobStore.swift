import Foundation
import Host
import SQL

/// The one writer of `runner_jobs`. Every change of a job goes through `JobLifecycle`: the store
/// reads the job's state (or takes the one its caller read), applies the event, and writes the
/// transition under a guard on the status it started from, so a job another replica or a late
/// webhook moved meanwhile is left as it is. The scheduler, the reconciler, charging and the
/// workspace and installation updates ask it; none of them writes the table.
package struct JobStore: Sendable {
    package let database: any Database

    package init(database: any Database) { self.database = database }

    static func now() -> Int64 { RunnerStore.nowMilliseconds() }

    // MARK: news from GitHub

    /// Records a `workflow_job` report (a webhook, or the reconciler's reading of GitHub), moving
    /// the job forward only; same or older news fills in facts we did not have.
    static func record(_ db: any SQLConnection, event: JobEvent, workspaceID: String, sequence: Int64) throws {
        let now = now()
        let key: [SQLValue] = [.integer(event.installationID), .integer(event.jobID), .integer(event.runAttempt)]
        // On PostgreSQL the row is locked as it is read: two reports of one job handled at once
        // (an `in_progress` and a `completed`, on two dispatcher tasks or replicas) are applied
        // one after the other, the second to what the first wrote, never both to the same read.
        // SQLite's single writer already runs them one at a time.
        let lock = db.dialect == .postgres ? " FOR UPDATE" : ""
        let existing = try db.queryOne(
            """
            SELECT status, started_at, charge_status FROM runner_jobs WHERE installation_id = $1 AND job_id = $2 AND run_attempt = $3\(lock)
            """, key)
        var lifecycle =
            try existing.map { row in
                JobLifecycle(
                    status: JobStatus(rawValue: try row.string("status")) ?? .queued,
                    charge: ChargeStatus(rawValue: try row.string("charge_status")) ?? .notBillable,
                    hasStart: try row.optionalString("started_at") != nil)
            } ?? JobLifecycle(status: nil)
        // GitHub fills `started_at` on a queued job too (with its queue time): billable time runs
        // from the start an `in_progress` or `completed` event reports, never from that.
        let reportedStart = event.action == .queued ? nil : event.startedAt
        let transition = lifecycle.apply(.reported(event.report))
        let status = SQLValue.text((lifecycle.status ?? .queued).rawValue)
        let charge = SQLValue.text(lifecycle.charge.rawValue)
        for action in transition.actions {
            switch action {
            case .insert:
                let labels = String(decoding: try JSONEncoder().encode(event.labels), as: UTF8.self)
                _ = try db.execute(
                    """
                    INSERT INTO runner_jobs (installation_id, job_id, run_attempt, workspace_id, repository, name, labels, status,
                        enqueue_sequence, started_at, completed_at, conclusion, runner_name, charge_status, updated_at, head_sha,
                        queued_at, received_at)
                    VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18)
                    """,
                    key + [
                        .text(workspaceID), .text(event.repository), .text(event.name), .text(labels), status,
                        .integer(sequence), SQLValue(reportedStart), SQLValue(event.completedAt), SQLValue(event.conclusion),
                        SQLValue(event.runnerName), charge, .integer(now), SQLValue(event.headSha), SQLValue(event.createdAt),
                        .integer(event.receivedAt ?? now),
                    ])
            case .fillMissingFacts:
                _ = try db.execute(
                    """
                    UPDATE runner_jobs SET started_at = COALESCE(started_at, $4), runner_name = COALESCE(runner_name, $5),
                        queued_at = COALESCE(queued_at, $6)
                    WHERE installation_id = $1 AND job_id = $2 AND run_attempt = $3
                    """, key + [SQLValue(reportedStart), SQLValue(event.runnerName), SQLValue(event.createdAt)])
            case .recordStart:
                _ = try db.execute(
                    """
                    UPDATE runner_jobs SET status = $4, started_at = COALESCE($5, started_at), runner_name = COALESCE(runner_name, $6),
                        updated_at = $7
                    WHERE installation_id = $1 AND job_id = $2 AND run_attempt = $3
                    """, key + [status, SQLValue(event.startedAt), SQLValue(event.runnerName), .integer(now)])
            case .recordCompletion:
                _ = try db.execute(
                    """
                    UPDATE runner_jobs SET status = $4, started_at = COALESCE($5, started_at), completed_at = $6, conclusion = $7,
                        runner_name = COALESCE(runner_name, $8), charge_status = $9, updated_at = $10
                    WHERE installation_id = $1 AND job_id = $2 AND run_attempt = $3
                    """,
                    key + [
                        status, SQLValue(event.startedAt), SQLValue(event.completedAt), SQLValue(event.conclusion),
                        SQLValue(event.runnerName), charge, .integer(now),
                    ])
            default:
                preconditionFailure("a report does not lead to \(action)")
            }
        }
    }

    /// Records a queued job unless any attempt record of it exists; returns whether it was new.
    func recordIfNew(_ event: JobEvent, workspaceID: String) async throws -> Bool {
        try await database.transaction { db in
            let key: [SQLValue] = [.integer(event.installationID), .integer(event.jobID), .integer(event.runAttempt)]
            guard try db.queryOne("SELECT status FROM runner_jobs WHERE installation_id = $1 AND job_id = $2 AND run_attempt = $3", key) == nil
            else { return false }
            // Heard of late: behind every job already waiting.
            let sequence = try db.queryOne("SELECT COALESCE(MAX(enqueue_sequence), 0) + 1 AS s FROM runner_jobs")?.int("s") ?? 1
            try JobStore.record(db, event: event, workspaceID: workspaceID, sequence: sequence)
            return true
        }
    }

    /// Records a report about a job we have (the reconciler's reading of GitHub), in its own transaction.
    func record(_ event: JobEvent, of job: RunnerJob) async throws {
        try await database.transaction { db in
            try JobStore.record(db, event: event, workspaceID: job.workspaceID, sequence: job.enqueueSequence)
        }
    }

    /// Closes a job GitHub no longer has waiting, before it ran here: nothing to charge. Returns
    /// whether it closed (false: it moved on since `job` was read, or it runs).
    func closeOnGitHub(_ job: RunnerJob, conclusion: String) async throws -> Bool {
        guard let (from, lifecycle) = JobStore.transition(job, .closedOnGitHub) else { return false }
        return try await database.execute(
            """
            UPDATE runner_jobs SET status = $5, conclusion = $6, charge_status = $7, updated_at = $8
            WHERE installation_id = $1 AND job_id = $2 AND run_attempt = $3 AND status = $4
            """,
            job.keyValues + [
                from, JobStore.status(lifecycle), .text(conclusion), .text(lifecycle.charge.rawValue),
                .integer(JobStore.now()),
            ]) == 1
    }

    // MARK: admission

    /// Sends a changed workspace's blocked jobs, and its jobs waiting for a slot, back to
    /// admission (they keep their place); returns how many went.
    static func returnToAdmission(_ db: any SQLConnection, workspaceID: String) throws -> Int {
        let workspace = SQLValue.text(workspaceID)
        let waiting = JobLifecycle.statuses(movedBy: .workspaceChanged, doing: .returnToAdmission)
        let target = JobLifecycle.target(of: .workspaceChanged, from: waiting[0])!
        let returned = try db.execute(
            """
            UPDATE runner_jobs SET status = '\(target.rawValue)', updated_at = $2 WHERE workspace_id = $1 AND \(JobStatus.sqlCondition(waiting))
            """, [workspace, .integer(now())])
        return try returned + releaseBlocked(db, .workspaceChanged, column: "workspace_id", workspace)
    }

    /// Sends an installation's blocked jobs back to admission; returns how many.
    @discardableResult
    static func releaseBlocked(_ db: any SQLConnection, installationID: Int64) throws -> Int {
        try releaseBlocked(db, .blockCleared, column: "installation_id", .integer(installationID))
    }

    private static func releaseBlocked(_ db: any SQLConnection, _ event: JobLifecycle.Event, column: String, _ value: SQLValue) throws -> Int {
        let from = JobLifecycle.statuses(movedBy: event, doing: .markReleasedFromBlock)
        let target = JobLifecycle.target(of: event, from: from[0])!
        return try db.execute(
            """
            UPDATE runner_jobs SET status = '\(target.rawValue)', block_reason = NULL, released_from_block = 1, updated_at = $2
            WHERE \(column) = $1 AND \(JobStatus.sqlCondition(from))
            """, [value, .integer(now())])
    }

    /// Writes a round's admission decisions (in the caller's transaction); returns which jobs
    /// changed. A job that changed meanwhile (a late event moved it on) is left as it is. A block
    /// is published as `runner_job.blocked`, with the job, so scripts can react (a check run).
    static func recordAdmissions(_ decided: [(RunnerJob, AdmissionDecision)], _ db: any SQLConnection, now: Int64) throws -> [Bool] {
        var changes: [Bool] = []
        for (job, decision) in decided {
            guard let (from, lifecycle) = transition(job, .admitted(decision.verdict)) else {
                changes.append(false)
                continue
            }
            let blocked = lifecycle.status == .blocked
            let changed = try db.execute(
                """
                UPDATE runner_jobs SET status = $5, block_reason = $6, sku = $7, arch = $8, priority = $9, slot_limit = $10, updated_at = $11
                WHERE installation_id = $1 AND job_id = $2 AND run_attempt = $3 AND status = $4
                """,
                job.keyValues + [
                    from, status(lifecycle), SQLValue(blocked ? decision.reason : nil), SQLValue(decision.sku),
                    SQLValue(decision.arch), .integer(decision.priority), decision.slotLimit.map { .integer($0) } ?? .null, .integer(now),
                ])
            if changed == 1, blocked {
                try EventInbox.publish(
                    in: db, topic: "runner_job.blocked", source: "runner", sourceID: "\(job.key):blocked:\(now)",
                    payload: blockedEvent(job, reason: decision.reason ?? "blocked"))
            }
            changes.append(changed == 1)
        }
        return changes
    }

    /// The payload of a `runner_job.blocked` event.
    static func blockedEvent(_ job: RunnerJob, reason: String) -> [UInt8] {
        var fields: [String: Any] = [
            "installation_id": job.installationID, "job_id": job.jobID, "run_attempt": job.runAttempt, "repository": job.repository,
            "name": job.name, "labels": job.labels, "workspace": job.workspaceID, "reason": reason,
        ]
        if let sha = job.headSha { fields["head_sha"] = sha }
        return Array((try? JSONSerialization.data(withJSONObject: fields, options: [.sortedKeys])) ?? Data("{}".utf8))
    }

    // MARK: slots and provisioning

    /// Moves a waiting job into a slot and claims its provisioning (a lease, and the time a runner
    /// was first asked for), in the caller's transaction. False when it moved on meanwhile.
    static func takeSlot(_ db: any SQLConnection, _ job: RunnerJob, now: Int64) throws -> Bool {
        guard let (from, lifecycle) = transition(job, .slotTaken) else { return false }
        return try db.execute(
            """
            UPDATE runner_jobs SET status = $5, updated_at = $6, lease_until = $7, provision_requested_at = COALESCE(provision_requested_at, $6)
            WHERE installation_id = $1 AND job_id = $2 AND run_attempt = $3 AND status = $4
            """, job.keyValues + [from, status(lifecycle), .integer(now), .integer(now + RunnerLimits.provisioningLeaseMilliseconds)]) == 1
    }

    /// Whether any job holding a slot has no live provisioning lease (its attempt failed or its replica died).
    func hasStaleProvisioning(now: Int64) async throws -> Bool {
        !(try await database.query(
            """
            SELECT 1 AS one FROM runner_jobs WHERE \(JobStore.leasable) AND (lease_until IS NULL OR lease_until < $1) LIMIT 1
            """, [.integer(now)])).isEmpty
    }

    /// Claims jobs holding a slot whose provisioning lease ran out, a lease per job, most urgent first.
    func claimStaleProvisioning(now: Int64) async throws -> [RunnerJob] {
        try await database.transaction { db -> [RunnerJob] in
            let candidates = try db.query(
                """
                SELECT * FROM runner_jobs WHERE \(JobStore.leasable) AND (lease_until IS NULL OR lease_until < $1)
                ORDER BY priority DESC, enqueue_sequence LIMIT \(RunnerLimits.jobsReprovisionedPerRoundMax)
                """, [.integer(now)]
            ).map(RunnerStore.job(from:))
            return try candidates.filter { job in
                try db.execute(
                    """
                    UPDATE runner_jobs SET lease_until = $4, provision_requested_at = COALESCE(provision_requested_at, $5)
                    WHERE installation_id = $1 AND job_id = $2 AND run_attempt = $3 AND \(JobStore.leasable)
                      AND (lease_until IS NULL OR lease_until < $5)
                    """, job.keyValues + [.integer(now + RunnerLimits.provisioningLeaseMilliseconds), .integer(now)]) == 1
            }
        }
    }

    /// The status condition of jobs whose provisioning may be leased.
    static let leasable = JobStatus.sqlCondition(JobLifecycle.statuses(movedBy: .provisioningLeased))

    /// Records what the provider said for each claimed job, in one transaction: the runner's
    /// handle (a job that moved on meanwhile keeps its status, and the handle so its runner is
    /// released), or a lease that makes the next attempt wait a little (the slot stays held).
    func recordProvisioning(_ outcomes: [(job: RunnerJob, handle: String?)], retryAt: Int64) async throws {
        let moving = JobLifecycle.statuses(movedBy: .runnerProvisioned)
        let provisioned = JobLifecycle.target(of: .runnerProvisioned, from: moving[0])!
        let retrying = JobStatus.sqlCondition(JobLifecycle.statuses(movedBy: .provisioningFailed))
        try await database.transaction { db in
            let now = JobStore.now()
            for (job, handle) in outcomes {
                if let handle {
                    _ = try db.execute(
                        """
                        UPDATE runner_jobs SET provider_handle = $4, lease_until = NULL,
                            status = CASE WHEN \(JobStatus.sqlCondition(moving)) THEN '\(provisioned.rawValue)' ELSE status END, updated_at = $5
                        WHERE installation_id = $1 AND job_id = $2 AND run_attempt = $3
                        """, job.keyValues + [.text(handle), .integer(now)])
                } else {
                    _ = try db.execute(
                        """
                        UPDATE runner_jobs SET lease_until = $4 WHERE installation_id = $1 AND job_id = $2 AND run_attempt = $3 AND \(retrying)
                        """, job.keyValues + [.integer(retryAt)])
                }
            }
        }
    }

    /// Puts a provisioned job whose runner (`handle`) was released back to wait for a slot and a
    /// new runner. False when it moved on meanwhile (it started, or has another runner).
    func requeueOrphan(_ job: RunnerJob, handle: String) async throws -> Bool {
        guard let (from, lifecycle) = JobStore.transition(job, .orphanTimedOut) else { return false }
        return try await database.execute(
            """
            UPDATE runner_jobs SET status = $6, provider_handle = NULL, lease_until = NULL, updated_at = $7
            WHERE installation_id = $1 AND job_id = $2 AND run_attempt = $3 AND status = $4 AND provider_handle = $5
            """, job.keyValues + [from, .text(handle), JobStore.status(lifecycle), .integer(JobStore.now())]) == 1
    }

    /// Marks the runner of a finished job released.
    func markRunnerReleased(_ job: RunnerJob) async throws {
        let finished = JobStatus.sqlCondition(JobLifecycle.statuses(movedBy: .runnerReleased))
        _ = try await database.execute(
            """
            UPDATE runner_jobs SET released = 1 WHERE installation_id = $1 AND job_id = $2 AND run_attempt = $3 AND \(finished)
            """, job.keyValues)
    }

    // MARK: charging

    /// Settles a pending charge (`charged`, `failed`, `notBillable`); a settled one stays as it is.
    func settleCharge(_ job: RunnerJob, _ outcome: ChargeStatus) async throws {
        var lifecycle = JobLifecycle(status: .completed, charge: .pending)
        guard lifecycle.apply(.chargeSettled(outcome)).outcome == .applied else { return }
        let finished = JobStatus.sqlCondition(JobLifecycle.statuses(movedBy: .chargeSettled(outcome)))
        _ = try await database.execute(
            """
            UPDATE runner_jobs SET charge_status = $4 WHERE installation_id = $1 AND job_id = $2 AND run_attempt = $3
              AND \(finished) AND charge_status = '\(ChargeStatus.pending.rawValue)'
            """, job.keyValues + [.text(lifecycle.charge.rawValue)])
    }

    // MARK: helpers

    /// The status `job` was read in (the guard of the write) and its lifecycle after `event`;
    /// nil when the event does not apply to a job in that state.
    static func transition(_ job: RunnerJob, _ event: JobLifecycle.Event) -> (SQLValue, JobLifecycle)? {
        var lifecycle = JobLifecycle(status: job.status, charge: job.chargeStatus, hasStart: job.startedAt != nil)
        guard lifecycle.apply(event).outcome == .applied else { return nil }
        return (.text(job.status.rawValue), lifecycle)
    }

    static func status(_ lifecycle: JobLifecycle) -> SQLValue {
        .text((lifecycle.status ?? .queued).rawValue)
    }
}

extension JobEvent {
    /// The report the lifecycle reads.
    var report: JobLifecycle.Report {
        JobLifecycle.Report(action, reportsStart: startedAt != nil, namesRunner: runnerName != nil)
    }
}
