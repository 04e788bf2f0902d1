import Foundation
import Host
import SQL

/// Workflow types for end-to-end tests and demos, registered only with
/// `workflow_test_types = true` (`TENKI_WORKFLOW_TEST_TYPES=1`). Their effects go to
/// `workflow_test_effects`, created when the types are registered.
enum TestWorkflows {
    static let effectsTableSQL = """
        CREATE TABLE IF NOT EXISTS workflow_test_effects (workflow_id TEXT NOT NULL, step TEXT NOT NULL, execution INTEGER NOT NULL)
        """

    struct ThreeStepsInput: Codable, Sendable {
        /// The durable sleep between the second and third step.
        var sleep_ms: Int?
        /// Real time spent in a plain step before each recorded one (to be caught halfway).
        var step_delay_ms: Int?
    }

    static var definitions: [WorkflowDefinition] {
        [
            // Three transactional steps (each appends one row to workflow_test_effects, exactly
            // once) and a durable sleep before the third.
            WorkflowDefinition(type: "tenki.test.three_steps", input: ThreeStepsInput.self) { ctx, input in
                for name in ["a", "b", "c"] {
                    if name == "c" { try await ctx.sleep(.milliseconds(input.sleep_ms ?? 1_000)) }
                    if let delay = input.step_delay_ms, delay > 0 {
                        _ = try await ctx.step("think-" + name) { () async throws -> Int in
                            try await Task.sleep(nanoseconds: UInt64(delay) * 1_000_000)
                            return delay
                        }
                    }
                    let id = ctx.workflowID
                    let execution = ctx.execution
                    _ = try await ctx.transaction(name) { db -> Bool in
                        try db.execute(
                            "INSERT INTO workflow_test_effects (workflow_id, step, execution) VALUES ($1, $2, $3)",
                            [.text(id), .text(name), .integer(Int64(execution))])
                        return true
                    }
                }
                return JSONValue.object(["steps": .number(3)])
            },
            WorkflowDefinition(type: "tenki.test.echo") { _, input in input },
            // Waits for signal "go" (at most `timeout_ms` when given) and returns it.
            WorkflowDefinition(type: "tenki.test.wait_signal") { ctx, input in
                let timeout = input["timeout_ms"]?.intValue.map { Duration.milliseconds($0) }
                guard let value = try await ctx.signal("go", timeout: timeout) else { return JSONValue.object(["timed_out": .bool(true)]) }
                return JSONValue.object(["signal": value])
            },
        ]
    }
}
