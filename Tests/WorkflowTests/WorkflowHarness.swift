import Foundation
import Host
import Logging
import SQL
import TestSupport

@testable import WorkflowPlugin

/// A migrated database (SQLite or PostgreSQL), a manual clock and engines on them.
final class WorkflowHarness: Sendable {
    let test: TestDatabase
    let database: any Database
    let clock = ManualWorkflowClock()
    let catalog = WorkflowCatalog()
    /// How many times each `<workflow>/<step>` body ran.
    let runs = LockedBox<[String: Int]>([:])

    init(_ kind: DriverKind, definitions: [WorkflowDefinition] = [], queues: [WorkflowTaskQueue] = []) async throws {
        test = try TestDatabase.make(kind)
        database = try test.open()
        try await TenkiHost.migrate(database, plugins: [WorkflowPlugin.self])
        definitions.forEach(catalog.register)
        queues.forEach(catalog.register)
    }

    func engine(
        owner: String = "worker-1", catalog: WorkflowCatalog? = nil, database: (any Database)? = nil,
        concurrency: Int = 8
    ) -> WorkflowEngine {
        var logger = Logger(label: "test")
        logger.logLevel = ProcessInfo.processInfo.environment["WF_TEST_LOG"] != nil ? .debug : .critical
        return WorkflowEngine(
            database: database ?? self.database, catalog: catalog ?? self.catalog, clock: clock, owner: owner,
            leaseSeconds: 30, concurrency: concurrency, logger: logger)
    }

    /// Counts a body's run and returns the count.
    @discardableResult
    func ran(_ ctx: any WorkflowContext, _ step: String) -> Int {
        let key = ctx.workflowID + "/" + step
        var all = runs.value
        all[key, default: 0] += 1
        runs.value = all
        return all[key]!
    }

    func count(_ workflowID: String, _ step: String) -> Int { runs.value[workflowID + "/" + step] ?? 0 }

    func close() async { await database.close() }
}

struct Flaky: Error {}
