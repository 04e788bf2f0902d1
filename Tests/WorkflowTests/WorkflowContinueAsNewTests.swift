import Foundation
import Host
import SQL
import TestSupport
import Testing

@testable import WorkflowPlugin

@Suite("Workflow continue-as-new and signal-with-start")
struct WorkflowContinueAsNewTests {
    struct Tally: Codable, Sendable, Equatable {
        var total: Int
        var perRun: Int
    }

    /// Adds each `add` signal's value (one row in `effects` per signal taken) and continues as
    /// new after `perRun` of them; `stop` ends it with the total.
    static func counter() -> WorkflowDefinition {
        WorkflowDefinition(type: "Counter", input: Tally.self) { ctx, input async throws -> Int in
            var tally = input
            for _ in 0..<tally.perRun {
                guard let taken = try await ctx.signal(anyOf: ["add", "stop"], as: Int.self) else { continue }
                if taken.name == "stop" { return tally.total }
                let id = ctx.workflowID
                let run = ctx.runNumber
                let before = tally.total
                tally.total = try await ctx.transaction("count") { db -> Int in
                    try db.execute(
                        "INSERT INTO effects (workflow_id, value, run) VALUES ($1, $2, $3)",
                        [.text(id), .integer(Int64(taken.value)), .integer(Int64(run))])
                    return before + taken.value
                }
            }
            try await ctx.continueAsNew(tally)
        }
    }

    static func harness(_ kind: DriverKind) async throws -> WorkflowHarness {
        let h = try await WorkflowHarness(kind, definitions: [counter()])
        try await h.database.execute("CREATE TABLE effects (workflow_id TEXT NOT NULL, value BIGINT NOT NULL, run INTEGER NOT NULL)")
        return h
    }

    struct Effects: Equatable, CustomStringConvertible {
        let count: Int64
        let sum: Int64
        init(_ count: Int64, _ sum: Int64) {
            self.count = count
            self.sum = sum
        }
        var description: String { "\(count) effect(s) adding up to \(sum)" }
    }

    static func effects(_ h: WorkflowHarness, _ id: String) async throws -> Effects {
        let row = try await h.database.query(
            "SELECT COUNT(*) AS n, COALESCE(SUM(value), 0) AS total FROM effects WHERE workflow_id = $1",
            [.text(id)])[0]
        return Effects(try row.int("n"), try row.int("total"))
    }

    @Test("a workflow that continues as new every 5 signals keeps a bounded history over 60 signals", arguments: DriverKind.allCases)
    func boundedHistory(_ kind: DriverKind) async throws {
        let h = try await Self.harness(kind)
        let engine = h.engine()
        _ = try await engine.start(type: "Counter", input: Tally(total: 0, perRun: 5), id: "counter")
        for n in 1...60 {
            try await engine.signal(id: "counter", name: "add", payload: Array("\(n)".utf8))
            if n % 7 == 0 { try await engine.drain() }
            if n % 7 == 0 {
                let description = try await engine.describe(id: "counter")
                #expect(description.steps.count <= 10, "history after \(n) signals: \(description.steps.count) records")
            }
        }
        try await engine.drain()
        let waiting = try await engine.describe(id: "counter")
        #expect(waiting.run.status == .sleeping)
        #expect(waiting.run.runNumber == 13)  // 60 signals, 5 a run: the 13th run waits for the 61st
        #expect(waiting.steps.map { "\($0.kind) \($0.name) \($0.status)" } == ["signal add|stop waiting"])
        #expect(try WorkflowJSON.decode(Tally.self, from: waiting.run.input, what: "input") == Tally(total: 1_830, perRun: 5))
        let kept = try await h.database.query("SELECT COUNT(*) AS n FROM workflow_signals WHERE workflow_id = 'counter'")
        #expect(try kept[0].int("n") == 0)
        #expect(try await Self.effects(h, "counter") == Effects(60, 1_830))

        try await engine.signal(id: "counter", name: "stop", payload: Array("0".utf8))
        try await engine.drain()
        let run = try await engine.run(id: "counter")
        #expect(run.status == .completed && run.output == Array("1830".utf8))
        await h.close()
    }

    @Test("no signal is lost while runs hand over: 80 signals sent as a worker continues as new every 3", arguments: DriverKind.allCases)
    func noSignalLostAcrossHandOver(_ kind: DriverKind) async throws {
        let h = try await Self.harness(kind)
        let engine = h.engine()
        let sender = h.engine(owner: "sender")
        _ = try await engine.start(type: "Counter", input: Tally(total: 0, perRun: 3), id: "busy")
        let done = LockedBox(false)
        let sending = Task {
            defer { done.value = true }
            for n in 1...80 {
                try await sender.signal(id: "busy", name: "add", payload: Array("\(n)".utf8))
                if n % 5 == 0 { await Task.yield() }
            }
        }
        while !done.value {
            if try await engine.drain() == 0 { try await Task.sleep(nanoseconds: 1_000_000) }
        }
        try await sending.value
        try await engine.drain()
        #expect(try await Self.effects(h, "busy") == Effects(80, 3_240))
        let run = try await engine.run(id: "busy")
        #expect(run.status == .sleeping && run.runNumber == 27)
        // Each signal was taken by exactly one run, in the order sent within a run.
        let perRun = try await h.database.query("SELECT run, COUNT(*) AS n FROM effects WHERE workflow_id = 'busy' GROUP BY run")
        #expect(try perRun.allSatisfy { try $0.int("n") == 3 || ($0.int("run") == 27 && $0.int("n") == 2) })
        await h.close()
    }

    @Test("an execution of an earlier run is fenced off after the hand-over, and a restarted worker carries on", arguments: DriverKind.allCases)
    func crashAcrossHandOver(_ kind: DriverKind) async throws {
        let h = try await Self.harness(kind)
        let engine = h.engine(owner: "before-crash")
        _ = try await engine.start(type: "Counter", input: Tally(total: 0, perRun: 1), id: "c")
        try await engine.signal(id: "c", name: "add", payload: Array("5".utf8))
        // The worker takes the run and stalls; its lease runs out and it is taken again.
        let stale = try #require(try await engine.claim(limit: 1).first)
        h.clock.advance(by: .seconds(31))
        let fresh = try #require(try await engine.claim(limit: 1).first)
        await engine.execute(fresh)  // takes the signal and continues as new
        #expect(try await engine.run(id: "c").runNumber == 2)
        await engine.execute(stale)  // too late: it writes nothing and does not continue again
        var run = try await engine.run(id: "c")
        #expect(run.runNumber == 2 && run.status == .pending)
        #expect(try await Self.effects(h, "c") == Effects(1, 5))

        // A new process picks up run 2 from its (empty) history.
        let restarted = h.engine(owner: "after-restart")
        try await restarted.drain()
        try await restarted.signal(id: "c", name: "add", payload: Array("7".utf8))
        try await restarted.drain()
        run = try await restarted.run(id: "c")
        #expect(run.runNumber == 3 && run.status == .sleeping)
        #expect(try WorkflowJSON.decode(Tally.self, from: run.input, what: "input") == Tally(total: 12, perRun: 1))
        #expect(try await Self.effects(h, "c") == Effects(2, 12))
        #expect(run.executions > 3)  // executions keep counting across runs: the fencing token never repeats
        await h.close()
    }

    @Test("signal-with-start starts once, takes a request id once, and after the run ended starts a fresh one", arguments: DriverKind.allCases)
    func signalWithStart(_ kind: DriverKind) async throws {
        let h = try await Self.harness(kind)
        let engine = h.engine()
        let input = try WorkflowJSON.encode(Tally(total: 0, perRun: 100))
        #expect(try await engine.signalWithStart(type: "Counter", input: input, id: "sws", signal: "add", payload: Array("1".utf8), requestID: "d1"))
        #expect(
            try await engine.signalWithStart(type: "Counter", input: input, id: "sws", signal: "add", payload: Array("1".utf8), requestID: "d1")
                == false)
        #expect(try await engine.signalWithStart(type: "Counter", input: input, id: "sws", signal: "add", payload: Array("2".utf8), requestID: "d2"))
        try await engine.drain()
        #expect(try await Self.effects(h, "sws") == Effects(2, 3))
        try await engine.signal(id: "sws", name: "stop", payload: Array("0".utf8))
        try await engine.signal(id: "sws", name: "add", payload: Array("1000".utf8))  // after stop: never taken
        try await engine.drain()
        #expect(try await engine.run(id: "sws").output == Array("3".utf8))

        #expect(try await engine.signalWithStart(type: "Counter", input: input, id: "sws", signal: "add", payload: Array("4".utf8), requestID: "d3"))
        var run = try await engine.run(id: "sws")
        #expect(run.status == .pending && run.runNumber == 2 && run.output == nil && run.finishedAtMs == nil)
        try await engine.drain()
        run = try await engine.run(id: "sws")
        #expect(run.status == .sleeping)
        #expect(try await Self.effects(h, "sws") == Effects(3, 7))  // the ended run's leftover signal went with it
        // A request id is remembered across runs; another type under the same id is refused.
        #expect(
            try await engine.signalWithStart(type: "Counter", input: input, id: "sws", signal: "add", payload: Array("1".utf8), requestID: "d1")
                == false)
        // Request ids are kept 30 days: the next run after that forgets older ones.
        h.clock.advance(by: .seconds(31 * 86_400))
        try await engine.signal(id: "sws", name: "stop", payload: Array("0".utf8))
        try await engine.drain()
        #expect(try await engine.signalWithStart(type: "Counter", input: input, id: "sws", signal: "add", payload: Array("1".utf8), requestID: "d4"))
        #expect(try await engine.signalWithStart(type: "Counter", input: input, id: "sws", signal: "add", payload: Array("1".utf8), requestID: "d1"))
        #expect(
            try await engine.signalWithStart(type: "Counter", input: input, id: "sws", signal: "add", payload: Array("1".utf8), requestID: "d4")
                == false)
        run = try await engine.run(id: "sws")
        h.catalog.register(WorkflowDefinition(type: "Other") { _, input in input })
        await #expect {
            try await engine.signalWithStart(type: "Other", input: input, id: "sws", signal: "add", payload: Array("1".utf8), requestID: "d9")
        } throws: { error in "\(error)".contains("already used by a Counter run") }
        let described = try await engine.describe(id: "sws")
        #expect(WorkflowViews.describeText(described).contains("run         3"))
        #expect(WorkflowViews.run(run)["run_number"] as? Int == 3)
        await h.close()
    }
}
