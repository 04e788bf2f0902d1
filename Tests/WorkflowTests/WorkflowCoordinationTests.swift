import Foundation
import Host
import SQL
import TestSupport
import Testing

@testable import WorkflowPlugin

@Suite("Workflow signals, children, cancellation, task queues and schedules")
struct WorkflowCoordinationTests {
    static func waiter() -> WorkflowDefinition {
        WorkflowDefinition(type: "Approval") { ctx, input in
            let timeout = input["timeout_s"]?.intValue.map { Duration.seconds($0) }
            guard let answer = try await ctx.signal("approve", timeout: timeout) else { return JSONValue.string("timed out") }
            return JSONValue.object(["approved_by": answer["by"] ?? .null])
        }
    }

    @Test("a signal wakes a waiting run; a buffered one is taken at once; a timeout ends the wait", arguments: DriverKind.allCases)
    func signals(_ kind: DriverKind) async throws {
        let h = try await WorkflowHarness(kind, definitions: [Self.waiter()])
        let engine = h.engine()
        _ = try await engine.start(type: "Approval", input: JSONValue.object([:]), id: "forever")
        _ = try await engine.start(type: "Approval", input: JSONValue.object(["timeout_s": .number(3_600)]), id: "timed")
        _ = try await engine.start(type: "Approval", input: JSONValue.object([:]), id: "early")
        try await engine.signal(id: "early", name: "approve", payload: Array(#"{"by":"ops"}"#.utf8))
        try await engine.drain()
        #expect(try await engine.run(id: "early").output == Array(#"{"approved_by":"ops"}"#.utf8))
        let forever = try await engine.run(id: "forever")
        #expect(forever.status == .sleeping && forever.dueAtMs == nil)
        #expect(try await engine.run(id: "timed").dueAtMs == h.clock.nowMilliseconds() + 3_600_000)

        try await engine.signal(id: "forever", name: "approve", payload: Array(#"{"by":"alice"}"#.utf8))
        try await engine.signal(id: "timed", name: "unrelated", payload: Array("1".utf8))
        try await engine.drain()
        #expect(try await engine.run(id: "forever").output == Array(#"{"approved_by":"alice"}"#.utf8))
        #expect(try await engine.run(id: "timed").status == .sleeping)
        h.clock.advance(by: .seconds(3_600))
        try await engine.drain()
        #expect(try await engine.run(id: "timed").output == Array("\"timed out\"".utf8))

        await #expect { try await engine.signal(id: "forever", name: "approve", payload: Array("1".utf8)) } throws: { error in
            "\(error)".contains("is completed; only a run that has not ended takes signals")
        }
        await #expect { try await engine.signal(id: "missing", name: "approve", payload: Array("1".utf8)) } throws: { error in
            (error as? HostError)?.code == .notFound
        }
        await h.close()
    }

    @Test("children fan out with at most N unfinished, and results come back in order", arguments: DriverKind.allCases)
    func children(_ kind: DriverKind) async throws {
        let h = try await WorkflowHarness(kind)
        h.catalog.register(
            WorkflowDefinition(type: "Double", input: Int.self) { ctx, n in
                try await ctx.step("double") { () async throws -> Int in
                    h.ran(ctx, "double")
                    return n * 2
                }
            })
        h.catalog.register(
            WorkflowDefinition(type: "FanOut", input: [Int].self) { ctx, numbers in
                let results = try await ctx.children("Double", inputs: numbers.map { (id: nil, input: $0) }, maxConcurrent: 2, as: Int.self)
                return results.reduce(0, +)
            })
        let engine = h.engine()
        _ = try await engine.start(type: "FanOut", input: [1, 2, 3, 4, 5], id: "parent")
        var rounds = 0
        while try await engine.runOnce() > 0 {
            rounds += 1
            let open = try await h.database.query(
                """
                SELECT COUNT(*) AS n FROM workflow_runs WHERE parent_id = 'parent' AND status NOT IN ('completed', 'failed', 'cancelled')
                """)
            #expect(try open[0].int("n") <= 2)
        }
        let parent = try await engine.run(id: "parent")
        #expect(parent.status == .completed && parent.output == Array("30".utf8))
        let description = try await engine.describe(id: "parent")
        #expect(description.children.count == 5 && description.children.allSatisfy { $0.status == .completed })
        #expect(description.children.map(\.id).allSatisfy { h.count($0, "double") == 1 })
        await h.close()
    }

    @Test("a failed child fails its parent's wait; cancelling a parent cancels its children", arguments: DriverKind.allCases)
    func childFailureAndCancel(_ kind: DriverKind) async throws {
        let h = try await WorkflowHarness(kind, definitions: [Self.waiter()])
        h.catalog.register(
            WorkflowDefinition(type: "Broken") { _, _ -> Int in
                throw WorkflowApplicationError(type: "Broken", "always", nonRetryable: true)
            })
        h.catalog.register(
            WorkflowDefinition(type: "Parent") { ctx, input in
                let child = input["child"]?.stringValue ?? "Broken"
                return try await ctx.child(child, id: ctx.workflowID + "-kid", input: JSONValue.object([:]))
            })
        let engine = h.engine()
        _ = try await engine.start(type: "Parent", input: JSONValue.object(["child": .string("Broken")]), id: "p1")
        _ = try await engine.start(type: "Parent", input: JSONValue.object(["child": .string("Approval")]), id: "p2")
        try await engine.drain()
        let p1 = try await engine.run(id: "p1")
        #expect(p1.status == .failed)
        #expect(p1.error?.contains("WorkflowChildFailed: child workflow 'p1-kid' failed: Broken: always") == true)
        #expect(try await engine.run(id: "p2-kid").status == .sleeping)
        #expect(try await engine.cancel(id: "p2").sorted() == ["p2", "p2-kid"])
        #expect(try await engine.run(id: "p2").status == .cancelled)
        #expect(try await engine.run(id: "p2-kid").status == .cancelled)
        #expect(try await engine.drain() == 0)
        #expect(try await engine.cancel(id: "p2").isEmpty)

        // A child id taken by an unrelated run is refused; children left unfinished end with their parent.
        _ = try await engine.start(type: "Approval", input: JSONValue.object([:]), id: "p3-kid")
        h.catalog.register(
            WorkflowDefinition(type: "Leaves") { ctx, _ in
                try await ctx.startChild("Approval", id: ctx.workflowID + "-kid", input: JSONValue.object([:]))
            })
        _ = try await engine.start(type: "Parent", input: JSONValue.object(["child": .string("Approval")]), id: "p3")
        _ = try await engine.start(type: "Leaves", input: JSONValue.null, id: "p4")
        try await engine.drain()
        let p3 = try await engine.run(id: "p3")
        #expect(p3.status == .failed && p3.error?.contains("child workflow id 'p3-kid' is already used by a run that is not a child of p3") == true)
        #expect(try await engine.run(id: "p4").status == .completed)
        #expect(try await engine.run(id: "p4-kid").status == .cancelled)
        await h.close()
    }

    @Test("a queue's limit holds across workers, and a dead worker's runs are taken when its lease expires", arguments: DriverKind.allCases)
    func queueLimitAndLeases(_ kind: DriverKind) async throws {
        let queue = WorkflowTaskQueue("BILLING_TASK_QUEUE", maxConcurrentRuns: 2)
        let h = try await WorkflowHarness(
            kind, definitions: [WorkflowDefinition(type: "Bill", taskQueue: queue.name) { _, input in input }],
            queues: [queue])
        let other = try h.test.open()
        let first = h.engine(owner: "replica-1")
        let second = h.engine(owner: "replica-2", database: other)
        for n in 0..<5 { _ = try await first.start(type: "Bill", input: Array("\(n)".utf8), id: "bill-\(n)") }
        let taken = try await first.claim(limit: 8)
        #expect(taken.count == 2)
        #expect(try await second.claim(limit: 8).isEmpty)  // the queue is at its limit
        // replica-1 dies holding two runs; once their leases run out, replica-2 takes them.
        h.clock.advance(by: .seconds(31))
        let retaken = try await second.claim(limit: 8)
        #expect(Set(retaken.map(\.id)) == Set(taken.map(\.id)))
        #expect(retaken.allSatisfy { $0.executions == 2 })
        // A late write by the dead worker is refused.
        await first.execute(taken[0])
        #expect(try await first.run(id: taken[0].id).status == .running)
        for run in retaken { await second.execute(run) }
        try await second.drain()
        #expect(try await second.list(status: .completed).count == 5)
        await other.close()
        await h.close()
    }

    @Test("a run taken again by the same worker after its lease ran out fences off the older execution", arguments: DriverKind.allCases)
    func sameWorkerReclaim(_ kind: DriverKind) async throws {
        let h = try await WorkflowHarness(kind)
        try await h.database.execute("CREATE TABLE effects (workflow_id TEXT NOT NULL)")
        h.catalog.register(
            WorkflowDefinition(type: "Once") { ctx, _ in
                let id = ctx.workflowID
                return try await ctx.transaction("write") { db -> Int in
                    try db.execute("INSERT INTO effects (workflow_id) VALUES ($1)", [.text(id)])
                    return 1
                }
            })
        let engine = h.engine()
        _ = try await engine.start(type: "Once", input: JSONValue.null, id: "once")
        let stale = try #require(try await engine.claim(limit: 1).first)
        h.clock.advance(by: .seconds(31))
        let fresh = try #require(try await engine.claim(limit: 1).first)
        #expect(fresh.executions == stale.executions + 1)
        await engine.execute(stale)
        #expect(try await engine.run(id: "once").status == .running)
        await engine.execute(fresh)
        #expect(try await engine.run(id: "once").status == .completed)
        #expect(try await h.database.query("SELECT COUNT(*) AS n FROM effects")[0].int("n") == 1)
        await h.close()
    }

    @Test("a schedule starts exactly one run per tick with two replicas", arguments: DriverKind.allCases)
    func scheduleOncePerTick(_ kind: DriverKind) async throws {
        let h = try await WorkflowHarness(kind, definitions: [WorkflowDefinition(type: "Cycle") { _, input in input }])
        let other = try h.test.open()
        let a = h.engine(owner: "replica-a")
        let b = h.engine(owner: "replica-b", database: other)
        let schedule = try await a.createSchedule(
            name: "billing-cycle", cron: "*/5 * * * *", type: "Cycle", input: Array(#"{"luxor_only":false}"#.utf8))
        #expect(schedule.nextTickMs == h.clock.nowMilliseconds() + 300_000)
        var fired: [String] = []
        for _ in 0..<3 {
            #expect(try await a.fireDueSchedules().isEmpty)
            h.clock.advance(by: .seconds(300))
            async let fromA = a.fireDueSchedules()
            async let fromB = b.fireDueSchedules()
            let both = try await fromA + fromB
            #expect(both.count == 1)
            fired += both
        }
        #expect(fired == ["billing-cycle@2026-01-01T00:05Z", "billing-cycle@2026-01-01T00:10Z", "billing-cycle@2026-01-01T00:15Z"])
        #expect(try await a.list(type: "Cycle").count == 3)
        let ticks = try await h.database.query("SELECT COUNT(*) AS n FROM workflow_schedule_ticks")
        #expect(try ticks[0].int("n") == 3)
        // Ticks missed while nothing ran are skipped, except the latest.
        h.clock.advance(by: .seconds(3_600))
        #expect(try await b.fireDueSchedules() == ["billing-cycle@2026-01-01T00:20Z"])
        #expect(try await b.fireDueSchedules().isEmpty)
        await #expect { _ = try await a.createSchedule(name: "bad", cron: "61 * * * *", type: "Cycle", input: []) } throws: { error in
            "\(error)".contains("cron minute field '61'")
        }
        await other.close()
        await h.close()
    }

    @Test("schedules declared in code are created once and updated only when they change", arguments: DriverKind.allCases)
    func declaredSchedules(_ kind: DriverKind) async throws {
        let h = try await WorkflowHarness(kind, definitions: [WorkflowDefinition(type: "Cycle") { _, input in input }])
        h.catalog.register(try WorkflowScheduleDefinition(name: "monthly", cron: "0 3 1 * *", type: "Cycle", input: ["luxor_only": false]))
        h.catalog.register(try WorkflowScheduleDefinition(name: "broken", cron: "0 3 1 *", type: "Cycle", input: JSONValue.null))
        let engine = h.engine()
        #expect(await engine.ensureDeclaredSchedules().count == 1)
        let first = try await engine.schedules()
        #expect(first.map(\.name) == ["monthly"] && first[0].nextTickMs == CronExpressionTests.ms("2026-01-01T03:00:00Z"))
        h.clock.advance(by: .seconds(86_400 * 40))
        await engine.ensureDeclaredSchedules()
        #expect(try await engine.schedules()[0].nextTickMs == first[0].nextTickMs)  // unchanged: the due tick is kept
        #expect(try await engine.fireDueSchedules() == ["monthly@2026-01-01T03:00Z"])
        await h.close()
    }
}
