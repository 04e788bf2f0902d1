import Foundation
import Host
import SQL

/// The workflow tables and every statement on them. Functions run inside the caller's
/// transaction. Writes by a worker are fenced: they check the run is still `running` under the
/// worker's lease, so a worker whose lease ran out (or whose run was cancelled) changes nothing.
enum WorkflowStore {
    static let migrations: [Migration] = [
        Migration(
            1, "workflow runs, steps, signals, state, schedules",
            sql: """
                CREATE TABLE workflow_runs (
                    id TEXT PRIMARY KEY,
                    type TEXT NOT NULL,
                    task_queue TEXT NOT NULL,
                    status TEXT NOT NULL,
                    input TEXT NOT NULL,
                    output TEXT,
                    error TEXT,
                    parent_id TEXT,
                    executions INTEGER NOT NULL DEFAULT 0,
                    due_at_ms BIGINT,
                    deadline_at_ms BIGINT,
                    wake_seq BIGINT NOT NULL DEFAULT 0,
                    lease_owner TEXT,
                    lease_until_ms BIGINT,
                    created_at_ms BIGINT NOT NULL,
                    updated_at_ms BIGINT NOT NULL,
                    finished_at_ms BIGINT
                );
                CREATE INDEX workflow_runs_due ON workflow_runs (task_queue, due_at_ms) WHERE status IN ('pending', 'sleeping');
                CREATE INDEX workflow_runs_running ON workflow_runs (task_queue, lease_until_ms) WHERE status = 'running';
                CREATE INDEX workflow_runs_type_status ON workflow_runs (type, status, created_at_ms);
                CREATE INDEX workflow_runs_parent ON workflow_runs (parent_id) WHERE parent_id IS NOT NULL;
                CREATE TABLE workflow_steps (
                    workflow_id TEXT NOT NULL,
                    seq INTEGER NOT NULL,
                    kind TEXT NOT NULL,
                    name TEXT NOT NULL,
                    status TEXT NOT NULL,
                    output TEXT,
                    error_type TEXT,
                    error TEXT,
                    attempts INTEGER NOT NULL DEFAULT 0,
                    wake_at_ms BIGINT,
                    started_at_ms BIGINT NOT NULL,
                    finished_at_ms BIGINT,
                    PRIMARY KEY (workflow_id, seq)
                );
                CREATE TABLE workflow_signals (
                    id INTEGER PRIMARY KEY AUTOINCREMENT,
                    workflow_id TEXT NOT NULL,
                    name TEXT NOT NULL,
                    payload TEXT NOT NULL,
                    consumed_seq INTEGER,
                    created_at_ms BIGINT NOT NULL
                );
                CREATE INDEX workflow_signals_open ON workflow_signals (workflow_id, name, id) WHERE consumed_seq IS NULL;
                CREATE TABLE workflow_state (
                    workflow_id TEXT NOT NULL,
                    state_key TEXT NOT NULL,
                    value TEXT NOT NULL,
                    updated_at_ms BIGINT NOT NULL,
                    PRIMARY KEY (workflow_id, state_key)
                );
                CREATE TABLE workflow_schedules (
                    name TEXT PRIMARY KEY,
                    cron TEXT NOT NULL,
                    workflow_type TEXT NOT NULL,
                    task_queue TEXT NOT NULL,
                    input TEXT NOT NULL,
                    next_tick_ms BIGINT NOT NULL,
                    paused INTEGER NOT NULL DEFAULT 0,
                    created_at_ms BIGINT NOT NULL
                );
                CREATE TABLE workflow_schedule_ticks (
                    schedule TEXT NOT NULL,
                    tick_ms BIGINT NOT NULL,
                    workflow_id TEXT NOT NULL,
                    created_at_ms BIGINT NOT NULL,
                    PRIMARY KEY (schedule, tick_ms)
                );
                """),
        Migration(
            2, "continue-as-new: run numbers; request ids of signals",
            sql: """
                ALTER TABLE workflow_runs ADD COLUMN run_number INTEGER NOT NULL DEFAULT 1;
                CREATE TABLE workflow_signal_requests (
                    workflow_id TEXT NOT NULL,
                    request_id TEXT NOT NULL,
                    created_at_ms BIGINT NOT NULL,
                    PRIMARY KEY (workflow_id, request_id)
                );
                """),
    ]

    static let runColumns = """
        id, type, task_queue, status, input, output, error, parent_id, executions, run_number, due_at_ms, deadline_at_ms, wake_seq,
        created_at_ms, updated_at_ms, finished_at_ms
        """

    static func text(_ bytes: [UInt8]) -> SQLValue { .text(String(decoding: bytes, as: UTF8.self)) }
    static func optionalText(_ bytes: [UInt8]?) -> SQLValue { bytes.map(text) ?? .null }

    static func run(from row: SQLRow) throws -> WorkflowRun {
        WorkflowRun(
            id: try row.string("id"), type: try row.string("type"), taskQueue: try row.string("task_queue"),
            status: WorkflowStatus(rawValue: try row.string("status")) ?? .failed,
            input: try row.bytes("input"), output: row["output"].isNull ? nil : try row.bytes("output"),
            error: try row.optionalString("error"), parentID: try row.optionalString("parent_id"),
            executions: Int(try row.int("executions")), runNumber: Int(try row.int("run_number")), dueAtMs: try row.optionalInt("due_at_ms"),
            deadlineAtMs: try row.optionalInt("deadline_at_ms"), wakeSeq: try row.int("wake_seq"),
            createdAtMs: try row.int("created_at_ms"), updatedAtMs: try row.int("updated_at_ms"),
            finishedAtMs: try row.optionalInt("finished_at_ms"))
    }

    static func load(_ db: any SQLConnection, id: String) throws -> WorkflowRun? {
        try db.queryOne("SELECT \(runColumns) FROM workflow_runs WHERE id = $1", [.text(id)]).map(run(from:))
    }

    /// Inserts a run unless its id exists; returns the run and whether it is new. The same id
    /// with another type is refused: an id names one workflow.
    static func start(
        _ db: any SQLConnection, id: String, type: String, taskQueue: String, input: [UInt8], parentID: String?,
        deadlineAtMs: Int64?, nowMs: Int64
    ) throws -> (run: WorkflowRun, created: Bool) {
        let inserted = try db.execute(
            """
            INSERT INTO workflow_runs (id, type, task_queue, status, input, parent_id, due_at_ms, deadline_at_ms, created_at_ms, updated_at_ms)
            VALUES ($1, $2, $3, 'pending', $4, $5, $6, $7, $6, $6)
            ON CONFLICT (id) DO NOTHING
            """,
            [
                .text(id), .text(type), .text(taskQueue), text(input), SQLValue(parentID), .integer(nowMs),
                deadlineAtMs.map { .integer($0) } ?? .null,
            ])
        guard let run = try load(db, id: id) else { throw HostError(.internal, "workflow \(id) vanished after insert") }
        if inserted == 0 && run.type != type {
            throw HostError(
                .badRequest, "workflow id '\(id)' is already used by a \(run.type) run (\(run.status.rawValue)); an id names one workflow")
        }
        return (run, inserted == 1)
    }

    /// Claims runnable runs of one queue: pending or sleeping ones that are due, and running ones
    /// whose lease ran out (their worker died). At most `limit`, and never more than the queue's
    /// cross-replica limit minus its live runs.
    static func claim(
        _ db: any SQLConnection, queue: WorkflowTaskQueue, types: [String], owner: String, nowMs: Int64,
        leaseMs: Int64, limit: Int
    ) throws -> [WorkflowRun] {
        guard limit > 0, !types.isEmpty else { return [] }
        var skipLocked = ""
        if db.dialect == .postgres {
            // Claims of one queue take turns so the live count below is exact across replicas.
            try db.execute("SELECT pg_advisory_xact_lock($1)", [.integer(advisoryKey("workflow.queue." + queue.name))])
            skipLocked = "FOR UPDATE SKIP LOCKED"
        }
        let live =
            try db.queryOne(
                """
                SELECT COUNT(*) AS n FROM workflow_runs WHERE task_queue = $1 AND status = 'running' AND lease_until_ms >= $2
                """, [.text(queue.name), .integer(nowMs)]
            ).map { try $0.int("n") } ?? 0
        let take = min(limit, queue.maxConcurrentRuns - Int(live))
        guard take > 0 else { return [] }
        let typeList = placeholders(types.count, from: 6)
        let rows = try db.query(
            """
            UPDATE workflow_runs SET status = 'running', lease_owner = $1, lease_until_ms = $2, executions = executions + 1,
                updated_at_ms = $3
            WHERE id IN (
                SELECT id FROM workflow_runs
                WHERE task_queue = $4 AND type IN (\(typeList)) AND (
                    (status IN ('pending', 'sleeping') AND due_at_ms <= $3) OR (status = 'running' AND lease_until_ms < $3))
                ORDER BY due_at_ms, id LIMIT $5 \(skipLocked))
            RETURNING \(runColumns)
            """,
            [.text(owner), .integer(nowMs + leaseMs), .integer(nowMs), .text(queue.name), .integer(Int64(take))]
                + types.map { .text($0) })
        return try rows.map(run(from:)).sorted { $0.id < $1.id }
    }

    /// FNV-1a, folded to a signed 64-bit advisory lock key.
    static func advisoryKey(_ text: String) -> Int64 {
        var hash: UInt64 = 0xcbf2_9ce4_8422_2325
        for byte in text.utf8 {
            hash ^= UInt64(byte)
            hash = hash &* 0x100_0000_01b3
        }
        return Int64(bitPattern: hash)
    }

    /// Throws `WorkflowHalt.lostLease` unless the run is still held by this claim (same worker,
    /// same execution number: a run taken again after its lease ran out, even by the same
    /// worker, fences off the older execution) and running. On PostgreSQL this also locks the
    /// run's row until the transaction ends.
    static func fence(_ db: any SQLConnection, id: String, lease: WorkflowLease, nowMs: Int64) throws {
        let changed = try db.execute(
            """
            UPDATE workflow_runs SET updated_at_ms = $3 WHERE id = $1 AND lease_owner = $2 AND executions = $4 AND status = 'running'
            """, [.text(id), .text(lease.owner), .integer(nowMs), .integer(Int64(lease.execution))])
        if changed == 0 { throw WorkflowHalt.lostLease }
    }

    static func steps(_ db: any SQLConnection, workflowID: String) throws -> [WorkflowStepRecord] {
        try db.query(
            """
            SELECT seq, kind, name, status, output, error_type, error, attempts, wake_at_ms, started_at_ms, finished_at_ms
            FROM workflow_steps WHERE workflow_id = $1 ORDER BY seq
            """, [.text(workflowID)]
        ).map { row in
            WorkflowStepRecord(
                seq: Int(try row.int("seq")), kind: try row.string("kind"), name: try row.string("name"),
                status: try row.string("status"), output: row["output"].isNull ? nil : try row.bytes("output"),
                errorType: try row.optionalString("error_type"), error: try row.optionalString("error"),
                attempts: Int(try row.int("attempts")), wakeAtMs: try row.optionalInt("wake_at_ms"),
                startedAtMs: try row.int("started_at_ms"), finishedAtMs: try row.optionalInt("finished_at_ms"))
        }
    }

    /// Writes a step's record (insert or replace at its sequence number).
    static func saveStep(_ db: any SQLConnection, workflowID: String, _ step: WorkflowStepRecord) throws {
        try db.execute(
            """
            INSERT INTO workflow_steps (workflow_id, seq, kind, name, status, output, error_type, error, attempts, wake_at_ms,
                started_at_ms, finished_at_ms)
            VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)
            ON CONFLICT (workflow_id, seq) DO UPDATE SET status = excluded.status, output = excluded.output,
                error_type = excluded.error_type, error = excluded.error, attempts = excluded.attempts,
                wake_at_ms = excluded.wake_at_ms, finished_at_ms = excluded.finished_at_ms
            """,
            [
                .text(workflowID), .integer(Int64(step.seq)), .text(step.kind), .text(step.name), .text(step.status),
                optionalText(step.output), SQLValue(step.errorType), SQLValue(step.error.map { String($0.prefix(WorkflowLimits.maxErrorBytes)) }),
                .integer(Int64(step.attempts)), step.wakeAtMs.map { .integer($0) } ?? .null, .integer(step.startedAtMs),
                step.finishedAtMs.map { .integer($0) } ?? .null,
            ])
    }

    /// Parks a run until `dueAtMs` (nil: until woken). A wake that arrived while it ran
    /// (a signal, a finished child) makes it due at once.
    static func suspend(_ db: any SQLConnection, id: String, lease: WorkflowLease, dueAtMs: Int64?, seenWakeSeq: Int64, nowMs: Int64) throws {
        try db.execute(
            """
            UPDATE workflow_runs SET status = 'sleeping', lease_owner = NULL, lease_until_ms = NULL, updated_at_ms = $4,
                due_at_ms = CASE WHEN wake_seq <> $5 THEN CAST($4 AS BIGINT) ELSE CAST($3 AS BIGINT) END
            WHERE id = $1 AND lease_owner = $2 AND executions = $6 AND status = 'running'
            """,
            [
                .text(id), .text(lease.owner), dueAtMs.map { .integer($0) } ?? .null, .integer(nowMs), .integer(seenWakeSeq),
                .integer(Int64(lease.execution)),
            ])
    }

    /// Ends a run (completed or failed) if it is still ours; wakes its parent.
    @discardableResult
    static func finish(
        _ db: any SQLConnection, id: String, lease: WorkflowLease?, status: WorkflowStatus, output: [UInt8]?, error: String?,
        nowMs: Int64
    ) throws -> Bool {
        let ownerClause =
            lease == nil ? "status IN ('pending', 'running', 'sleeping')" : "lease_owner = $6 AND executions = $7 AND status = 'running'"
        var parameters: [SQLValue] = [
            .text(id), .text(status.rawValue), optionalText(output),
            SQLValue(error.map { String($0.prefix(WorkflowLimits.maxErrorBytes)) }), .integer(nowMs),
        ]
        if let lease { parameters += [.text(lease.owner), .integer(Int64(lease.execution))] }
        let changed = try db.execute(
            """
            UPDATE workflow_runs SET status = $2, output = $3, error = $4, finished_at_ms = $5, updated_at_ms = $5,
                lease_owner = NULL, lease_until_ms = NULL, due_at_ms = NULL
            WHERE id = $1 AND \(ownerClause)
            """, parameters)
        guard changed == 1 else { return false }
        if let parent = try db.queryOne("SELECT parent_id FROM workflow_runs WHERE id = $1", [.text(id)]),
            let parentID = try parent.optionalString("parent_id")
        {
            try wake(db, id: parentID, nowMs: nowMs)
        }
        return true
    }

    /// Makes a parked run due now, and tells a running one (through `wake_seq`) to look again
    /// before it parks.
    static func wake(_ db: any SQLConnection, id: String, nowMs: Int64) throws {
        try db.execute(
            """
            UPDATE workflow_runs SET wake_seq = wake_seq + 1,
                due_at_ms = CASE WHEN status = 'sleeping' THEN CAST($2 AS BIGINT) ELSE due_at_ms END
            WHERE id = $1 AND status IN ('pending', 'running', 'sleeping')
            """, [.text(id), .integer(nowMs)])
    }

    static func addSignal(_ db: any SQLConnection, id: String, name: String, payload: [UInt8], nowMs: Int64) throws {
        let waiting =
            try db.queryOne(
                "SELECT COUNT(*) AS n FROM workflow_signals WHERE workflow_id = $1 AND consumed_seq IS NULL",
                [.text(id)]
            ).map { try $0.int("n") } ?? 0
        guard waiting < WorkflowLimits.maxUnconsumedSignalsPerRun else {
            throw HostError(
                .badRequest,
                "workflow '\(id)' already holds \(waiting) signals it has not taken; at most \(WorkflowLimits.maxUnconsumedSignalsPerRun)")
        }
        try db.execute(
            "INSERT INTO workflow_signals (workflow_id, name, payload, created_at_ms) VALUES ($1, $2, $3, $4)",
            [.text(id), .text(name), text(payload), .integer(nowMs)])
        try wake(db, id: id, nowMs: nowMs)
    }

    /// Takes the oldest unconsumed signal named one of `names` for step `seq`.
    static func consumeSignal(_ db: any SQLConnection, id: String, names: [String], seq: Int) throws -> (name: String, payload: [UInt8])? {
        precondition(!names.isEmpty, "a signal wait names at least one signal")
        let nameList = placeholders(names.count, from: 2)
        guard
            let row = try db.queryOne(
                """
                SELECT id, name, payload FROM workflow_signals WHERE workflow_id = $1 AND name IN (\(nameList)) AND consumed_seq IS NULL
                ORDER BY id LIMIT 1
                """, [.text(id)] + names.map { .text($0) })
        else { return nil }
        try db.execute("UPDATE workflow_signals SET consumed_seq = $2 WHERE id = $1", [.integer(try row.int("id")), .integer(Int64(seq))])
        return (try row.string("name"), try row.bytes("payload"))
    }

    static func setState(_ db: any SQLConnection, id: String, key: String, value: [UInt8], nowMs: Int64) throws {
        try db.execute(
            """
            INSERT INTO workflow_state (workflow_id, state_key, value, updated_at_ms) VALUES ($1, $2, $3, $4)
            ON CONFLICT (workflow_id, state_key) DO UPDATE SET value = excluded.value, updated_at_ms = excluded.updated_at_ms
            """, [.text(id), .text(key), text(value), .integer(nowMs)])
    }

    static func state(_ db: any SQLConnection, id: String) throws -> [(key: String, value: [UInt8])] {
        try db.query("SELECT state_key, value FROM workflow_state WHERE workflow_id = $1 ORDER BY state_key", [.text(id)])
            .map { (try $0.string("state_key"), try $0.bytes("value")) }
    }

    /// Cancels a run that has not ended, and its unfinished descendants; returns the ids cancelled.
    static func cancel(_ db: any SQLConnection, id: String, nowMs: Int64) throws -> [String] {
        var cancelled: [String] = []
        var queue = [id]
        while let next = queue.popLast(), cancelled.count < WorkflowLimits.maxStepsPerRun {
            if try finish(db, id: next, lease: nil, status: .cancelled, output: nil, error: "cancelled", nowMs: nowMs) {
                cancelled.append(next)
            }
            queue += try db.query(
                """
                SELECT id FROM workflow_runs WHERE parent_id = $1 AND status IN ('pending', 'running', 'sleeping')
                """, [.text(next)]
            ).map { try $0.string("id") }
        }
        return cancelled
    }

    /// Extends the leases of every run this worker holds.
    static func renewLeases(_ db: any SQLConnection, owner: String, untilMs: Int64) throws {
        try db.execute(
            "UPDATE workflow_runs SET lease_until_ms = $2 WHERE lease_owner = $1 AND status = 'running'",
            [.text(owner), .integer(untilMs)])
    }

    /// Lets runs claimed by a process that died be claimed at once (the SQLite file has one owner).
    static func releaseAllLeases(_ db: any SQLConnection) throws {
        try db.execute("UPDATE workflow_runs SET lease_until_ms = 0 WHERE status = 'running'")
    }

    static func list(_ db: any SQLConnection, type: String?, status: WorkflowStatus?, limit: Int) throws -> [WorkflowRun] {
        var conditions: [String] = []
        var parameters: [SQLValue] = []
        if let type {
            parameters.append(.text(type))
            conditions.append("type = $\(parameters.count)")
        }
        if let status {
            parameters.append(.text(status.rawValue))
            conditions.append("status = $\(parameters.count)")
        }
        parameters.append(.integer(Int64(limit)))
        let whereClause = conditions.isEmpty ? "" : "WHERE " + conditions.joined(separator: " AND ")
        return try db.query(
            "SELECT \(runColumns) FROM workflow_runs \(whereClause) ORDER BY created_at_ms DESC, id LIMIT $\(parameters.count)",
            parameters
        ).map(run(from:))
    }

    static func children(_ db: any SQLConnection, parentID: String) throws -> [WorkflowRun] {
        try db.query(
            "SELECT \(runColumns) FROM workflow_runs WHERE parent_id = $1 ORDER BY created_at_ms, id",
            [.text(parentID)]
        ).map(run(from:))
    }

    static func counts(_ db: any SQLConnection) throws -> [String: Int] {
        var counts: [String: Int] = [:]
        for row in try db.query("SELECT status, COUNT(*) AS n FROM workflow_runs GROUP BY status") {
            counts[try row.string("status")] = Int(try row.int("n"))
        }
        return counts
    }
}
