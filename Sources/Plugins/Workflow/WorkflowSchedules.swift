import Foundation
import Host
import Logging
import SQL
import ServiceLifecycle

/// A cron schedule that starts a workflow type with a fixed input at every tick.
package struct WorkflowSchedule: Sendable {
    package let name: String
    package let cron: CronExpression
    package let workflowType: String
    package let taskQueue: String
    package let input: [UInt8]
    package let nextTickMs: Int64
    package let paused: Bool
}

/// Schedules: stored in `workflow_schedules`; each tick fires exactly once however many
/// replicas look, because firing inserts the unique `(schedule, tick)` row of
/// `workflow_schedule_ticks` in the transaction that starts the run. Ticks missed while no
/// process ran are skipped, except the most recent one, which fires late.
extension WorkflowEngine {
    /// Creates the schedules plugins declare, and updates those whose cron, type, input or
    /// queue changed (their next tick is then recomputed); returns what was refused.
    @discardableResult
    package func ensureDeclaredSchedules() async -> [String] {
        var refused: [String] = []
        for schedule in catalog.schedules {
            do {
                _ = try await createSchedule(
                    name: schedule.name, cron: schedule.cron, type: schedule.type, input: schedule.input,
                    taskQueue: schedule.taskQueue, onlyIfChanged: true)
            } catch {
                refused.append("schedule \(schedule.name): \(error)")
                logger.error("declared schedule refused", metadata: ["schedule": .string(schedule.name), "error": .string("\(error)")])
            }
        }
        return refused
    }

    /// Creates or replaces a schedule. With `onlyIfChanged`, an identical existing schedule is
    /// left alone (its next tick kept).
    package func createSchedule(
        name: String, cron text: String, type: String, input: [UInt8], taskQueue: String? = nil,
        onlyIfChanged: Bool = false
    ) async throws -> WorkflowSchedule {
        guard WorkflowNames.isValid(name), !name.contains("@") else {
            throw HostError(.badRequest, "bad schedule name '\(name)': 1-200 characters, no spaces or '@'")
        }
        let cron = try CronExpression(text)
        guard let definition = catalog.definition(type) else {
            throw HostError(.badRequest, "unknown workflow type '\(type)' (known: \(catalog.types.joined(separator: ", ")))")
        }
        let queue = taskQueue ?? definition.taskQueue
        guard catalog.queues.contains(where: { $0.name == queue }) else { throw HostError(.badRequest, "no worker takes task queue '\(queue)'") }
        let nowMs = clock.nowMilliseconds()
        guard let next = cron.next(afterMs: nowMs) else { throw HostError(.badRequest, "cron '\(text)' never fires") }
        let stored: (Int64, Bool) = try await database.transaction { db in
            try db.execute(
                """
                INSERT INTO workflow_schedules (name, cron, workflow_type, task_queue, input, next_tick_ms, created_at_ms)
                VALUES ($1, $2, $3, $4, $5, $6, $7)
                ON CONFLICT (name) DO UPDATE SET cron = excluded.cron, workflow_type = excluded.workflow_type,
                    task_queue = excluded.task_queue, input = excluded.input, next_tick_ms = excluded.next_tick_ms, paused = 0
                \(onlyIfChanged ? """
                    WHERE workflow_schedules.cron <> excluded.cron OR workflow_schedules.workflow_type <> excluded.workflow_type
                        OR workflow_schedules.task_queue <> excluded.task_queue OR workflow_schedules.input <> excluded.input
                    """ : "")
                """, [.text(name), .text(cron.text), .text(type), .text(queue), WorkflowStore.text(input), .integer(next), .integer(nowMs)])
            let row = try db.queryOne("SELECT next_tick_ms, paused FROM workflow_schedules WHERE name = $1", [.text(name)])
            return (try row?.int("next_tick_ms") ?? next, try row?.bool("paused") ?? false)
        }
        return WorkflowSchedule(
            name: name, cron: cron, workflowType: type, taskQueue: queue, input: input, nextTickMs: stored.0,
            paused: stored.1)
    }

    package func deleteSchedule(name: String) async throws {
        let deleted = try await database.transaction { try $0.execute("DELETE FROM workflow_schedules WHERE name = $1", [.text(name)]) }
        guard deleted == 1 else { throw HostError(.notFound, "no schedule '\(name)'") }
    }

    package func schedules() async throws -> [WorkflowSchedule] {
        try await database.read { db in
            try db.query("SELECT name, cron, workflow_type, task_queue, input, next_tick_ms, paused FROM workflow_schedules ORDER BY name")
                .map { row in
                    WorkflowSchedule(
                        name: try row.string("name"), cron: try CronExpression(try row.string("cron")),
                        workflowType: try row.string("workflow_type"), taskQueue: try row.string("task_queue"),
                        input: try row.bytes("input"), nextTickMs: try row.int("next_tick_ms"), paused: try row.bool("paused"))
                }
        }
    }

    /// The id of the run a schedule starts for a tick: `<schedule>@<YYYY-MM-DDThh:mmZ>`.
    package static func scheduledRunID(schedule: String, tickMs: Int64) -> String {
        let minute = tickMs.floorDiv(60_000)
        let (y, m, d) = CronExpression.civil(days: minute.floorDiv(1440))
        let minuteOfDay = Int(minute.floorMod(1440))
        func two(_ n: Int) -> String { n < 10 ? "0\(n)" : "\(n)" }
        return "\(schedule)@\(y)-\(two(m))-\(two(d))T\(two(minuteOfDay / 60)):\(two(minuteOfDay % 60))Z"
    }

    /// Fires every due schedule once; returns the ids of the runs this call started.
    @discardableResult
    package func fireDueSchedules() async throws -> [String] {
        let nowMs = clock.nowMilliseconds()
        let due = try await database.read { db in
            try db.query("SELECT name FROM workflow_schedules WHERE paused = 0 AND next_tick_ms <= $1 ORDER BY name", [.integer(nowMs)])
                .map { try $0.string("name") }
        }
        var started: [String] = []
        for name in due {
            let catalog = self.catalog
            let fired: String? = try await database.transaction { db in
                guard
                    let row = try db.queryOne(
                        """
                        SELECT cron, workflow_type, task_queue, input, next_tick_ms FROM workflow_schedules
                        WHERE name = $1 AND paused = 0 AND next_tick_ms <= $2
                        """, [.text(name), .integer(nowMs)])
                else { return nil }
                let tick = try row.int("next_tick_ms")
                let cron = try CronExpression(try row.string("cron"))
                let type = try row.string("workflow_type")
                let id = WorkflowEngine.scheduledRunID(schedule: name, tickMs: tick)
                let inserted = try db.execute(
                    """
                    INSERT INTO workflow_schedule_ticks (schedule, tick_ms, workflow_id, created_at_ms) VALUES ($1, $2, $3, $4)
                    ON CONFLICT (schedule, tick_ms) DO NOTHING
                    """, [.text(name), .integer(tick), .text(id), .integer(nowMs)])
                if inserted == 1 {
                    let timeout = catalog.definition(type)?.timeout.map(WorkflowDurations.milliseconds)
                    _ = try WorkflowStore.start(
                        db, id: id, type: type, taskQueue: try row.string("task_queue"), input: try row.bytes("input"),
                        parentID: nil, deadlineAtMs: timeout.map { nowMs + $0 }, nowMs: nowMs)
                }
                // Missed ticks are skipped: the next one is after now.
                let next = cron.next(afterMs: max(tick, nowMs)) ?? Int64.max / 2
                try db.execute(
                    "UPDATE workflow_schedules SET next_tick_ms = $2 WHERE name = $1 AND next_tick_ms = $3",
                    [.text(name), .integer(next), .integer(tick)])
                return inserted == 1 ? id : nil
            }
            if let fired { started.append(fired) }
        }
        if !started.isEmpty { doorbell.ring() }
        return started
    }
}

/// Fires due schedules about once a second in `tenki serve`.
struct WorkflowSchedulerService: Service {
    let engine: WorkflowEngine
    let pollIntervalMilliseconds: Int

    func run() async throws {
        await engine.ensureDeclaredSchedules()
        let stopping = StopFlag()
        let bell = Doorbell()
        await withGracefulShutdownHandler {
            while !stopping.isSet {
                do {
                    let started = try await engine.fireDueSchedules()
                    for id in started { engine.logger.info("schedule fired", metadata: ["workflow": .string(id)]) }
                } catch {
                    engine.logger.error("schedule check failed", metadata: ["error": .string("\(error)")])
                }
                await bell.wait(timeoutMilliseconds: pollIntervalMilliseconds)
            }
        } onGracefulShutdown: {
            stopping.set()
            bell.ring()
        }
    }
}
