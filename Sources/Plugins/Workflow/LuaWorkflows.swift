import BlockingPool
import Foundation
import Host
import Logging
import Lua
import SQL

/// A workflow written in Lua: a file at the top of `scripts_root` returning a table with a
/// `run(input)` function, and optionally `on` (event topics that start a run, one per event),
/// `match(event)` (a filter: only an event it returns true for starts a run) and `task_queue`.
/// Its workflow type is `script.<file name without .lua>`.
package struct LuaWorkflowScript: Sendable {
    package let path: String
    package let type: String
    package let topics: [String]
    package let taskQueue: String
    /// Whether the script exports `match(event)`.
    package let hasMatch: Bool

    package func handles(topic: String) -> Bool { topics.contains { EventSubscription.pattern($0, matches: topic) } }
}

/// The scripts of one directory: every file (for `require`), the scripts that loaded, and
/// the ones refused with `file:line: reason`.
package struct LuaScriptSet: Sendable {
    package let files: [PolicyFile]
    package let scripts: [LuaWorkflowScript]
    package let errors: [String]
    /// The first 12 hex digits of SHA-256 over every file's path and text.
    package let version: String

    package init(files: [PolicyFile], scripts: [LuaWorkflowScript], errors: [String]) {
        self.files = files
        self.scripts = scripts
        self.errors = errors
        version = policyVersion(of: files)
    }

    package static let empty = LuaScriptSet(files: [], scripts: [], errors: [])
}

/// Limits of one run of a script from the top.
package enum LuaWorkflowLimits {
    package static let stateMemoryBytes = 64 << 20
    package static let driveInstructions: Int64 = 50_000_000
    package static let driveWallClockNanoseconds: Int64 = 2_000_000_000
    /// Script runs executing at once per process.
    package static let driveThreads = 4
}

enum LuaWorkflows {
    /// Reads and checks the scripts under `root` (a missing directory has none). Files under
    /// `lib/` are only for `require`.
    static func load(root: String) -> LuaScriptSet {
        var isDirectory: ObjCBool = false
        guard FileManager.default.fileExists(atPath: root, isDirectory: &isDirectory), isDirectory.boolValue else { return .empty }
        let files: [PolicyFile]
        do {
            files = try DirectoryPolicySource(root: root).read()
        } catch {
            return LuaScriptSet(files: [], scripts: [], errors: ["\(error)"])
        }
        var scripts: [LuaWorkflowScript] = []
        var errors: [String] = []
        for file in files where !file.path.contains("/") {
            let stem = String(file.path.dropLast(".lua".count))
            let type = "script." + stem
            do {
                guard WorkflowNames.isValid(type), !stem.contains(":") else {
                    throw HostError(.badConfiguration, "\(file.path): bad script file name")
                }
                let state = try makeState(files)
                let shape = try state.call("__tenki_workflow_inspect", [.string(file.path)]).first ?? .nil
                if let error = shape["error"].stringValue { throw HostError(.badConfiguration, "\(file.path): \(error)") }
                var topics: [String] = []
                switch shape["on"] {
                case .nil: break
                case .table(let table) where table.fieldPairs.isEmpty && table.array.allSatisfy({ $0.stringValue != nil }):
                    topics = table.array.compactMap(\.stringValue)
                default: throw HostError(.badConfiguration, "\(file.path): 'on' must be a list of event topics, e.g. {\"workflow_job.queued\"}")
                }
                var queue = WorkflowTaskQueue.defaultName
                if !shape["task_queue"].isNil {
                    guard let name = shape["task_queue"].stringValue, WorkflowNames.isValid(name) else {
                        throw HostError(.badConfiguration, "\(file.path): 'task_queue' must be a name without spaces")
                    }
                    queue = name
                }
                scripts.append(LuaWorkflowScript(path: file.path, type: type, topics: topics, taskQueue: queue, hasMatch: shape["match"] == true))
            } catch let error as HostError {
                errors.append(error.message)
            } catch {
                let text = "\(error)"  // a Lua error already reads `file:line: reason`
                errors.append(text.hasPrefix(file.path + ":") ? text : "\(file.path): \(text)")
            }
        }
        return LuaScriptSet(files: files, scripts: scripts, errors: errors)
    }

    /// A sandboxed state (the policies' allow-list, `workflow`, and the plugins' script
    /// functions) with every file loaded.
    static func makeState(_ files: [PolicyFile], functions: [LuaHostFunction] = []) throws -> LuaState {
        let state = try LuaState(sandboxed: true)
        try state.openMoneyAndDate()
        try state.run(PolicyPrelude.source, chunkName: "=prelude")
        try state.run(LuaWorkflowPrelude.source, chunkName: "=workflow-prelude")
        LuaHostFunction.install(functions, into: state, readOnlyOnly: false)
        for module in Set(functions.map(\.module)).sorted() where module != "workflow" {
            try state.call("__tenki_allow_global", [.string(module)])
        }
        for file in files { try state.call("__tenki_add_source", [.string(file.path), .string(file.source)]) }
        state.limits = LuaLimits(
            memoryBytes: LuaWorkflowLimits.stateMemoryBytes, instructions: LuaWorkflowLimits.driveInstructions,
            wallClockNanoseconds: LuaWorkflowLimits.driveWallClockNanoseconds)
        return state
    }

    /// Threads of our own for script runs: Lua work (and any blocking host function it calls)
    /// never occupies the cooperative pool, and each state lives on one thread, start to end.
    static let pool = BlockingThreadPool(name: "tenki-lua-workflow", maxThreads: LuaWorkflowLimits.driveThreads)

    /// Runs the script from the top in a fresh state, on one pool thread, start to end.
    static func drive(
        _ script: LuaWorkflowScript, _ files: [PolicyFile], functions: [LuaHostFunction], input: LuaValue, answers: [LuaValue],
        executeAt: Int
    ) async throws -> LuaValue {
        try await pool.run {
            let state = try makeState(files, functions: functions)
            return try state.call(
                "__tenki_workflow_drive",
                [
                    .string(script.path), input, .table(LuaTable(array: answers)),
                    .integer(Int64(executeAt)),
                ]
            ).first ?? .nil
        }
    }

    static func bytes(_ value: LuaValue) -> [UInt8] { Array(LuaJSON.text(value).utf8) }
    static func lua(_ bytes: [UInt8]?) throws -> LuaValue {
        guard let bytes else { return .nil }
        return try LuaJSON.value(fromJSON: String(decoding: bytes, as: UTF8.self))
    }

    static func answer(value: LuaValue) -> LuaValue { .table(LuaTable(fields: value.isNil ? [:] : ["value": value])) }
    static func answer(error: String) -> LuaValue { .table(LuaTable(fields: ["error": .string(error)])) }

    static func seconds(_ value: LuaValue) -> Duration? {
        switch value {
        case .integer(let i): return .milliseconds(i * 1000)
        case .number(let d): return .milliseconds(Int64(d * 1000))
        default: return nil
        }
    }

    static func retryPolicy(_ value: LuaValue, step: String) throws -> WorkflowRetryPolicy {
        guard case .table = value else { return .default }
        func bad(_ field: String, _ expected: String) -> HostError {
            HostError(.badRequest, "workflow.step '\(step)': retry.\(field) must be \(expected)")
        }
        var policy = WorkflowRetryPolicy.default
        if !value["maximum_attempts"].isNil {
            guard let n = value["maximum_attempts"].integerValue, n >= 1, n <= WorkflowLimits.maxStepAttempts else {
                throw bad("maximum_attempts", "an integer within 1...\(WorkflowLimits.maxStepAttempts)")
            }
            policy.maximumAttempts = Int(n)
        }
        if !value["initial_interval"].isNil {
            guard let d = seconds(value["initial_interval"]), d > .zero else { throw bad("initial_interval", "seconds > 0") }
            policy.initialInterval = d
        }
        if !value["maximum_interval"].isNil {
            guard let d = seconds(value["maximum_interval"]), d > .zero else { throw bad("maximum_interval", "seconds > 0") }
            policy.maximumInterval = d
        }
        if !value["backoff_coefficient"].isNil {
            let c: Double?
            switch value["backoff_coefficient"] {
            case .integer(let i): c = Double(i)
            case .number(let d): c = d
            default: c = nil
            }
            guard let c, c >= 1 else { throw bad("backoff_coefficient", "a number >= 1") }
            policy.backoffCoefficient = c
        }
        if case .table(let types) = value["non_retryable_error_types"] {
            policy.nonRetryableErrorTypes = types.array.compactMap(\.stringValue)
        }
        return policy
    }

    /// The workflow definitions of a set's scripts.
    static func definitions(_ set: LuaScriptSet, catalog: WorkflowCatalog?) -> [WorkflowDefinition] {
        set.scripts.map { definition($0, files: set.files, catalog: catalog) }
    }

    /// The workflow definition of a script: replays the script, performing each new durable
    /// call through the context. Host functions come from `catalog` when the run executes.
    static func definition(_ script: LuaWorkflowScript, files: [PolicyFile], catalog: WorkflowCatalog? = nil) -> WorkflowDefinition {
        WorkflowDefinition(type: script.type, taskQueue: script.taskQueue) { (ctx, input: JSONValue) -> JSONValue in
            let inputValue = try lua(try WorkflowJSON.encode(input))
            let functions = catalog?.scriptFunctions ?? []
            var answers: [LuaValue] = []
            for _ in 0...WorkflowLimits.maxStepsPerRun {
                let done = answers
                let result = try await drive(script, files, functions: functions, input: inputValue, answers: done, executeAt: 0)
                if result["done"] == true {
                    return try WorkflowJSON.decode(JSONValue.self, from: bytes(result["value"]), what: "the script's result")
                }
                if let failed = result["failed"].stringValue { throw WorkflowApplicationError(type: "LuaError", failed, nonRetryable: true) }
                let request = result["need"]
                let op = request["op"].stringValue ?? "?"
                switch op {
                case "step":
                    let name = request["name"].stringValue ?? "?"
                    let k = done.count + 1
                    do {
                        let output = try await ctx.stepJSON(name, retry: try retryPolicy(request["retry"], step: name), timeout: nil) {
                            let executed = try await drive(script, files, functions: functions, input: inputValue, answers: done, executeAt: k)
                            guard executed["executed"] == true else {
                                throw WorkflowApplicationError(
                                    type: "LuaError", executed["failed"].stringValue ?? "the script did not reach step '\(name)' again",
                                    nonRetryable: true)
                            }
                            if executed["ok"] == true { return bytes(executed["value"]) }
                            throw WorkflowApplicationError(type: "LuaError", executed["value"].stringValue ?? "error")
                        }
                        answers.append(answer(value: try lua(output)))
                    } catch let failed as WorkflowStepFailed {
                        answers.append(answer(error: failed.description))
                    }
                case "sleep":
                    guard let duration = seconds(request["seconds"]) else { throw HostError(.badRequest, "workflow.sleep: bad seconds") }
                    try await ctx.sleep(duration, name: "sleep")
                    answers.append(answer(value: .nil))
                case "signal":
                    let payload = try await ctx.signalJSON(request["name"].stringValue ?? "?", timeout: seconds(request["timeout"]))
                    answers.append(answer(value: try lua(payload)))
                case "child":
                    do {
                        let id = try await ctx.startChildJSON(
                            type: request["type"].stringValue ?? "?", id: request["id"].stringValue,
                            input: bytes(request["input"]))
                        answers.append(answer(value: try lua(try await ctx.childResultJSON(id: id))))
                    } catch let failed as WorkflowChildFailed {
                        answers.append(answer(error: failed.description))
                    }
                case "start", "send_signal":
                    answers.append(answer(value: try lua(try await startOrSignal(op, request, call: done.count + 1, ctx))))
                case "continue_as_new":
                    try await ctx.continueAsNewJSON(bytes(request["input"]))
                case "state":
                    try await ctx.setStateJSON(request["key"].stringValue ?? "?", bytes(request["value"]))
                    answers.append(answer(value: .nil))
                case "now":
                    answers.append(answer(value: .integer(Int64(try await ctx.now().timeIntervalSince1970))))
                default:
                    throw WorkflowApplicationError(type: "LuaError", "\(script.path): unknown durable call '\(op)'", nonRetryable: true)
                }
            }
            throw WorkflowApplicationError(
                type: "LuaError", "\(script.path): more than \(WorkflowLimits.maxStepsPerRun) durable calls", nonRetryable: true)
        }
    }

    /// `workflow.start` or `workflow.send_signal`: another run started or signalled in a step of
    /// this one (the `call`-th durable call), so a replay does it once.
    static func startOrSignal(_ op: String, _ request: LuaValue, call k: Int, _ ctx: any WorkflowContext) async throws -> [UInt8] {
        let client = ctx.client
        return try await ctx.stepJSON("\(op)#\(k)", retry: .default, timeout: nil) {
            if op == "start" {
                let type = request["type"].stringValue ?? "?"
                // Derived from this run and call when not given, so a replay starts nothing new.
                let run = ctx.runNumber == 1 ? "" : "/run-\(ctx.runNumber)"
                let id = request["id"].stringValue ?? "\(ctx.workflowID)\(run)/start#\(k)"
                return bytes(.string(try await client.startWorkflow(type: type, input: bytes(request["input"]), id: id)))
            }
            try await client.signalWorkflow(
                id: request["id"].stringValue ?? "?", name: request["name"].stringValue ?? "?", payload: bytes(request["payload"]))
            return bytes(.nil)
        }
    }

    /// A run's input for an event: `{payload=..., topic=..., source=..., source_id=...}` as JSON.
    static func input(of event: Event) -> [UInt8] {
        var input = Array(#"{"payload":"#.utf8)
        if event.payload.count <= WorkflowLimits.maxPayloadBytes - 1024, !event.payload.isEmpty {
            input += event.payload
        } else {
            input += Array("null".utf8)
        }
        let source = JSONScanner.quote(event.source)
        let sourceID = JSONScanner.quote(event.sourceID)
        input += Array(#","source":\#(source),"source_id":\#(sourceID),"topic":\#(JSONScanner.quote(event.topic))}"#.utf8)
        return input
    }

    /// Calls the script's `match(event)` in a fresh sandboxed state with the runs' budgets, on
    /// the scripts' own threads.
    static func matches(_ script: LuaWorkflowScript, _ files: [PolicyFile], functions: [LuaHostFunction], event: LuaValue) async throws -> Bool {
        try await pool.run {
            let state = try makeState(files, functions: functions)
            return try state.call("__tenki_workflow_match", [.string(script.path), event]).first == true
        }
    }

    /// The one subscription of every script: for each event it consults the scripts serving
    /// now (`current`, swapped by reloads) and starts one run per script whose `on` has the
    /// topic and whose `match` (if any) returns true. Run id `<type>:<event source id>` (a
    /// GitHub delivery id), so a redelivery, or this handler running again after a crash,
    /// starts nothing new. An error in `match` is logged and starts nothing for that script;
    /// the event is not retried for it (the same script would fail the same way). An event whose
    /// topic no serving script has in `on` is not taken by this subscriber at all.
    static func subscription(
        current: @escaping @Sendable () -> LuaScriptSet, database: any Database,
        functions: @escaping @Sendable () -> [LuaHostFunction], logger: Logger
    ) -> EventSubscription {
        EventSubscription(
            name: "workflow.scripts", topics: ["*"], wants: { topic in current().scripts.contains { $0.handles(topic: topic) } },
            handler: .async { event in
                let set = current()
                let candidates = set.scripts.filter { $0.handles(topic: event.topic) }
                guard !candidates.isEmpty else { return }
                let input = LuaWorkflows.input(of: event)
                var starting: [LuaWorkflowScript] = []
                for script in candidates {
                    guard script.hasMatch else {
                        starting.append(script)
                        continue
                    }
                    do {
                        if try await matches(script, set.files, functions: functions(), event: try lua(input)) { starting.append(script) }
                    } catch {
                        logger.error(
                            "workflow script match failed; no run started",
                            metadata: [
                                "script": .string(script.path), "event": .stringConvertible(event.id), "topic": .string(event.topic),
                                "error": .string("\(error)"),
                            ])
                    }
                }
                guard !starting.isEmpty else { return }
                try await database.transaction { db in
                    let nowMs = Timestamp.ms(Date())
                    for script in starting {
                        let id = script.type + ":" + event.sourceID
                        _ = try WorkflowStore.start(
                            db, id: String(id.prefix(WorkflowLimits.maxNameBytes)), type: script.type,
                            taskQueue: script.taskQueue, input: input, parentID: nil, deadlineAtMs: nil, nowMs: nowMs)
                    }
                }
            })
    }
}
