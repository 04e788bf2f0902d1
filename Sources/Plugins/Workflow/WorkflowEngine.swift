import Foundation
import Host
import Logging
import SQL

/// Starts, signals, cancels and reads workflow runs, and executes them: claims runnable runs
/// of every known task queue under a lease and runs their workflow functions. Every process
/// has one; several processes on one PostgreSQL share the work.
package final class WorkflowEngine: Sendable {
    package let database: any Database
    package let catalog: WorkflowCatalog
    package let clock: any WorkflowClock
    /// This worker's lease owner id (unique per process).
    package let owner: String
    let leaseMs: Int64
    let concurrency: Int
    let logger: Logger
    /// Rung when local work becomes runnable (a start, a signal).
    let doorbell = Doorbell()

    package init(
        database: any Database, catalog: WorkflowCatalog, clock: any WorkflowClock = SystemWorkflowClock(),
        owner: String = "w" + String(UInt64.random(in: 0...UInt64.max), radix: 36), leaseSeconds: Int = 30,
        concurrency: Int = 8, logger: Logger = Logger(label: "tenki.workflow")
    ) {
        precondition((1...WorkflowLimits.maxWorkerConcurrency).contains(concurrency), "bad workflow concurrency")
        self.database = database
        self.catalog = catalog
        self.clock = clock
        self.owner = owner
        self.leaseMs = Int64(leaseSeconds) * 1000
        self.concurrency = concurrency
        self.logger = logger
    }

    // MARK: operators' verbs

    /// The run a start returned, and whether this start made it (false: the id existed).
    package struct Started: Sendable {
        package let run: WorkflowRun
        package let created: Bool
    }

    /// Starts a run of `type`. The id is an idempotency key: starting an existing id returns
    /// that run and changes nothing.
    package func start(type: String, input: [UInt8], id: String? = nil, taskQueue: String? = nil, timeout: Duration? = nil) async throws -> Started {
        let plan = try startPlan(type: type, input: input, id: id, taskQueue: taskQueue, timeout: timeout)
        let nowMs = clock.nowMilliseconds()
        let started = try await database.transaction { db in
            try WorkflowStore.start(
                db, id: plan.id, type: type, taskQueue: plan.queue, input: input, parentID: nil,
                deadlineAtMs: plan.timeoutMs.map { nowMs + $0 }, nowMs: nowMs)
        }
        if started.created { doorbell.ring() }
        return Started(run: started.run, created: started.created)
    }

    /// A start's queue, id and timeout, checked.
    struct StartPlan {
        let queue: String
        let id: String
        let timeoutMs: Int64?
    }

    func startPlan(type: String, input: [UInt8], id: String?, taskQueue: String?, timeout: Duration?) throws -> StartPlan {
        guard let definition = catalog.definition(type) else {
            throw HostError(.badRequest, "unknown workflow type '\(type)' (known: \(catalog.types.joined(separator: ", ")))")
        }
        let queue = taskQueue ?? definition.taskQueue
        guard catalog.queues.contains(where: { $0.name == queue }) else {
            throw HostError(.badRequest, "no worker takes task queue '\(queue)' (known: \(catalog.queues.map(\.name).joined(separator: ", ")))")
        }
        let id = id ?? UUID().uuidString.lowercased()
        guard WorkflowNames.isValid(id) else { throw HostError(.badRequest, "bad workflow id '\(id)': 1-200 characters, no spaces") }
        guard input.count <= WorkflowLimits.maxPayloadBytes else {
            throw HostError(.payloadTooLarge, "input is \(input.count) bytes; at most \(WorkflowLimits.maxPayloadBytes)")
        }
        let timeoutMs = (timeout ?? definition.timeout).map(WorkflowDurations.milliseconds)
        if let timeoutMs, timeoutMs <= 0 { throw HostError(.badRequest, "a workflow timeout must be positive") }
        return StartPlan(queue: queue, id: id, timeoutMs: timeoutMs)
    }

    package func start<I: Encodable>(
        type: String, input: I, id: String? = nil, taskQueue: String? = nil, timeout: Duration? = nil
    ) async throws -> Started {
        try await start(type: type, input: try WorkflowJSON.encode(input), id: id, taskQueue: taskQueue, timeout: timeout)
    }

    /// Sends signal `name` to a run that has not ended; it is kept until the run waits for it.
    package func signal(id: String, name: String, payload: [UInt8]) async throws {
        guard WorkflowNames.isValid(name) else { throw HostError(.badRequest, "bad signal name '\(name)'") }
        guard payload.count <= WorkflowLimits.maxPayloadBytes else {
            throw HostError(.payloadTooLarge, "signal is \(payload.count) bytes; at most \(WorkflowLimits.maxPayloadBytes)")
        }
        let nowMs = clock.nowMilliseconds()
        try await database.transaction { db in
            guard let run = try WorkflowStore.load(db, id: id) else { throw HostError(.notFound, "no workflow '\(id)'") }
            guard !run.status.isFinished else {
                throw HostError(.badRequest, "workflow '\(id)' is \(run.status.rawValue); only a run that has not ended takes signals")
            }
            try WorkflowStore.addSignal(db, id: id, name: name, payload: payload, nowMs: nowMs)
        }
        doorbell.ring()
    }

    /// Cancels a run and its unfinished children. A running execution stops at its next
    /// durable call. Returns the ids cancelled (empty when the run had already ended).
    @discardableResult
    package func cancel(id: String) async throws -> [String] {
        let nowMs = clock.nowMilliseconds()
        return try await database.transaction { db in
            guard try WorkflowStore.load(db, id: id) != nil else { throw HostError(.notFound, "no workflow '\(id)'") }
            return try WorkflowStore.cancel(db, id: id, nowMs: nowMs)
        }
    }

    package func run(id: String) async throws -> WorkflowRun {
        guard let run = try await database.read({ try WorkflowStore.load($0, id: id) }) else {
            throw HostError(.notFound, "no workflow '\(id)'")
        }
        return run
    }

    /// A run with its recorded calls, children and published state.
    package func describe(id: String) async throws -> WorkflowDescription {
        try await database.read { db in
            guard let run = try WorkflowStore.load(db, id: id) else { throw HostError(.notFound, "no workflow '\(id)'") }
            return WorkflowDescription(
                run: run, steps: try WorkflowStore.steps(db, workflowID: id),
                children: try WorkflowStore.children(db, parentID: id),
                state: try WorkflowStore.state(db, id: id).map { ($0.key, $0.value) })
        }
    }

    package func list(type: String? = nil, status: WorkflowStatus? = nil, limit: Int = WorkflowLimits.defaultListRuns) async throws -> [WorkflowRun] {
        let limit = max(1, min(limit, HostLimits.listMaxRows))
        return try await database.read { try WorkflowStore.list($0, type: type, status: status, limit: limit) }
    }

    package func counts() async throws -> [String: Int] { try await database.read { try WorkflowStore.counts($0) } }

    // MARK: execution

    /// Claims up to `limit` runnable runs across the known queues.
    func claim(limit: Int) async throws -> [WorkflowRun] {
        let queues = catalog.queues
        let types = catalog.types
        let owner = self.owner
        let leaseMs = self.leaseMs
        let nowMs = clock.nowMilliseconds()
        guard limit > 0 else { return [] }
        return try await database.transaction { db in
            var claimed: [WorkflowRun] = []
            for queue in queues where claimed.count < limit {
                claimed += try WorkflowStore.claim(
                    db, queue: queue, types: types, owner: owner, nowMs: nowMs, leaseMs: leaseMs,
                    limit: min(limit - claimed.count, WorkflowLimits.claimBatchRuns))
            }
            return claimed
        }
    }

    /// Claims what is runnable now (up to the concurrency) and executes it; returns how many
    /// executions ran. Tests call this with a manual clock instead of running the worker.
    @discardableResult
    package func runOnce() async throws -> Int {
        let claimed = try await claim(limit: concurrency)
        await withTaskGroup(of: Void.self) { group in
            for run in claimed { group.addTask { await self.execute(run) } }
        }
        return claimed.count
    }

    /// Runs `runOnce` until nothing is runnable at the clock's current time.
    @discardableResult
    package func drain(maxRounds: Int = 10_000) async throws -> Int {
        var total = 0
        for _ in 0..<maxRounds {
            let ran = try await runOnce()
            if ran == 0 { return total }
            total += ran
        }
        return total
    }

    /// One execution of a claimed run, to its end or its next wait.
    func execute(_ run: WorkflowRun) async {
        let owner = self.owner
        let clock = self.clock
        do {
            let nowMs = clock.nowMilliseconds()
            if let deadline = run.deadlineAtMs, nowMs >= deadline {
                try await finish(run, .failed, output: nil, error: "workflow timed out: its deadline \(Timestamp.iso(ms: deadline)) passed")
                return
            }
            guard let definition = catalog.definition(run.type) else {
                try await finish(run, .failed, output: nil, error: "unknown workflow type '\(run.type)'")
                return
            }
            let recorded = try await database.read { try WorkflowStore.steps($0, workflowID: run.id) }
            let context = WorkflowExecution(engine: self, run: run, recorded: recorded)
            let result: Result<[UInt8], any Error>
            do { result = .success(try await definition.run(context, run.input)) } catch { result = .failure(error) }
            switch (context.halt, result) {
            case (.suspended(let due)?, _):
                let id = run.id
                let seen = run.wakeSeq
                let lease = WorkflowLease(owner: owner, execution: run.executions)
                try await database.transaction { db in
                    try WorkflowStore.suspend(db, id: id, lease: lease, dueAtMs: due, seenWakeSeq: seen, nowMs: clock.nowMilliseconds())
                }
            case (.continuedAsNew(let input)?, _):
                try await continueAsNew(run, input: input)
            case (.lostLease?, _):
                logger.notice("workflow execution abandoned: no longer ours", metadata: ["workflow": .string(run.id)])
            case (let halt?, _):
                try await finish(run, .failed, output: nil, error: halt.description)
            case (nil, .success(let output)):
                if output.count > WorkflowLimits.maxPayloadBytes {
                    try await finish(run, .failed, output: nil, error: "output is \(output.count) bytes; at most \(WorkflowLimits.maxPayloadBytes)")
                } else {
                    try await finish(run, .completed, output: output, error: nil)
                }
            case (nil, .failure(let error)):
                let (type, message) = WorkflowExecution.describe(error)
                try await finish(
                    run, .failed, output: nil, error: type == "WorkflowStepFailed" || type == "HostError" ? message : "\(type): \(message)")
            }
        } catch {
            // The lease runs out and the run is taken again.
            logger.error("workflow execution failed to record", metadata: ["workflow": .string(run.id), "error": .string("\(error)")])
        }
    }

    private func finish(_ run: WorkflowRun, _ status: WorkflowStatus, output: [UInt8]?, error: String?) async throws {
        let lease = WorkflowLease(owner: owner, execution: run.executions)
        let nowMs = clock.nowMilliseconds()
        try await database.transaction { db in
            guard try WorkflowStore.finish(db, id: run.id, lease: lease, status: status, output: output, error: error, nowMs: nowMs) else { return }
            // As Temporal's default parent close policy: children a run leaves unfinished end with it.
            for child in try WorkflowStore.children(db, parentID: run.id) where !child.status.isFinished {
                _ = try WorkflowStore.cancel(db, id: child.id, nowMs: nowMs)
            }
        }
        if status == .failed {
            logger.warning("workflow failed", metadata: ["workflow": .string(run.id), "type": .string(run.type), "error": .string(error ?? "")])
        }
        if run.parentID != nil { doorbell.ring() }
    }
}

/// A run, its recorded calls, its children and its published state.
package struct WorkflowDescription: Sendable {
    package let run: WorkflowRun
    package let steps: [WorkflowStepRecord]
    package let children: [WorkflowRun]
    package let state: [(key: String, value: [UInt8])]
}

extension WorkflowEngine: WorkflowClient {
    package func startWorkflow(type: String, input: [UInt8], id: String?) async throws -> String {
        try await start(type: type, input: input, id: id).run.id
    }

    package func signalWorkflow(id: String, name: String, payload: [UInt8]) async throws {
        try await signal(id: id, name: name, payload: payload)
    }

    package func runSummary(id: String) async throws -> WorkflowRunSummary? {
        do {
            let run = try await run(id: id)
            return WorkflowRunSummary(status: run.status.rawValue, parentID: run.parentID, output: run.output)
        } catch let error as HostError where error.code == .notFound {
            return nil
        }
    }

    package func signalWithStart(
        in db: any SQLConnection, type: String, id: String, input: [UInt8], signal name: String,
        payload: [UInt8], requestID: String?
    ) throws -> Bool {
        try signalWithStart(in: db, type: type, input: input, id: id, signal: name, payload: payload, requestID: requestID)
    }
}
