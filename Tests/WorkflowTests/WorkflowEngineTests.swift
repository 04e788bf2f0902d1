import Foundation
import Host
import SQL
import TestSupport
import Testing

@testable import WorkflowPlugin

@Suite("Workflow engine: steps, retries, durable sleep, replay")
struct WorkflowEngineTests {
    struct Order: Codable, Sendable, Equatable {
        var item: String
        var quantity: Int
    }

    static func threeSteps(_ h: WorkflowHarness) -> WorkflowDefinition {
        WorkflowDefinition(type: "Order", input: Order.self) { ctx, order in
            let reserved = try await ctx.step("reserve") { () async throws -> Int in
                h.ran(ctx, "reserve")
                return order.quantity
            }
            let charged = try await ctx.step("charge") { () async throws -> String in
                h.ran(ctx, "charge")
                return "charged \(reserved) \(order.item)"
            }
            try await ctx.sleep(.seconds(3 * 86_400))
            let shipped = try await ctx.step("ship") { () async throws -> Bool in
                h.ran(ctx, "ship")
                return true
            }
            return ["charged": charged, "shipped": shipped ? "yes" : "no"]
        }
    }

    @Test("steps run once, a durable sleep parks the run, and after a restart only the rest runs", arguments: DriverKind.allCases)
    func stepsSleepAndRestart(_ kind: DriverKind) async throws {
        let h = try await WorkflowHarness(kind)
        h.catalog.register(Self.threeSteps(h))
        let first = h.engine(owner: "before-restart")
        let started = try await first.start(type: "Order", input: Order(item: "runner-minutes", quantity: 3), id: "order-1")
        #expect(started.created && started.run.status == .pending)
        #expect(try await first.drain() == 1)
        var run = try await first.run(id: "order-1")
        #expect(run.status == .sleeping)
        #expect(run.dueAtMs == h.clock.nowMilliseconds() + 3 * 86_400_000)
        // Sleeping holds nothing: no lease, and nothing is runnable before the due time.
        let lease = try await h.database.query("SELECT lease_owner FROM workflow_runs WHERE id = 'order-1'")
        #expect(lease[0]["lease_owner"].isNull)
        h.clock.advance(by: .seconds(3 * 86_400 - 1))
        #expect(try await first.drain() == 0)

        let second = h.engine(owner: "after-restart")
        h.clock.advance(by: .seconds(1))
        #expect(try await second.drain() == 1)
        run = try await second.run(id: "order-1")
        #expect(run.status == .completed)
        #expect(
            try WorkflowJSON.decode([String: String].self, from: run.output ?? [], what: "output")
                == ["charged": "charged 3 runner-minutes", "shipped": "yes"])
        #expect(h.count("order-1", "reserve") == 1 && h.count("order-1", "charge") == 1 && h.count("order-1", "ship") == 1)
        let description = try await second.describe(id: "order-1")
        #expect(
            description.steps.map { "\($0.kind) \($0.name) \($0.status)" }
                == ["step reserve completed", "step charge completed", "sleep sleep completed", "step ship completed"])
        #expect(run.executions == 2)
        await h.close()
    }

    @Test("a workflow id is an idempotency key", arguments: DriverKind.allCases)
    func idempotentStart(_ kind: DriverKind) async throws {
        let h = try await WorkflowHarness(kind)
        h.catalog.register(Self.threeSteps(h))
        h.catalog.register(WorkflowDefinition(type: "Other") { _, input in input })
        let engine = h.engine()
        let a = try await engine.start(type: "Order", input: Order(item: "x", quantity: 1), id: "same")
        let b = try await engine.start(type: "Order", input: Order(item: "y", quantity: 2), id: "same")
        #expect(a.created && !b.created)
        #expect(b.run.input == a.run.input)
        await #expect { _ = try await engine.start(type: "Other", input: JSONValue.null, id: "same") } throws: { error in
            "\(error)".contains("already used by a Order run")
        }
        await #expect { _ = try await engine.start(type: "Nope", input: JSONValue.null) } throws: { error in
            "\(error)".contains("unknown workflow type 'Nope'")
        }
        await #expect { _ = try await engine.start(type: "Order", input: Array("{}".utf8), taskQueue: "NOWHERE") } throws: { error in
            "\(error)".contains("no worker takes task queue 'NOWHERE'")
        }
        #expect(try await engine.list().count == 1)
        await h.close()
    }

    @Test("retries wait initial × coefficient^n, capped, on the test clock", arguments: DriverKind.allCases)
    func retryBackoff(_ kind: DriverKind) async throws {
        let h = try await WorkflowHarness(kind)
        let policy = WorkflowRetryPolicy(initialInterval: .seconds(1), backoffCoefficient: 2, maximumInterval: .seconds(3), maximumAttempts: 5)
        h.catalog.register(
            WorkflowDefinition(type: "Flaky") { ctx, _ in
                try await ctx.step("call", retry: policy) { () async throws -> Int in
                    let attempt = h.ran(ctx, "call")
                    if attempt < 4 { throw Flaky() }
                    return attempt
                }
            })
        let engine = h.engine()
        _ = try await engine.start(type: "Flaky", input: JSONValue.null, id: "f")
        var waits: [Int64] = []
        while try await engine.run(id: "f").status != .completed {
            #expect(try await engine.drain() == 1)
            let run = try await engine.run(id: "f")
            guard run.status == .sleeping, let due = run.dueAtMs else { break }
            let wait = due - h.clock.nowMilliseconds()
            waits.append(wait)
            h.clock.advance(by: .milliseconds(wait - 1))
            #expect(try await engine.drain() == 0)  // not a millisecond early
            h.clock.advance(by: .milliseconds(1))
        }
        #expect(waits == [1_000, 2_000, 3_000])
        let run = try await engine.run(id: "f")
        #expect(run.status == .completed && run.output == Array("4".utf8))
        let step = try await engine.describe(id: "f").steps[0]
        #expect(step.attempts == 4 && step.status == "completed")
        await h.close()
    }

    @Test("a failed transaction rolls back and is retried by its policy; its writes happen once", arguments: DriverKind.allCases)
    func transactionRetry(_ kind: DriverKind) async throws {
        let h = try await WorkflowHarness(kind)
        try await h.database.execute("CREATE TABLE effects (workflow_id TEXT NOT NULL)")
        let policy = WorkflowRetryPolicy(initialInterval: .seconds(2), backoffCoefficient: 2, maximumAttempts: 3)
        h.catalog.register(
            WorkflowDefinition(type: "Write") { ctx, input in
                let id = ctx.workflowID
                let failures = input.intValue ?? 0
                return try await ctx.transaction("write", retry: policy) { db -> Int in
                    try db.execute("INSERT INTO effects (workflow_id) VALUES ($1)", [.text(id)])
                    let attempt = h.ran(ctx, "write")
                    if attempt <= failures { throw Flaky() }  // after the insert: it must roll back
                    return attempt
                }
            })
        let engine = h.engine()
        _ = try await engine.start(type: "Write", input: JSONValue.number(2), id: "twice-flaky")
        _ = try await engine.start(type: "Write", input: JSONValue.number(5), id: "always-flaky")
        try await engine.drain()
        #expect(try await engine.run(id: "twice-flaky").dueAtMs == h.clock.nowMilliseconds() + 2_000)
        h.clock.advance(by: .seconds(2))
        try await engine.drain()
        h.clock.advance(by: .seconds(4))
        try await engine.drain()
        let done = try await engine.run(id: "twice-flaky")
        #expect(done.status == .completed && done.output == Array("3".utf8))
        let failed = try await engine.run(id: "always-flaky")
        #expect(failed.status == .failed && failed.error?.contains("failed after 3 attempt(s)") == true, "\(failed.error ?? "")")
        let rows = try await h.database.query("SELECT workflow_id, COUNT(*) AS n FROM effects GROUP BY workflow_id")
        #expect(try rows.map { "\(try $0.string("workflow_id")) \(try $0.int("n"))" } == ["twice-flaky 1"])
        #expect(try await engine.describe(id: "twice-flaky").steps[0].attempts == 3)
        await h.close()
    }

    @Test("non-retryable errors and exhausted attempts fail the step; the workflow may handle it", arguments: DriverKind.allCases)
    func stepFailures(_ kind: DriverKind) async throws {
        let h = try await WorkflowHarness(kind)
        h.catalog.register(
            WorkflowDefinition(type: "Declined") { ctx, _ in
                try await ctx.step("charge") { () async throws -> Int in
                    h.ran(ctx, "charge")
                    throw WorkflowApplicationError(type: "CardDeclined", "card declined", nonRetryable: true)
                }
            })
        h.catalog.register(
            WorkflowDefinition(type: "Listed") { ctx, _ in
                try await ctx.step("charge", retry: WorkflowRetryPolicy(nonRetryableErrorTypes: ["Flaky"])) { () async throws -> Int in
                    h.ran(ctx, "charge")
                    throw Flaky()
                }
            })
        h.catalog.register(
            WorkflowDefinition(type: "Compensates") { ctx, _ in
                do {
                    return try await ctx.step("charge", retry: .none) { () async throws -> String in
                        h.ran(ctx, "charge")
                        throw Flaky()
                    }
                } catch let failed as WorkflowStepFailed {
                    return try await ctx.step("refund") { "refunded after \(failed.errorType)" }
                }
            })
        let engine = h.engine()
        for type in ["Declined", "Listed", "Compensates"] { _ = try await engine.start(type: type, input: JSONValue.null, id: type) }
        try await engine.drain()
        let declined = try await engine.run(id: "Declined")
        #expect(declined.status == .failed)
        #expect(declined.error == "step 'charge' failed after 1 attempt(s): CardDeclined: card declined")
        #expect(try await engine.run(id: "Listed").status == .failed)
        let compensated = try await engine.run(id: "Compensates")
        #expect(compensated.status == .completed && compensated.output == Array("\"refunded after Flaky\"".utf8))
        #expect(["Declined", "Listed", "Compensates"].allSatisfy { h.count($0, "charge") == 1 })
        await h.close()
    }

    @Test("a recovered run whose code asks for another step at a recorded position fails clearly", arguments: DriverKind.allCases)
    func nondeterminism(_ kind: DriverKind) async throws {
        let h = try await WorkflowHarness(kind)
        h.catalog.register(
            WorkflowDefinition(type: "Evolving") { ctx, _ in
                _ = try await ctx.step("a") { 1 }
                try await ctx.sleep(.seconds(60))
                return 1
            })
        _ = try await h.engine().start(type: "Evolving", input: JSONValue.null, id: "ev")
        try await h.engine().drain()
        let changed = WorkflowCatalog()
        changed.register(
            WorkflowDefinition(type: "Evolving") { ctx, _ in
                _ = try await ctx.step("b") { 2 }
                return 2
            })
        h.clock.advance(by: .seconds(60))
        let engine = h.engine(owner: "new-code", catalog: changed)
        try await engine.drain()
        let run = try await engine.run(id: "ev")
        #expect(run.status == .failed)
        #expect(run.error?.contains("asked for step 'b' as call 1, but its history has step 'a' there") == true)
        await h.close()
    }

    @Test("a run past its timeout fails, even while it sleeps", arguments: DriverKind.allCases)
    func workflowTimeout(_ kind: DriverKind) async throws {
        let h = try await WorkflowHarness(kind)
        h.catalog.register(
            WorkflowDefinition(type: "Slow") { ctx, _ in
                try await ctx.sleep(.seconds(7_200))
                return "woke"
            })
        let engine = h.engine()
        _ = try await engine.start(type: "Slow", input: JSONValue.null, id: "slow", timeout: .seconds(3_600))
        try await engine.drain()
        #expect(try await engine.run(id: "slow").dueAtMs == h.clock.nowMilliseconds() + 3_600_000)
        h.clock.advance(by: .seconds(3_600))
        try await engine.drain()
        let run = try await engine.run(id: "slow")
        #expect(run.status == .failed && run.error?.contains("timed out") == true)
        await h.close()
    }

    @Test("a step that overruns its start-to-close timeout is a failed attempt")
    func stepTimeout() async throws {
        let h = try await WorkflowHarness(.sqlite)
        let clock = h.clock
        h.catalog.register(
            WorkflowDefinition(type: "Hangs") { ctx, _ in
                try await ctx.step("hang", retry: .none, timeout: .seconds(5)) { () async throws -> Int in
                    try await clock.sleep(milliseconds: 3_600_000)
                    return 1
                }
            })
        let engine = h.engine()
        _ = try await engine.start(type: "Hangs", input: JSONValue.null, id: "hang")
        let running = Task { try await engine.runOnce() }
        while clock.sleeperCount < 2 { await Task.yield() }  // the step's sleep and its timer
        clock.advance(by: .seconds(5))
        #expect(try await running.value == 1)
        let run = try await engine.run(id: "hang")
        #expect(run.status == .failed)
        #expect(run.error?.contains("WorkflowStepTimeout: step 'hang' did not finish within 5000 ms") == true)
        await h.close()
    }

    @Test("published state is readable while the run sleeps", arguments: DriverKind.allCases)
    func state(_ kind: DriverKind) async throws {
        let h = try await WorkflowHarness(kind)
        h.catalog.register(
            WorkflowDefinition(type: "Progress") { ctx, _ in
                try await ctx.setState("progress", ["done": 1, "of": 2])
                try await ctx.sleep(.seconds(10))
                try await ctx.setState("progress", ["done": 2, "of": 2])
                return "ok"
            })
        let engine = h.engine()
        _ = try await engine.start(type: "Progress", input: JSONValue.null, id: "p")
        try await engine.drain()
        var state = try await engine.describe(id: "p").state
        #expect(state.map(\.key) == ["progress"] && state[0].value == Array(#"{"done":1,"of":2}"#.utf8))
        h.clock.advance(by: .seconds(10))
        try await engine.drain()
        state = try await engine.describe(id: "p").state
        #expect(state[0].value == Array(#"{"done":2,"of":2}"#.utf8))
        await h.close()
    }
}
