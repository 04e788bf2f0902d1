import Foundation
import Host
import SQL

// Continue-as-new and signal-with-start (Temporal's semantics on one row per workflow id).
//
// A workflow id keeps one row in `workflow_runs`; its next run replaces the last one in place, in
// one transaction: new input, `run_number` + 1, history (`workflow_steps`) and consumed signals
// deleted. A signal is written in a transaction of its own against the row, so it lands either
// before the hand-over (unconsumed, and kept for the new run) or after it (sent to the new run):
// none is lost. `executions` keeps counting across runs, because it is the lease's fencing token:
// an execution of an earlier run that still thinks it holds the row must stay fenced off.

extension WorkflowEngine {
    /// Signal-with-start: starts run `id` of `type` unless one is under way (a run that ended is
    /// followed by a fresh one, as Temporal's default id reuse policy), then sends it signal
    /// `name`. A `requestID` this id has already taken changes nothing and returns false.
    @discardableResult
    package func signalWithStart(
        type: String, input: [UInt8], id: String, signal name: String, payload: [UInt8],
        requestID: String? = nil
    ) async throws -> Bool {
        let sent = try await database.transaction { db in
            try self.signalWithStart(in: db, type: type, input: input, id: id, signal: name, payload: payload, requestID: requestID)
        }
        doorbell.ring()
        return sent
    }

    /// The same inside the caller's transaction (an event subscriber's), so the signal is sent
    /// exactly when the caller's writes commit.
    func signalWithStart(
        in db: any SQLConnection, type: String, input: [UInt8], id: String, signal name: String, payload: [UInt8],
        requestID: String?
    ) throws -> Bool {
        let plan = try startPlan(type: type, input: input, id: id, taskQueue: nil, timeout: nil)
        guard WorkflowNames.isValid(name) else { throw HostError(.badRequest, "bad signal name '\(name)'") }
        guard payload.count <= WorkflowLimits.maxPayloadBytes else {
            throw HostError(.payloadTooLarge, "signal is \(payload.count) bytes; at most \(WorkflowLimits.maxPayloadBytes)")
        }
        if let requestID {
            guard requestID.utf8.count <= WorkflowLimits.maxNameBytes else {
                throw HostError(.badRequest, "a signal's request id has at most \(WorkflowLimits.maxNameBytes) bytes")
            }
        }
        let nowMs = clock.nowMilliseconds()
        let deadline = plan.timeoutMs.map { nowMs + $0 }
        if let requestID, !(try WorkflowStore.takeRequest(db, id: plan.id, requestID: requestID, nowMs: nowMs)) { return false }
        let started = try WorkflowStore.start(
            db, id: plan.id, type: type, taskQueue: plan.queue, input: input, parentID: nil,
            deadlineAtMs: deadline, nowMs: nowMs)
        if !started.created && started.run.status.isFinished {
            try WorkflowStore.beginNextRun(
                db, id: plan.id, after: started.run.status, input: input, deadlineAtMs: deadline,
                keepUnconsumedSignals: false, nowMs: nowMs)
        }
        try WorkflowStore.addSignal(db, id: plan.id, name: name, payload: payload, nowMs: nowMs)
        doorbell.ring()
        return true
    }

    /// Ends an execution that asked to continue as new: its unfinished children are cancelled
    /// (the parent close policy, as when a run ends) and the next run is pending at once.
    func continueAsNew(_ run: WorkflowRun, input: [UInt8]) async throws {
        let lease = WorkflowLease(owner: owner, execution: run.executions)
        let nowMs = clock.nowMilliseconds()
        let continued: Bool = try await database.transaction { db in
            do {
                try WorkflowStore.fence(db, id: run.id, lease: lease, nowMs: nowMs)
            } catch WorkflowHalt.lostLease {
                return false
            }
            for child in try WorkflowStore.children(db, parentID: run.id) where !child.status.isFinished {
                _ = try WorkflowStore.cancel(db, id: child.id, nowMs: nowMs)
            }
            try WorkflowStore.beginNextRun(
                db, id: run.id, after: .running, input: input, deadlineAtMs: run.deadlineAtMs,
                keepUnconsumedSignals: true, nowMs: nowMs)
            return true
        }
        if continued {
            logger.debug("workflow continued as new", metadata: ["workflow": .string(run.id), "run": .stringConvertible(run.runNumber + 1)])
            doorbell.ring()
        } else {
            logger.notice("workflow execution abandoned: no longer ours", metadata: ["workflow": .string(run.id)])
        }
    }
}

extension WorkflowStore {
    /// Replaces run `id` (found in status `previous`) by its next run: pending now with `input`,
    /// an empty history, and only the signals the last run has not taken (none, when
    /// `keepUnconsumedSignals` is false: a run that ended takes its signals with it). Request ids
    /// past their retention go too, so what a workflow id keeps stays bounded.
    static func beginNextRun(
        _ db: any SQLConnection, id: String, after previous: WorkflowStatus, input: [UInt8], deadlineAtMs: Int64?,
        keepUnconsumedSignals: Bool, nowMs: Int64
    ) throws {
        let changed = try db.execute(
            """
            UPDATE workflow_runs SET status = 'pending', input = $3, output = NULL, error = NULL, finished_at_ms = NULL,
                lease_owner = NULL, lease_until_ms = NULL, due_at_ms = $4, deadline_at_ms = $5, run_number = run_number + 1,
                updated_at_ms = $4
            WHERE id = $1 AND status = $2
            """, [.text(id), .text(previous.rawValue), text(input), .integer(nowMs), deadlineAtMs.map { .integer($0) } ?? .null])
        // Another transaction got there first (two signal-with-starts after a run ended).
        guard changed == 1 else { return }
        try db.execute("DELETE FROM workflow_steps WHERE workflow_id = $1", [.text(id)])
        try db.execute(
            "DELETE FROM workflow_signals WHERE workflow_id = $1\(keepUnconsumedSignals ? " AND consumed_seq IS NOT NULL" : "")",
            [.text(id)])
        try db.execute(
            "DELETE FROM workflow_signal_requests WHERE workflow_id = $1 AND created_at_ms < $2",
            [.text(id), .integer(nowMs - WorkflowLimits.signalRequestRetentionMilliseconds)])
    }

    /// Records that workflow `id` took request `requestID`; false when it already had.
    static func takeRequest(_ db: any SQLConnection, id: String, requestID: String, nowMs: Int64) throws -> Bool {
        try db.execute(
            """
            INSERT INTO workflow_signal_requests (workflow_id, request_id, created_at_ms) VALUES ($1, $2, $3)
            ON CONFLICT (workflow_id, request_id) DO NOTHING
            """, [.text(id), .text(requestID), .integer(nowMs)]) == 1
    }
}
