import Foundation
import SQL

/// What a workflow function is given: every durable operation goes through it. A workflow
/// function runs again from the top after a crash, a sleep or a wait; each call here has a
/// sequence number, and a call already recorded returns its recorded result without running
/// again (DBOS-style step memoisation). The code must therefore ask for the same calls in the
/// same order on every run: a different name at a recorded sequence number fails the workflow.
///
/// Implemented by the workflow plugin; these byte-level requirements carry JSON, and the
/// extension below offers them with `Codable` values.
package protocol WorkflowContext: AnyObject, Sendable {
    var workflowID: String { get }
    var workflowType: String { get }
    /// How many times the workflow function has been started under this workflow id (1 on the
    /// first; it keeps counting across continue-as-new, as it fences older executions off).
    var execution: Int { get }
    /// Which run of this workflow id this is: 1, then one more after each continue-as-new or
    /// each start after an earlier run ended.
    var runNumber: Int { get }
    /// The engine running this workflow, to start or signal other workflows from inside a step
    /// (a step may run again after a crash: pass ids that make the call idempotent).
    var client: any WorkflowClient { get }

    /// Runs `body` once (at least once if the process dies while it runs), retrying failures
    /// by `retry`, and records its result.
    func stepJSON(
        _ name: String, retry: WorkflowRetryPolicy, timeout: Duration?,
        _ body: @escaping @Sendable () async throws -> [UInt8]
    ) async throws -> [UInt8]
    /// Runs `body` inside the database transaction that records the step: its writes happen
    /// exactly once. A failed attempt rolls back and is retried by `retry`.
    func transactionJSON(
        _ name: String, retry: WorkflowRetryPolicy,
        _ body: @escaping (any SQLConnection) throws -> [UInt8]
    ) async throws -> [UInt8]
    /// A durable timer: the run is parked (no task, no lease) until it is due.
    func sleep(_ duration: Duration, name: String) async throws
    /// The oldest unconsumed signal `name` sent to this run; nil when `timeout` passes first.
    func signalJSON(_ name: String, timeout: Duration?) async throws -> [UInt8]?
    /// The oldest unconsumed signal whose name is one of `names` (arrival order across them) and
    /// its name; nil when `timeout` passes first. Temporal's selector over signal channels.
    func signalJSON(anyOf names: [String], timeout: Duration?) async throws -> (name: String, payload: [UInt8])?
    /// Ends this run and starts the workflow again under the same id with `input` and an empty
    /// history (Temporal's continue-as-new): signals this run has not taken are kept for the new
    /// one, children it leaves unfinished are cancelled. Never returns.
    func continueAsNewJSON(_ input: [UInt8]) async throws -> Never
    /// Starts a child run (idempotent by id; nil id derives one from this run) and returns its id.
    func startChildJSON(type: String, id: String?, input: [UInt8]) async throws -> String
    /// Waits for a child started with `startChildJSON`; throws `WorkflowChildFailed` if it failed.
    func childResultJSON(id: String) async throws -> [UInt8]
    /// Publishes a value under `key` that `tenki workflow query` and `GET /workflows/{id}/state` read.
    func setStateJSON(_ key: String, _ value: [UInt8]) async throws
    /// The time, recorded once per call site (workflow code must not read the clock itself).
    func now() async throws -> Date
}

extension WorkflowContext {
    package func step<T: Codable & Sendable>(
        _ name: String, retry: WorkflowRetryPolicy = .default, timeout: Duration? = nil,
        _ body: @escaping @Sendable () async throws -> T
    ) async throws -> T {
        let bytes = try await stepJSON(name, retry: retry, timeout: timeout) { try WorkflowJSON.encode(try await body()) }
        return try WorkflowJSON.decode(T.self, from: bytes, what: "the result of step '\(name)'")
    }

    /// One attempt unless `retry` says more (unlike `step`, whose default retries).
    package func transaction<T: Codable>(
        _ name: String, retry: WorkflowRetryPolicy = .none,
        _ body: @escaping (any SQLConnection) throws -> T
    ) async throws -> T {
        let bytes = try await transactionJSON(name, retry: retry) { db in try WorkflowJSON.encode(try body(db)) }
        return try WorkflowJSON.decode(T.self, from: bytes, what: "the result of transaction '\(name)'")
    }

    package func sleep(_ duration: Duration) async throws { try await sleep(duration, name: "sleep") }

    package func signal<T: Decodable>(_ name: String, as type: T.Type = JSONValue.self, timeout: Duration? = nil) async throws -> T? {
        guard let bytes = try await signalJSON(name, timeout: timeout) else { return nil }
        return try WorkflowJSON.decode(T.self, from: bytes, what: "signal '\(name)'")
    }

    package func signal<T: Decodable>(
        anyOf names: [String], as type: T.Type = JSONValue.self,
        timeout: Duration? = nil
    ) async throws -> (name: String, value: T)? {
        guard let taken = try await signalJSON(anyOf: names, timeout: timeout) else { return nil }
        return (taken.name, try WorkflowJSON.decode(T.self, from: taken.payload, what: "signal '\(taken.name)'"))
    }

    package func continueAsNew<I: Encodable>(_ input: I) async throws -> Never {
        try await continueAsNewJSON(try WorkflowJSON.encode(input))
    }

    @discardableResult
    package func startChild<I: Encodable>(_ type: String, id: String? = nil, input: I) async throws -> String {
        try await startChildJSON(type: type, id: id, input: try WorkflowJSON.encode(input))
    }

    package func childResult<O: Decodable>(_ id: String, as type: O.Type = JSONValue.self) async throws -> O {
        try WorkflowJSON.decode(O.self, from: try await childResultJSON(id: id), what: "the result of child '\(id)'")
    }

    /// Starts a child and waits for its result.
    package func child<I: Encodable, O: Decodable>(_ type: String, id: String? = nil, input: I, as output: O.Type = JSONValue.self) async throws -> O
    {
        try await childResult(try await startChild(type, id: id, input: input), as: output)
    }

    /// Runs one child per input with at most `maxConcurrent` unfinished at a time; results in
    /// input order. A failed child throws `WorkflowChildFailed` once it is reached.
    package func children<I: Encodable, O: Decodable>(
        _ type: String, inputs: [(id: String?, input: I)], maxConcurrent: Int,
        as output: O.Type = JSONValue.self
    ) async throws -> [O] {
        guard maxConcurrent >= 1 && maxConcurrent <= WorkflowLimits.maxConcurrentChildren else {
            throw HostError(.badRequest, "children: maxConcurrent must be within 1...\(WorkflowLimits.maxConcurrentChildren); got \(maxConcurrent)")
        }
        var ids: [String] = []
        var results: [O] = []
        for (index, item) in inputs.enumerated() {
            if index >= maxConcurrent { results.append(try await childResult(ids[index - maxConcurrent], as: output)) }
            ids.append(try await startChild(type, id: item.id, input: item.input))
        }
        for id in ids.dropFirst(results.count) { results.append(try await childResult(id, as: output)) }
        return results
    }

    package func setState<T: Encodable>(_ key: String, _ value: T) async throws {
        try await setStateJSON(key, try WorkflowJSON.encode(value))
    }
}

/// Temporal's retry policy for a step: the wait before attempt n+1 is
/// `initialInterval × backoffCoefficient^(n-1)`, capped at `maximumInterval`.
package struct WorkflowRetryPolicy: Sendable, Equatable {
    package var initialInterval: Duration
    package var backoffCoefficient: Double
    /// nil: 100 × `initialInterval` (Temporal's default).
    package var maximumInterval: Duration?
    /// Attempts in all, the first included. Unlike Temporal (unlimited), bounded by default.
    package var maximumAttempts: Int
    /// Error types (`WorkflowApplicationError.type`, else the Swift type's name) not retried.
    package var nonRetryableErrorTypes: [String]

    package init(
        initialInterval: Duration = .seconds(1), backoffCoefficient: Double = 2, maximumInterval: Duration? = nil,
        maximumAttempts: Int = 10, nonRetryableErrorTypes: [String] = []
    ) {
        precondition(
            initialInterval > .zero && backoffCoefficient >= 1 && maximumAttempts >= 1
                && maximumAttempts <= WorkflowLimits.maxStepAttempts, "bad retry policy")
        self.initialInterval = initialInterval
        self.backoffCoefficient = backoffCoefficient
        self.maximumInterval = maximumInterval
        self.maximumAttempts = maximumAttempts
        self.nonRetryableErrorTypes = nonRetryableErrorTypes
    }

    package static let `default` = WorkflowRetryPolicy()
    /// One attempt only.
    package static let none = WorkflowRetryPolicy(maximumAttempts: 1)

    /// Milliseconds to wait after failed attempt `attempt` (1-based).
    package func delayMilliseconds(afterAttempt attempt: Int) -> Int64 {
        let initial = Double(WorkflowDurations.milliseconds(initialInterval))
        let cap = Double(maximumInterval.map(WorkflowDurations.milliseconds) ?? Int64(initial * 100))
        let delay = initial * pow(backoffCoefficient, Double(max(0, attempt - 1)))
        return Int64(min(delay, cap).rounded())
    }

    package func retries(errorType: String, attempt: Int) -> Bool {
        attempt < maximumAttempts && !nonRetryableErrorTypes.contains(errorType)
    }
}

/// An error with a type name of the workflow author's choosing (Temporal's ApplicationFailure):
/// `nonRetryable` stops retries whatever the policy says.
package struct WorkflowApplicationError: Error, CustomStringConvertible, Sendable {
    package let type: String
    package let message: String
    package let nonRetryable: Bool

    package init(type: String, _ message: String, nonRetryable: Bool = false) {
        self.type = type
        self.message = message
        self.nonRetryable = nonRetryable
    }

    package var description: String { "\(type): \(message)" }
}

/// A step that failed for good (attempts exhausted or not retryable), as the workflow sees it.
package struct WorkflowStepFailed: Error, CustomStringConvertible, Sendable {
    package let step: String
    package let errorType: String
    package let message: String
    package let attempts: Int

    package init(step: String, errorType: String, message: String, attempts: Int) {
        self.step = step
        self.errorType = errorType
        self.message = message
        self.attempts = attempts
    }

    package var description: String { "step '\(step)' failed after \(attempts) attempt(s): \(errorType): \(message)" }
}

/// A child's id is taken by a run that is not a child of the caller (another parent's, or one
/// started on its own): nothing was started. A parent may catch it and look that run up.
package struct WorkflowChildIDTaken: Error, CustomStringConvertible, Sendable {
    package let childID: String
    package let parentID: String

    package init(childID: String, parentID: String) {
        self.childID = childID
        self.parentID = parentID
    }

    package var description: String { "child workflow id '\(childID)' is already used by a run that is not a child of \(parentID)" }
}

/// A child run that ended failed or cancelled.
package struct WorkflowChildFailed: Error, CustomStringConvertible, Sendable {
    package let childID: String
    package let status: String
    package let message: String

    package init(childID: String, status: String, message: String) {
        self.childID = childID
        self.status = status
        self.message = message
    }

    package var description: String { "child workflow '\(childID)' \(status): \(message)" }
}

/// One workflow type: its name, the task queue its runs go to by default, an optional
/// run timeout, and the function.
package struct WorkflowDefinition: Sendable {
    package let type: String
    package let taskQueue: String
    package let timeout: Duration?
    package let run: @Sendable (any WorkflowContext, [UInt8]) async throws -> [UInt8]

    /// A workflow whose input is any JSON.
    package init<Output: Encodable>(
        type: String, taskQueue: String = WorkflowTaskQueue.defaultName, timeout: Duration? = nil,
        _ body: @escaping @Sendable (any WorkflowContext, JSONValue) async throws -> Output
    ) {
        self.init(type: type, taskQueue: taskQueue, timeout: timeout, input: JSONValue.self, body)
    }

    /// A workflow whose input decodes as `Input` (a run whose input does not decode fails).
    package init<Input: Decodable, Output: Encodable>(
        type: String, taskQueue: String = WorkflowTaskQueue.defaultName, timeout: Duration? = nil,
        input: Input.Type, _ body: @escaping @Sendable (any WorkflowContext, Input) async throws -> Output
    ) {
        precondition(WorkflowNames.isValid(type), "bad workflow type name '\(type)'")
        precondition(WorkflowNames.isValid(taskQueue), "bad task queue name '\(taskQueue)'")
        self.type = type
        self.taskQueue = taskQueue
        self.timeout = timeout
        self.run = { context, bytes in
            let value = try WorkflowJSON.decode(Input.self, from: bytes, what: "the input of \(type)")
            return try WorkflowJSON.encode(try await body(context, value))
        }
    }
}

/// A task queue and how many of its runs may execute at once across every replica.
package struct WorkflowTaskQueue: Sendable, Equatable {
    package static let defaultName = "default"
    package let name: String
    package let maxConcurrentRuns: Int

    package init(_ name: String, maxConcurrentRuns: Int = WorkflowLimits.maxConcurrentRunsPerQueue) {
        precondition(WorkflowNames.isValid(name), "bad task queue name '\(name)'")
        precondition((1...WorkflowLimits.maxConcurrentRunsPerQueue).contains(maxConcurrentRuns), "bad maxConcurrentRuns")
        self.name = name
        self.maxConcurrentRuns = maxConcurrentRuns
    }
}

/// A cron schedule declared in code (`Plugin.workflowSchedules`): created when the workflow
/// plugin starts, and updated when its cron, type, input or queue change.
package struct WorkflowScheduleDefinition: Sendable {
    package let name: String
    /// Five fields, UTC (e.g. `0 3 1 * *`: 03:00 on the 1st of each month).
    package let cron: String
    package let type: String
    package let input: [UInt8]
    package let taskQueue: String?

    package init<I: Encodable>(name: String, cron: String, type: String, input: I, taskQueue: String? = nil) throws {
        self.name = name
        self.cron = cron
        self.type = type
        self.input = try WorkflowJSON.encode(input)
        self.taskQueue = taskQueue
    }
}

/// Every workflow type, task queue and schedule the plugins contribute (through
/// `Plugin.workflows`, `Plugin.workflowTaskQueues` and `Plugin.workflowSchedules`), filled once
/// by the host before anything runs; the Lua scripts' `script.*` types are swapped by `replace`
/// when `scripts_root` changes.
/// Starting and signalling runs from anywhere in the host (scripts, other plugins); the workflow
/// plugin provides it.
package protocol WorkflowClient: Sendable {
    /// Starts a run (idempotent by id) and returns its id.
    func startWorkflow(type: String, input: [UInt8], id: String?) async throws -> String
    func signalWorkflow(id: String, name: String, payload: [UInt8]) async throws
    /// Where run `id` stands, if it exists: its status, its parent and (once it completed) its output.
    func runSummary(id: String) async throws -> WorkflowRunSummary?
    /// Signal-with-start inside the caller's transaction, so the signal is sent exactly when the
    /// caller's writes commit: starts run `id` of `type` with `input` unless one is under way (a
    /// run that ended is followed by a fresh one), then sends it signal `name`. A `requestID`
    /// this workflow id has already taken changes nothing (a redelivered webhook); returns
    /// false then.
    func signalWithStart(
        in db: any SQLConnection, type: String, id: String, input: [UInt8], signal name: String,
        payload: [UInt8], requestID: String?
    ) throws -> Bool
}

/// A run as another workflow or plugin sees it.
package struct WorkflowRunSummary: Codable, Sendable, Equatable {
    /// `pending`, `running`, `sleeping`, `completed`, `failed` or `cancelled`.
    package let status: String
    package let parentID: String?
    package let output: [UInt8]?

    package init(status: String, parentID: String?, output: [UInt8]?) {
        self.status = status
        self.parentID = parentID
        self.output = output
    }
}

/// Unchecked Sendable: its mutable state is touched only under `lock`.
package final class WorkflowCatalog: @unchecked Sendable {
    private let lock = NSLock()
    private var definitions: [String: WorkflowDefinition] = [:]
    private var declaredQueues: [String: WorkflowTaskQueue] = [:]
    private var declaredSchedules: [WorkflowScheduleDefinition] = []

    package init() {}

    package func register(_ schedule: WorkflowScheduleDefinition) {
        lock.withLock { declaredSchedules.append(schedule) }
    }

    package var schedules: [WorkflowScheduleDefinition] { lock.withLock { declaredSchedules } }

    private var functions: [LuaHostFunction] = []

    /// Lua functions the plugins offer to scripts (`ledger.balance`, ...), for Lua workflows.
    package func register(scriptFunctions: [LuaHostFunction]) {
        lock.withLock { functions += scriptFunctions }
    }

    package var scriptFunctions: [LuaHostFunction] { lock.withLock { functions } }

    package func register(_ definition: WorkflowDefinition) {
        lock.withLock {
            precondition(definitions[definition.type] == nil, "workflow type \(definition.type) registered twice")
            definitions[definition.type] = definition
        }
    }

    /// Swaps every type starting with `prefix` for `replacements` in one step (the Lua scripts
    /// after a reload): types no longer given are gone (and this process claims none of their runs).
    package func replace(prefix: String, with replacements: [WorkflowDefinition]) {
        lock.withLock {
            for type in definitions.keys where type.hasPrefix(prefix) { definitions[type] = nil }
            for definition in replacements {
                precondition(definition.type.hasPrefix(prefix), "workflow type \(definition.type) does not start with \(prefix)")
                precondition(definitions[definition.type] == nil, "workflow type \(definition.type) registered twice")
                definitions[definition.type] = definition
            }
        }
    }

    package func register(_ queue: WorkflowTaskQueue) {
        lock.withLock { declaredQueues[queue.name] = queue }
    }

    package func definition(_ type: String) -> WorkflowDefinition? { lock.withLock { definitions[type] } }
    package var types: [String] { lock.withLock { definitions.keys.sorted() } }

    /// Queues named by a definition or declared, with their limits (declared, else the maximum).
    package var queues: [WorkflowTaskQueue] {
        lock.withLock {
            var all = declaredQueues
            for definition in definitions.values where all[definition.taskQueue] == nil {
                all[definition.taskQueue] = WorkflowTaskQueue(definition.taskQueue)
            }
            return all.values.sorted { $0.name < $1.name }
        }
    }
}

/// Names of types, queues, steps and signals: 1–200 printable characters without spaces.
package enum WorkflowNames {
    package static func isValid(_ name: String) -> Bool {
        !name.isEmpty && name.utf8.count <= WorkflowLimits.maxNameBytes && name.unicodeScalars.allSatisfy { $0.value > 32 && $0.value != 127 }
    }
}

/// Every limit of workflows, with its unit in its name.
package enum WorkflowLimits {
    /// Longest workflow id, type, queue, step or signal name.
    package static let maxNameBytes = 200
    /// Largest input, output, step result or signal payload.
    package static let maxPayloadBytes = 1024 * 1024
    /// Recorded calls (steps, sleeps, signals, children) in one run.
    package static let maxStepsPerRun = 10_000
    package static let maxStepAttempts = 1_000
    /// Children a `children` fan-out keeps unfinished at once.
    package static let maxConcurrentChildren = 100
    /// Runs of one task queue executing at once, across replicas.
    package static let maxConcurrentRunsPerQueue = 256
    /// Runs one worker executes at once.
    package static let maxWorkerConcurrency = 64
    /// Runs a worker claims per poll.
    package static let claimBatchRuns = 32
    /// Stored error text.
    package static let maxErrorBytes = 4_000
    /// Signals kept for a run that has not taken them yet.
    package static let maxUnconsumedSignalsPerRun = 1_000
    /// How long a signal-with-start's request id is remembered (a redelivery within it is
    /// ignored); older ones are dropped when the workflow id begins its next run.
    package static let signalRequestRetentionMilliseconds: Int64 = 30 * 86_400_000
    /// Runs a list returns when it names no limit.
    package static let defaultListRuns = 100

    /// The relations between the limits; checked once when a host opens.
    package static func assertRelations() {
        precondition(claimBatchRuns <= maxWorkerConcurrency, "a worker claims no more runs than it can execute at once")
        precondition(maxWorkerConcurrency <= maxConcurrentRunsPerQueue, "one worker alone can fill a queue's limit")
        precondition(maxErrorBytes <= maxPayloadBytes, "an error fits where a payload does")
        precondition(defaultListRuns <= HostLimits.listMaxRows, "the default page is a page")
    }
}

package enum WorkflowDurations {
    package static func milliseconds(_ duration: Duration) -> Int64 {
        let (seconds, attoseconds) = duration.components
        return seconds * 1000 + attoseconds / 1_000_000_000_000_000
    }

    /// `90s`, `15m`, `3h`, `2d`, `500ms` or a plain number of seconds.
    package static func parse(_ text: String) -> Duration? {
        let units: [(String, Int64)] = [("ms", 1), ("s", 1000), ("m", 60_000), ("h", 3_600_000), ("d", 86_400_000)]
        for (suffix, factor) in units where text.hasSuffix(suffix) {
            if let n = Int64(text.dropLast(suffix.count)), n >= 0, n <= Int64.max / factor / 2 { return .milliseconds(n * factor) }
            return nil
        }
        return Int64(text).flatMap { $0 >= 0 ? .seconds($0) : nil }
    }
}
