import Foundation
import Host
import Logging
import SQL
import ServiceLifecycle

/// The service that executes workflow runs in `tenki serve`: claims runnable runs while it has
/// free slots, renews the leases of the runs it executes, and on graceful shutdown stops
/// claiming and lets the executions in flight reach their next durable point.
package struct WorkflowWorker: Service {
    let engine: WorkflowEngine
    let pollIntervalMilliseconds: Int

    package init(engine: WorkflowEngine, pollIntervalMilliseconds: Int) {
        self.engine = engine
        self.pollIntervalMilliseconds = pollIntervalMilliseconds
    }

    package func run() async throws {
        let engine = self.engine
        if engine.database.dialect == .sqlite {
            // One `tenki serve` owns a SQLite file: runs left by a killed process are ours now.
            try await engine.database.transaction { try WorkflowStore.releaseAllLeases($0) }
        }
        let stopping = StopFlag()
        let heartbeat = Doorbell()
        let slots = SlotCounter()
        engine.logger.info(
            "workflow worker started",
            metadata: [
                "owner": .string(engine.owner), "queues": .string(engine.catalog.queues.map(\.name).joined(separator: ",")),
            ])
        await withGracefulShutdownHandler {
            await withDiscardingTaskGroup { group in
                group.addTask {
                    while !stopping.isSet {
                        await heartbeat.wait(timeoutMilliseconds: Int(engine.leaseMs / 3))
                        if stopping.isSet { break }
                        let owner = engine.owner
                        let until = engine.clock.nowMilliseconds() + engine.leaseMs
                        do {
                            try await engine.database.transaction { try WorkflowStore.renewLeases($0, owner: owner, untilMs: until) }
                        } catch {
                            engine.logger.error("workflow lease renewal failed", metadata: ["error": .string("\(error)")])
                        }
                    }
                }
                while !stopping.isSet {
                    var claimed: [WorkflowRun] = []
                    do {
                        claimed = try await engine.claim(limit: engine.concurrency - slots.busy)
                    } catch {
                        engine.logger.error("workflow claim failed", metadata: ["error": .string("\(error)")])
                    }
                    for run in claimed {
                        slots.take()
                        group.addTask {
                            await engine.execute(run)
                            slots.give()
                            engine.doorbell.ring()
                        }
                    }
                    if claimed.isEmpty || slots.busy >= engine.concurrency {
                        await engine.doorbell.wait(timeoutMilliseconds: pollIntervalMilliseconds)
                    }
                }
                heartbeat.ring()
            }
        } onGracefulShutdown: {
            stopping.set()
            engine.doorbell.ring()
            heartbeat.ring()
        }
        engine.logger.info("workflow worker stopped")
    }
}

/// Unchecked Sendable: `count` is touched only under `lock`.
final class SlotCounter: @unchecked Sendable {
    private let lock = NSLock()
    private var count = 0
    var busy: Int { lock.withLock { count } }
    func take() { lock.withLock { count += 1 } }
    func give() { lock.withLock { count -= 1 } }
}
