import Foundation
import Host
import SQL

/// One execution of a run's workflow function: the `WorkflowContext` it is given. Calls are
/// numbered in order; a number with a recorded result returns it, a number without one does the
/// work and records it (fenced by the lease). Anything that must wait parks the run and ends
/// the execution; the next execution replays the recorded calls and carries on.
/// Unchecked Sendable: `recorded`, `seq` and `haltReason` are touched only under `lock`.
final class WorkflowExecution: WorkflowContext, @unchecked Sendable {
    let engine: WorkflowEngine
    let run: WorkflowRun
    private let lock = NSLock()
    private var recorded: [Int: WorkflowStepRecord]
    private var seq = 0
    private var haltReason: WorkflowHalt?

    init(engine: WorkflowEngine, run: WorkflowRun, recorded: [WorkflowStepRecord]) {
        self.engine = engine
        self.run = run
        self.recorded = Dictionary(uniqueKeysWithValues: recorded.map { ($0.seq, $0) })
    }

    var workflowID: String { run.id }
    var workflowType: String { run.type }
    var execution: Int { run.executions }
    var runNumber: Int { run.runNumber }
    /// Set when the execution must stop whatever the function does with the error.
    var halt: WorkflowHalt? { lock.withLock { haltReason } }

    private var database: any Database { engine.database }
    private var owner: String { engine.owner }
    private var nowMs: Int64 { engine.clock.nowMilliseconds() }

    private func stop(_ reason: WorkflowHalt) -> WorkflowHalt {
        lock.withLock {
            if haltReason == nil { haltReason = reason }
            return haltReason!
        }
    }

    /// Parks the run until `dueAtMs` (never past its deadline).
    private func suspend(until dueAtMs: Int64?) -> WorkflowHalt {
        var due = dueAtMs
        if let deadline = run.deadlineAtMs { due = min(due ?? deadline, deadline) }
        return stop(.suspended(dueAtMs: due))
    }

    /// The next sequence number and what is recorded there, checking the history matches.
    private func next(_ kind: String, _ name: String) throws -> (Int, WorkflowStepRecord?) {
        guard WorkflowNames.isValid(name) else { throw HostError(.badRequest, "bad \(kind) name '\(name)': 1-200 characters, no spaces") }
        return try lock.withLock {
            if let haltReason { throw haltReason }
            seq += 1
            if let deadline = run.deadlineAtMs, engine.clock.nowMilliseconds() >= deadline {
                haltReason = .timedOut("workflow timed out: its deadline \(Timestamp.iso(ms: deadline)) passed")
                throw haltReason!
            }
            guard seq <= WorkflowLimits.maxStepsPerRun else {
                haltReason = .nondeterminism("workflow made more than \(WorkflowLimits.maxStepsPerRun) durable calls")
                throw haltReason!
            }
            let record = recorded[seq]
            if let record, record.kind != kind || record.name != name {
                haltReason = .nondeterminism(
                    """
                    workflow \(run.id) (\(run.type)) asked for \(kind) '\(name)' as call \(seq), but its history has \
                    \(record.kind) '\(record.name)' there: the workflow's code changed while it ran, or it is not deterministic
                    """)
                throw haltReason!
            }
            return (seq, record)
        }
    }

    /// Runs `body` in a transaction that first checks the run is still ours.
    private func fenced<T>(_ body: @escaping (any SQLConnection, Int64) throws -> T) async throws -> T {
        let id = run.id
        let lease = WorkflowLease(owner: owner, execution: run.executions)
        let clock = engine.clock
        do {
            return try await database.transaction { db in
                let now = clock.nowMilliseconds()
                try WorkflowStore.fence(db, id: id, lease: lease, nowMs: now)
                return try body(db, now)
            }
        } catch WorkflowHalt.lostLease {
            throw stop(.lostLease)
        }
    }

    private func save(_ record: WorkflowStepRecord) async throws {
        let id = run.id
        try await fenced { db, _ in try WorkflowStore.saveStep(db, workflowID: id, record) }
    }

    private func checkSize(_ bytes: [UInt8], _ what: String) throws {
        guard bytes.count <= WorkflowLimits.maxPayloadBytes else {
            throw HostError(.badRequest, "\(what) is \(bytes.count) bytes; at most \(WorkflowLimits.maxPayloadBytes)")
        }
    }

    // MARK: WorkflowContext

    var client: any WorkflowClient { engine }

    func stepJSON(
        _ name: String, retry: WorkflowRetryPolicy, timeout: Duration?,
        _ body: @escaping @Sendable () async throws -> [UInt8]
    ) async throws -> [UInt8] {
        let (seq, record) = try next("step", name)
        if let output = try recordedAttempt(record, name) { return output }
        let attempt = (record?.attempts ?? 0) + 1
        let startedAt = record?.startedAtMs ?? nowMs
        do {
            let output = try await runWithTimeout(name, timeout, body)
            try checkSize(output, "the result of step '\(name)'")
            try await save(
                WorkflowStepRecord(
                    seq: seq, kind: "step", name: name, status: "completed", output: output, attempts: attempt,
                    startedAtMs: startedAt, finishedAtMs: nowMs))
            return output
        } catch let halt as WorkflowHalt {
            throw halt
        } catch {
            try await attemptFailed(error, seq: seq, kind: "step", name: name, retry: retry, attempt: attempt, startedAt: startedAt)
        }
    }

    /// What a recorded step or transaction says before another attempt: its result (completed),
    /// its failure (failed, thrown), a wait for its backoff (suspends), or nil: attempt it now.
    private func recordedAttempt(_ record: WorkflowStepRecord?, _ name: String) throws -> [UInt8]? {
        guard let record else { return nil }
        switch record.status {
        case "completed": return record.output ?? Array("null".utf8)
        case "failed":
            throw WorkflowStepFailed(step: name, errorType: record.errorType ?? "Error", message: record.error ?? "", attempts: record.attempts)
        default:
            if let wake = record.wakeAtMs, nowMs < wake { throw suspend(until: wake) }
            return nil
        }
    }

    /// Records a failed attempt: parked until its retry (by `retry`), or failed for good.
    private func attemptFailed(
        _ error: any Error, seq: Int, kind: String, name: String, retry: WorkflowRetryPolicy, attempt: Int,
        startedAt: Int64
    ) async throws -> Never {
        if let halt { throw halt }
        let (type, message) = WorkflowExecution.describe(error)
        let nonRetryable = (error as? WorkflowApplicationError)?.nonRetryable == true
        if !nonRetryable && retry.retries(errorType: type, attempt: attempt) {
            let wake = nowMs + retry.delayMilliseconds(afterAttempt: attempt)
            try await save(
                WorkflowStepRecord(
                    seq: seq, kind: kind, name: name, status: "retrying", errorType: type, error: message,
                    attempts: attempt, wakeAtMs: wake, startedAtMs: startedAt))
            throw suspend(until: wake)
        }
        try await save(
            WorkflowStepRecord(
                seq: seq, kind: kind, name: name, status: "failed", errorType: type, error: message,
                attempts: attempt, startedAtMs: startedAt, finishedAtMs: nowMs))
        throw WorkflowStepFailed(step: name, errorType: type, message: message, attempts: attempt)
    }

    /// Races the step against its start-to-close timeout on the engine's clock; a step that
    /// overruns is cancelled (and not waited for) and counts as a failed attempt.
    private func runWithTimeout(_ name: String, _ timeout: Duration?, _ body: @escaping @Sendable () async throws -> [UInt8]) async throws -> [UInt8]
    {
        guard let timeout else { return try await body() }
        let milliseconds = WorkflowDurations.milliseconds(timeout)
        let clock = engine.clock
        let once = OnceFlag()
        return try await withCheckedThrowingContinuation { continuation in
            let work = Task {
                let result: Result<[UInt8], any Error>
                do { result = .success(try await body()) } catch { result = .failure(error) }
                if once.claim() { continuation.resume(with: result) }
            }
            Task {
                try? await clock.sleep(milliseconds: milliseconds)
                if once.claim() {
                    work.cancel()
                    continuation.resume(throwing: WorkflowStepTimeout(step: name, milliseconds: milliseconds))
                }
            }
        }
    }

    func transactionJSON(
        _ name: String, retry: WorkflowRetryPolicy,
        _ body: @escaping (any SQLConnection) throws -> [UInt8]
    ) async throws -> [UInt8] {
        let (seq, record) = try next("transaction", name)
        if let output = try recordedAttempt(record, name) { return output }
        let attempt = (record?.attempts ?? 0) + 1
        let startedAt = record?.startedAtMs ?? nowMs
        let id = run.id
        do {
            return try await fenced { db, now in
                let output = try body(db)
                guard output.count <= WorkflowLimits.maxPayloadBytes else {
                    throw HostError(
                        .badRequest, "the result of transaction '\(name)' is \(output.count) bytes; at most \(WorkflowLimits.maxPayloadBytes)")
                }
                try WorkflowStore.saveStep(
                    db, workflowID: id,
                    WorkflowStepRecord(
                        seq: seq, kind: "transaction", name: name, status: "completed", output: output, attempts: attempt,
                        startedAtMs: startedAt, finishedAtMs: now))
                return output
            }
        } catch let halt as WorkflowHalt {
            throw halt
        } catch {
            // The failed attempt's writes rolled back with its transaction.
            try await attemptFailed(error, seq: seq, kind: "transaction", name: name, retry: retry, attempt: attempt, startedAt: startedAt)
        }
    }

    func sleep(_ duration: Duration, name: String) async throws {
        let (seq, record) = try next("sleep", name)
        if record?.status == "completed" { return }
        let now = nowMs
        let wake = record?.wakeAtMs ?? now + max(0, WorkflowDurations.milliseconds(duration))
        let done = now >= wake
        if record == nil || done {
            try await save(
                WorkflowStepRecord(
                    seq: seq, kind: "sleep", name: name, status: done ? "completed" : "waiting", attempts: 1,
                    wakeAtMs: wake, startedAtMs: record?.startedAtMs ?? now, finishedAtMs: done ? now : nil))
        }
        if !done { throw suspend(until: wake) }
    }

    private enum SignalOutcome { case received(String, [UInt8]), timedOut, wait(Int64?) }

    func signalJSON(_ name: String, timeout: Duration?) async throws -> [UInt8]? {
        let (seq, record) = try next("signal", name)
        if let record, record.status == "completed" { return record.output }
        return try await awaitSignal(seq: seq, record: record, recordName: name, names: [name], timeout: timeout) { $1 }?.payload
    }

    /// A wait for several names is recorded under the names joined by `|`, its output the
    /// envelope `{"name":…,"payload":…}` so a replay knows which one came.
    func signalJSON(anyOf names: [String], timeout: Duration?) async throws -> (name: String, payload: [UInt8])? {
        guard !names.isEmpty, names.allSatisfy(WorkflowNames.isValid) else { throw HostError(.badRequest, "bad signal names \(names)") }
        let recordName = names.joined(separator: "|")
        let (seq, record) = try next("signal", recordName)
        if let record, record.status == "completed" {
            guard let output = record.output else { return nil }
            let envelope = try WorkflowJSON.decode(SignalEnvelope.self, from: output, what: "recorded signal")
            return (envelope.name, try WorkflowJSON.encode(envelope.payload))
        }
        return try await awaitSignal(seq: seq, record: record, recordName: recordName, names: names, timeout: timeout) { name, payload in
            Array("{\"name\":".utf8) + (try WorkflowJSON.encode(name)) + Array(",\"payload\":".utf8) + payload + Array("}".utf8)
        }
    }

    private struct SignalEnvelope: Codable {
        let name: String
        let payload: JSONValue
    }

    /// Takes a signal named one of `names` for call `seq`, or parks the run until one comes (or
    /// the timeout); `recorded` turns what came into the step's recorded output.
    private func awaitSignal(
        seq: Int, record: WorkflowStepRecord?, recordName: String, names: [String], timeout: Duration?,
        recorded: @escaping (String, [UInt8]) throws -> [UInt8]
    ) async throws -> (name: String, payload: [UInt8])? {
        let id = run.id
        let wakeAt = record?.wakeAtMs ?? timeout.map { nowMs + max(0, WorkflowDurations.milliseconds($0)) }
        let startedAt = record?.startedAtMs ?? nowMs
        let outcome: SignalOutcome = try await fenced { db, now in
            var step = WorkflowStepRecord(
                seq: seq, kind: "signal", name: recordName, status: "waiting", attempts: 1, wakeAtMs: wakeAt,
                startedAtMs: startedAt)
            let result: SignalOutcome
            if let taken = try WorkflowStore.consumeSignal(db, id: id, names: names, seq: seq) {
                step.status = "completed"
                step.output = try recorded(taken.name, taken.payload)
                result = .received(taken.name, taken.payload)
            } else if let wakeAt, now >= wakeAt {
                step.status = "completed"
                step.error = "timed out"
                result = .timedOut
            } else {
                result = .wait(wakeAt)
            }
            if step.status == "completed" { step.finishedAtMs = now }
            if record == nil || step.status == "completed" { try WorkflowStore.saveStep(db, workflowID: id, step) }
            return result
        }
        switch outcome {
        case .received(let name, let payload): return (name, payload)
        case .timedOut: return nil
        case .wait(let due): throw suspend(until: due)
        }
    }

    func continueAsNewJSON(_ input: [UInt8]) async throws -> Never {
        try checkSize(input, "the input of continue-as-new")
        throw stop(.continuedAsNew(input))
    }

    func startChildJSON(type: String, id childID: String?, input: [UInt8]) async throws -> String {
        let (seq, record) = try next("child", type)
        if let record, let output = record.output {
            return try WorkflowJSON.decode(String.self, from: output, what: "child id")
        }
        guard let definition = engine.catalog.definition(type) else {
            throw HostError(
                .badRequest, "unknown workflow type '\(type)' for a child of \(run.id) (known: \(engine.catalog.types.joined(separator: ", ")))")
        }
        try checkSize(input, "the input of child \(type)")
        // Later runs of the id number their children apart from the earlier runs' ones.
        let id = childID ?? (run.runNumber == 1 ? "\(run.id).child-\(seq)" : "\(run.id).run-\(run.runNumber).child-\(seq)")
        guard WorkflowNames.isValid(id) else { throw HostError(.badRequest, "bad child workflow id '\(id)'") }
        let parentID = run.id
        return try await fenced { db, now in
            let started = try WorkflowStore.start(
                db, id: id, type: type, taskQueue: definition.taskQueue, input: input, parentID: parentID,
                deadlineAtMs: definition.timeout.map { now + WorkflowDurations.milliseconds($0) }, nowMs: now)
            guard started.run.parentID == parentID else {
                throw WorkflowChildIDTaken(childID: id, parentID: parentID)
            }
            try WorkflowStore.saveStep(
                db, workflowID: parentID,
                WorkflowStepRecord(
                    seq: seq, kind: "child", name: type, status: "completed", output: try WorkflowJSON.encode(id), attempts: 1,
                    startedAtMs: now, finishedAtMs: now))
            return id
        }
    }

    private enum ChildOutcome { case done([UInt8]), failed(String, String), wait }

    func childResultJSON(id childID: String) async throws -> [UInt8] {
        let (seq, record) = try next("child_result", childID)
        if let record {
            if record.status == "completed" { return record.output ?? Array("null".utf8) }
            if record.status == "failed" {
                throw WorkflowChildFailed(childID: childID, status: record.errorType ?? "failed", message: record.error ?? "")
            }
        }
        let parentID = run.id
        let outcome: ChildOutcome = try await fenced { db, now in
            guard let child = try WorkflowStore.load(db, id: childID) else {
                throw HostError(.notFound, "no child workflow '\(childID)' (start it with startChild first)")
            }
            var step = WorkflowStepRecord(seq: seq, kind: "child_result", name: childID, status: "waiting", attempts: 1, startedAtMs: now)
            let outcome: ChildOutcome
            switch child.status {
            case .completed:
                step.status = "completed"
                step.output = child.output
                outcome = .done(child.output ?? Array("null".utf8))
            case .failed, .cancelled:
                step.status = "failed"
                step.errorType = child.status.rawValue
                step.error = child.error
                outcome = .failed(child.status.rawValue, child.error ?? "")
            default:
                outcome = .wait
            }
            if step.status != "waiting" { step.finishedAtMs = now }
            if record == nil || step.status != "waiting" { try WorkflowStore.saveStep(db, workflowID: parentID, step) }
            return outcome
        }
        switch outcome {
        case .done(let output): return output
        case .failed(let status, let message): throw WorkflowChildFailed(childID: childID, status: status, message: message)
        case .wait: throw suspend(until: nil)
        }
    }

    func setStateJSON(_ key: String, _ value: [UInt8]) async throws {
        let (seq, record) = try next("state", key)
        if record != nil { return }
        try checkSize(value, "state '\(key)'")
        let id = run.id
        try await fenced { db, now in
            try WorkflowStore.setState(db, id: id, key: key, value: value, nowMs: now)
            try WorkflowStore.saveStep(
                db, workflowID: id,
                WorkflowStepRecord(
                    seq: seq, kind: "state", name: key, status: "completed", attempts: 1, startedAtMs: now, finishedAtMs: now))
        }
    }

    func now() async throws -> Date {
        let (seq, record) = try next("now", "now")
        let ms: Int64
        if let record, let output = record.output {
            ms = try WorkflowJSON.decode(Int64.self, from: output, what: "recorded time")
        } else {
            ms = nowMs
            try await save(
                WorkflowStepRecord(
                    seq: seq, kind: "now", name: "now", status: "completed", output: Array(String(ms).utf8),
                    attempts: 1, startedAtMs: ms, finishedAtMs: ms))
        }
        return Date(timeIntervalSince1970: Double(ms) / 1000)
    }

    /// An error's type (as retry policies name it) and message.
    static func describe(_ error: any Error) -> (type: String, message: String) {
        switch error {
        case let error as WorkflowApplicationError: return (error.type, error.message)
        case let error as WorkflowStepFailed: return ("WorkflowStepFailed", error.description)
        case let error as HostError: return ("HostError", error.message)
        default: return (String(describing: Swift.type(of: error)), "\(error)")
        }
    }
}

/// True for the first caller only.
/// Unchecked Sendable: `taken` is touched only under `lock`.
final class OnceFlag: @unchecked Sendable {
    private let lock = NSLock()
    private var taken = false
    func claim() -> Bool {
        lock.withLock {
            if taken { return false }
            taken = true
            return true
        }
    }
}
