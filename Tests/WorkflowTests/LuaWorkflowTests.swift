import Foundation
import Host
import Logging
import SQL
import TestSupport
import Testing

@testable import WorkflowPlugin

@Suite("Lua workflow scripts")
struct LuaWorkflowTests {
    static func scripts(_ files: [String: String]) throws -> LuaScriptSet {
        LuaWorkflows.load(root: try directory(files))
    }

    static func directory(_ files: [String: String]) throws -> String {
        let root = try TemporaryDirectory.make(prefix: "tenki-scripts")
        try write(files, under: root)
        return root
    }

    static func write(_ files: [String: String], under root: String) throws {
        for (path, source) in files {
            let full = root + "/" + path
            try FileManager.default.createDirectory(atPath: (full as NSString).deletingLastPathComponent, withIntermediateDirectories: true)
            try source.write(toFile: full, atomically: true, encoding: .utf8)
        }
    }

    static var quietLogger: Logger {
        var logger = Logger(label: "test")
        logger.logLevel = .critical
        return logger
    }

    /// An event bus with the scripts' one subscription, consulting `registry`.
    static func bus(_ h: WorkflowHarness, _ registry: LuaScriptRegistry) -> EventBus {
        var config = HostConfiguration()
        config.inboxPollIntervalMilliseconds = 20
        let bus = EventBus(database: h.database, configuration: config, logger: quietLogger)
        bus.subscribe(LuaWorkflows.subscription(current: { registry.current }, database: h.database, functions: { [] }, logger: quietLogger))
        return bus
    }

    static func publish(_ h: WorkflowHarness, _ topic: String, _ delivery: String, _ payload: String) async throws -> Int64 {
        try await h.database.transaction { db in
            try EventInbox.publish(in: db, topic: topic, source: "github", sourceID: delivery, payload: Array(payload.utf8))
        }
    }

    /// Runs started by events are due at the wall clock's now: moves the harness's clock past it.
    static func catchUp(_ h: WorkflowHarness) {
        h.clock.advance(by: .milliseconds(max(0, Timestamp.ms(Date()) - h.clock.nowMilliseconds()) + 60_000))
    }

    /// Waits (generously, polling) until `condition` holds; the caller then asserts it.
    static func eventually(_ condition: () -> Bool) async {
        let deadline = Date().addingTimeInterval(60)
        while !condition() && Date() < deadline { try? await Task.sleep(nanoseconds: 10_000_000) }
    }

    static let greet = """
        local util = require("lib.util")
        return {
          on = {"workflow_job.queued"},
          run = function(input)
            local n = workflow.step("double", function() return util.double(input.n or 1) end)
            workflow.sleep(60)
            local answer = workflow.signal("go", 30)
            local ok, err = pcall(workflow.step, "boom", function() error("kaput") end, {maximum_attempts = 1})
            workflow.set_state("phase", "done")
            return {n = n, answer = answer, boom = err}
          end,
        }
        """
    static let util = "return { double = function(x) return x * 2 end }"

    @Test("every shipped example script loads as a workflow with its events")
    func shippedExamples() throws {
        let directory = Fixtures.packageRoot + "/scripts/examples"
        let files = try FileManager.default.contentsOfDirectory(atPath: directory).filter { $0.hasSuffix(".lua") }.sorted()
        #expect(files.count >= 2)
        var sources: [String: String] = [:]
        for file in files { sources[file] = try String(contentsOfFile: directory + "/" + file, encoding: .utf8) }
        let set = try Self.scripts(sources)
        #expect(set.errors.isEmpty, "\(set.errors)")
        #expect(set.scripts.count == files.count)
        #expect(set.scripts.first { $0.type == "script.blocked_job_check_run" }?.topics == ["runner_job.blocked"])
    }

    @Test("a script's durable calls replay: steps once, sleep, signal, errors it may catch", arguments: DriverKind.allCases)
    func script(_ kind: DriverKind) async throws {
        let set = try Self.scripts(["greet.lua": Self.greet, "lib/util.lua": Self.util])
        #expect(set.errors.isEmpty && set.scripts.map(\.type) == ["script.greet"] && set.scripts[0].topics == ["workflow_job.queued"])
        let h = try await WorkflowHarness(kind, definitions: set.scripts.map { LuaWorkflows.definition($0, files: set.files) })
        let engine = h.engine()
        _ = try await engine.start(type: "script.greet", input: Array(#"{"n":21}"#.utf8), id: "g")
        try await engine.drain()
        #expect(try await engine.run(id: "g").status == .sleeping)
        h.clock.advance(by: .seconds(60))
        try await engine.drain()
        #expect(try await engine.run(id: "g").dueAtMs == h.clock.nowMilliseconds() + 30_000)
        try await engine.signal(id: "g", name: "go", payload: Array(#"{"by":"lua"}"#.utf8))
        try await engine.drain()
        let run = try await engine.run(id: "g")
        #expect(run.status == .completed, "\(run.error ?? "")")
        let output = try WorkflowJSON.decode(JSONValue.self, from: run.output ?? [], what: "output")
        #expect(output["n"] == .number(42) && output["answer"] == .object(["by": .string("lua")]))
        #expect(output["boom"]?.stringValue?.contains("step 'boom' failed after 1 attempt(s): LuaError: greet.lua:8: kaput") == true)
        let steps = try await engine.describe(id: "g").steps
        #expect(
            steps.map { "\($0.kind) \($0.name) \($0.attempts)" } == ["step double 1", "sleep sleep 1", "signal go 1", "step boom 1", "state phase 1"])
        await h.close()
    }

    @Test("a script continues as new: its next run starts from the input it handed over, with signals kept", arguments: DriverKind.allCases)
    func continueAsNew(_ kind: DriverKind) async throws {
        let set = try Self.scripts([
            "tally.lua": """
            return {
              run = function(input)
                local total = input.total or 0
                for _ = 1, 3 do
                  local n = workflow.signal("add")
                  if n == 0 then return total end
                  total = workflow.step("add", function() return total + n end)
                end
                workflow.continue_as_new({total = total})
              end,
            }
            """
        ])
        let h = try await WorkflowHarness(kind, definitions: set.scripts.map { LuaWorkflows.definition($0, files: set.files) })
        let engine = h.engine()
        _ = try await engine.start(type: "script.tally", input: Array("{}".utf8), id: "t")
        for n in 1...7 { try await engine.signal(id: "t", name: "add", payload: Array("\(n)".utf8)) }
        try await engine.drain()
        var run = try await engine.run(id: "t")
        #expect(run.runNumber == 3 && run.status == .sleeping, "\(run.error ?? "")")
        #expect(try WorkflowJSON.decode(JSONValue.self, from: run.input, what: "input")["total"] == .number(21))
        #expect(try await engine.describe(id: "t").steps.count == 3)  // signal, step, and the wait for the next
        try await engine.signal(id: "t", name: "add", payload: Array("0".utf8))
        try await engine.drain()
        run = try await engine.run(id: "t")
        #expect(run.status == .completed)
        #expect(try WorkflowJSON.decode(JSONValue.self, from: run.output ?? [], what: "output") == .number(28))
        await h.close()
    }

    @Test("a script starts another run and signals it, once each, however often it is replayed", arguments: DriverKind.allCases)
    func startAndSignal(_ kind: DriverKind) async throws {
        let set = try Self.scripts([
            "waiter.lua": "return { run = function(input) return { got = workflow.signal('go'), n = input.n } end }",
            "boss.lua": """
            return { run = function(input)
              local id = workflow.start("script.waiter", {n = 7})
              workflow.sleep(5)
              workflow.send_signal(id, "go", {from = "boss"})
              return {started = id}
            end }
            """,
        ])
        #expect(set.errors.isEmpty, "\(set.errors)")
        let h = try await WorkflowHarness(kind)
        set.scripts.map { LuaWorkflows.definition($0, files: set.files, catalog: h.catalog) }.forEach(h.catalog.register)
        let engine = h.engine()
        _ = try await engine.start(type: "script.boss", input: Array("{}".utf8), id: "boss")
        try await engine.drain()
        // Started, and waiting for its signal while the boss sleeps.
        let waiting = try await engine.run(id: "boss/start#1").status
        #expect(waiting != .completed && waiting != .failed)
        h.clock.advance(by: .seconds(5))
        try await engine.drain()
        let boss = try await engine.run(id: "boss")
        #expect(boss.status == .completed, "\(boss.error ?? "")")
        let waiter = try await engine.run(id: "boss/start#1")
        #expect(waiter.status == .completed, "\(waiter.error ?? "")")
        let output = try WorkflowJSON.decode(JSONValue.self, from: waiter.output ?? [], what: "output")
        #expect(output["n"] == .number(7) && output["got"] == .object(["from": .string("boss")]))
        #expect(try await engine.list(type: "script.waiter").count == 1)
        await h.close()
    }

    @Test("scripts call the plugins' Lua functions (inside steps)")
    func hostFunctions() async throws {
        let set = try Self.scripts([
            "sum.lua": """
            return { run = function(input) return workflow.step("add", function() return demo.add(input.a, input.b) end) end }
            """
        ])
        let h = try await WorkflowHarness(.sqlite)
        h.catalog.register(scriptFunctions: [
            LuaHostFunction(module: "demo", name: "add", readOnly: false) { arguments in
                [.integer((arguments[0].integerValue ?? 0) + (arguments[1].integerValue ?? 0))]
            }
        ])
        set.scripts.map { LuaWorkflows.definition($0, files: set.files, catalog: h.catalog) }.forEach(h.catalog.register)
        let engine = h.engine()
        _ = try await engine.start(type: "script.sum", input: Array(#"{"a":2,"b":40}"#.utf8), id: "sum")
        try await engine.drain()
        let run = try await engine.run(id: "sum")
        #expect(run.status == .completed && run.output == Array("42".utf8), "\(run.error ?? "")")
        await h.close()
    }

    @Test("a script that errors fails its run with file and line; bad scripts are refused at load")
    func errors() async throws {
        let set = try Self.scripts([
            "crash.lua": "return { run = function(input) local t = nil; return t.x end }",
            "syntax.lua": "return { run = function( end }",
            "norun.lua": "return { on = {'push'} }",
            "badon.lua": "return { on = 'push', run = function() end }",
            "badmatch.lua": "return { on = {'push'}, match = true, run = function() end }",
        ])
        #expect(set.scripts.map(\.type) == ["script.crash"])
        #expect(set.errors.contains { $0.contains("syntax.lua:1:") })
        #expect(set.errors.contains { $0.contains("norun.lua: a script must export a function 'run'") })
        #expect(set.errors.contains { $0.contains("badon.lua: 'on' must be a list of event topics") })
        #expect(set.errors.contains { $0.contains("badmatch.lua: 'match' must be a function(event)") })
        let h = try await WorkflowHarness(.sqlite, definitions: set.scripts.map { LuaWorkflows.definition($0, files: set.files) })
        let engine = h.engine()
        _ = try await engine.start(type: "script.crash", input: Array("{}".utf8), id: "c")
        try await engine.drain()
        let run = try await engine.run(id: "c")
        #expect(run.status == .failed && run.error?.contains("LuaError: crash.lua:1: attempt to index") == true, "\(run.error ?? "")")
        await h.close()
    }

    @Test("a matching event starts one run per delivery, redelivered or not", arguments: DriverKind.allCases)
    func webhookTriggered(_ kind: DriverKind) async throws {
        let h = try await WorkflowHarness(kind)
        let registry = LuaScriptRegistry(
            root: try Self.directory(["greet.lua": Self.greet, "lib/util.lua": Self.util]), catalog: h.catalog,
            logger: Self.quietLogger)
        h.catalog.replace(prefix: "script.", with: registry.definitions)
        let bus = Self.bus(h, registry)
        var ids: [String: Int64] = [:]
        for (topic, delivery) in [("workflow_job.queued", "d-1"), ("workflow_job.queued", "d-1"), ("push", "d-2"), ("workflow_job.queued", "d-3")] {
            ids[delivery] = try await Self.publish(h, topic, delivery, #"{"n":5}"#)
        }
        #expect(try await bus.dispatcher().dispatchOnce() == 4)
        // An event no script has in `on` is not taken by the scripts' subscriber at all.
        let records = try await bus.records(ids: [ids["d-2"]!, ids["d-3"]!])
        #expect(records[ids["d-2"]!]?.handledBy.isEmpty == true && records[ids["d-3"]!]?.handledBy.map(\.subscriber) == ["workflow.scripts"])
        let runs = try await h.engine().list(type: "script.greet")
        #expect(Set(runs.map(\.id)) == ["script.greet:d-1", "script.greet:d-3"])
        let input = try WorkflowJSON.decode(JSONValue.self, from: runs[0].input, what: "input")
        #expect(input["payload"] == .object(["n": .number(5)]) && input["topic"] == .string("workflow_job.queued"))
        await h.close()
    }

    static let picky = """
        return {
          on = {"workflow_job.queued"},
          match = function(event) return event.topic == "workflow_job.queued" and event.payload.n > 3 end,
          run = function(input) return input.payload.n end,
        }
        """

    @Test("'match' filters the events that start runs; an error in it is logged and starts nothing, once", arguments: DriverKind.allCases)
    func match(_ kind: DriverKind) async throws {
        let h = try await WorkflowHarness(kind)
        let registry = LuaScriptRegistry(
            root: try Self.directory([
                "picky.lua": Self.picky,
                "broken.lua": """
                return { on = {"workflow_job.queued"}, match = function(event) error("no match today") end, run = function() end }
                """,
            ]), catalog: h.catalog, logger: Self.quietLogger)
        #expect(registry.current.errors.isEmpty && registry.current.scripts.map(\.hasMatch) == [true, true], "\(registry.current.errors)")
        h.catalog.replace(prefix: "script.", with: registry.definitions)
        let bus = Self.bus(h, registry)
        let big = try await Self.publish(h, "workflow_job.queued", "d-big", #"{"n":5}"#)
        _ = try await Self.publish(h, "workflow_job.queued", "d-small", #"{"n":1}"#)
        #expect(try await bus.dispatcher().dispatchOnce() == 2)
        let runs = try await h.engine().list()
        #expect(runs.map(\.id) == ["script.picky:d-big"])
        // The broken match did not make the event fail: it is done, not waiting for a retry.
        let record = try await bus.records(ids: [big])[big]
        #expect(record?.status == "done" && record?.attempts == 1, "\(String(describing: record))")
        let engine = h.engine()
        Self.catchUp(h)
        try await engine.drain()
        #expect(try await engine.run(id: "script.picky:d-big").output == Array("5".utf8))
        await h.close()
    }

    @Test(
        "a new script starts handling its events without a restart; a broken edit is rejected and the old one keeps serving",
        arguments: DriverKind.allCases)
    func hotReload(_ kind: DriverKind) async throws {
        let h = try await WorkflowHarness(kind)
        let root = try Self.directory(["lib/util.lua": Self.util])
        let registry = LuaScriptRegistry(root: root, catalog: h.catalog, logger: Self.quietLogger)
        #expect(registry.current.scripts.isEmpty)
        let bus = Self.bus(h, registry)
        let reloader = Task { try await LuaScriptReloader(registry: registry, intervalMilliseconds: 20).run() }
        defer { reloader.cancel() }

        try Self.write(["picky.lua": Self.picky], under: root)
        await Self.eventually { h.catalog.definition("script.picky") != nil && registry.current.scripts.count == 1 }
        #expect(registry.current.scripts.map(\.type) == ["script.picky"] && registry.status.reloads == 1)
        _ = try await Self.publish(h, "workflow_job.queued", "d-1", #"{"n":7}"#)
        #expect(try await bus.dispatcher().dispatchOnce() == 1)
        let engine = h.engine()
        Self.catchUp(h)
        try await engine.drain()
        #expect(try await engine.run(id: "script.picky:d-1").output == Array("7".utf8))

        let served = registry.current.version
        try Self.write(["picky.lua": "return { on = {'workflow_job.queued'}, run = function( end }"], under: root)
        await Self.eventually { registry.status.lastRejection != nil }
        let rejection = registry.status.lastRejection
        #expect(rejection?.errors.contains { $0.contains("picky.lua:1:") } == true, "\(String(describing: rejection))")
        #expect(registry.current.version == served && registry.status.version == served && h.catalog.definition("script.picky") != nil)
        _ = try await Self.publish(h, "workflow_job.queued", "d-2", #"{"n":8}"#)
        #expect(try await bus.dispatcher().dispatchOnce() == 1)
        Self.catchUp(h)
        try await engine.drain()
        #expect(try await engine.run(id: "script.picky:d-2").output == Array("8".utf8))

        // A removed script starts nothing more; a run of it already started finishes with its last version.
        _ = try await engine.start(type: "script.picky", input: Array(#"{"payload":{"n":9}}"#.utf8), id: "left")
        try FileManager.default.removeItem(atPath: root + "/picky.lua")
        await Self.eventually { registry.current.scripts.isEmpty }
        #expect(registry.current.scripts.isEmpty && registry.status.retired == ["script.picky"])
        _ = try await Self.publish(h, "workflow_job.queued", "d-3", #"{"n":10}"#)
        #expect(try await bus.dispatcher().dispatchOnce() == 1)
        try await engine.drain()
        #expect(try await engine.run(id: "left").output == Array("9".utf8))
        #expect(try await engine.list().map(\.id).sorted() == ["left", "script.picky:d-1", "script.picky:d-2"])
        reloader.cancel()
        _ = await reloader.result
        await h.close()
    }
}
