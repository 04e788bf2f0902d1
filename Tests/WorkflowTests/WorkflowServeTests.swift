import Foundation
import HTTPClient
import SQL
import TestSupport
import Testing

/// `tenki serve` as a process: workflows started over HTTP, the server killed with SIGKILL
/// halfway, restarted, and every run finished with no recorded step done twice.
@Suite("Workflows through a running tenki serve")
struct WorkflowServeTests {
    static let environment = [
        "TENKI_WORKFLOW_TEST_TYPES": "1", "TENKI_WORKFLOW_POLL_INTERVAL_MS": "20", "TENKI_WORKFLOW_LEASE_SECONDS": "2",
        "TENKI_LOG_LEVEL": "warning",
    ]

    static func serve(_ test: TestDatabase) async throws -> TenkiProcess {
        try await TenkiProcess.serve(dataDir: test.directory + "/data", databaseURL: test.url, secret: "s", environment: environment)
    }

    static func cli(_ test: TestDatabase, _ arguments: [String]) throws -> (status: Int32, output: String, error: String) {
        try TenkiProcess.run(
            ["workflow"] + arguments + ["--data-dir", test.directory + "/data", "--database-url", test.url],
            environment: environment)
    }

    /// Waits (polling, generous deadline) until `condition` holds on the database.
    static func waitUntil(
        _ db: any Database, _ what: String, timeoutSeconds: Double = 90,
        _ condition: @escaping @Sendable (any SQLConnection) throws -> Bool
    ) async throws {
        let deadline = Date().addingTimeInterval(timeoutSeconds)
        while try await !db.read(condition) {
            guard Date() < deadline else {
                Issue.record("timed out waiting until \(what)")
                return
            }
            try await Task.sleep(nanoseconds: 50_000_000)
        }
    }

    static func count(_ db: any SQLConnection, _ sql: String) throws -> Int {
        Int(try db.queryOne(sql)?.int("n") ?? 0)
    }

    @Test(
        "SIGKILL while 100 runs are partway through 3 steps and a sleep: after a restart all complete, no step twice",
        arguments: DriverKind.allCases)
    func crashRecovery(_ kind: DriverKind) async throws {
        let test = try TestDatabase.make(kind)
        var server = try await Self.serve(test)
        let client = HTTPClient()
        for n in 0..<100 {
            let body = #"{"type":"tenki.test.three_steps","id":"crash-\#(n)","input":{"sleep_ms":1500,"step_delay_ms":5}}"#
            let response = try await client.post(
                server.baseURL + "/workflows", headers: server.authorization + [(name: "Content-Type", value: "application/json")],
                body: Array(body.utf8))
            #expect(response.status == 201, "\(response.bodyText)")
        }
        let db = try test.open(poolSize: 2)
        try await Self.waitUntil(db, "some runs are halfway") { db in
            try Self.count(db, "SELECT COUNT(*) AS n FROM workflow_test_effects") >= 100
        }
        server.kill()
        let atKill = try await db.read { db in
            (
                effects: try Self.count(db, "SELECT COUNT(*) AS n FROM workflow_test_effects"),
                completed: try Self.count(db, "SELECT COUNT(*) AS n FROM workflow_runs WHERE status = 'completed'")
            )
        }
        #expect(atKill.effects < 300 && atKill.completed < 100, "the kill came too late to test anything: \(atKill)")

        server = try await Self.serve(test)
        try await Self.waitUntil(db, "every run completed") { db in
            try Self.count(db, "SELECT COUNT(*) AS n FROM workflow_runs WHERE status = 'completed'") == 100
        }
        let twice = try await db.query(
            """
            SELECT workflow_id, step, COUNT(*) AS n FROM workflow_test_effects GROUP BY workflow_id, step HAVING COUNT(*) > 1
            """)
        #expect(twice.isEmpty, "steps that ran twice: \(twice.map { "\($0["workflow_id"]) \($0["step"])" })")
        #expect(try await db.query("SELECT COUNT(*) AS n FROM workflow_test_effects")[0].int("n") == 300)
        // The runs that were caught halfway were replayed by the new process.
        #expect(try await db.query("SELECT COUNT(*) AS n FROM workflow_runs WHERE executions >= 2")[0].int("n") > 0)

        let result = try Self.cli(test, ["result", "crash-7"])
        #expect(result.status == 0 && result.output.trimmingCharacters(in: .whitespacesAndNewlines) == #"{"steps":3}"#)
        let described = try await server.get("/workflows/crash-7")
        let object = try JSONSerialization.jsonObject(with: Data(described.body)) as? [String: Any]
        let steps = object?["steps"] as? [[String: Any]] ?? []
        #expect(steps.compactMap { $0["name"] as? String } == ["think-a", "a", "think-b", "b", "sleep", "think-c", "c"])
        #expect(server.terminate() == 0)
        await db.close()
    }

    @Test("the same verbs over HTTP, with one status per error")
    func http() async throws {
        let test = try TestDatabase.make(.sqlite)
        let server = try await Self.serve(test)
        let client = HTTPClient()
        let json = server.authorization + [(name: "Content-Type", value: "application/json")]
        func post(_ path: String, _ body: String) async throws -> (Int, [String: Any]) {
            let response = try await client.post(server.baseURL + path, headers: json, body: Array(body.utf8))
            return (response.status, (try? JSONSerialization.jsonObject(with: Data(response.body)) as? [String: Any]) ?? [:])
        }
        func get(_ path: String) async throws -> (Int, Any?) {
            let response = try await client.get(server.baseURL + path, headers: server.authorization)
            return (response.status, try? JSONSerialization.jsonObject(with: Data(response.body), options: [.fragmentsAllowed]))
        }
        var (status, object) = try await post("/workflows", #"{"type":"tenki.test.wait_signal","id":"h-1","input":{}}"#)
        #expect(status == 201 && object["status"] as? String == "pending" && object["created"] as? Bool == true)
        (status, object) = try await post("/workflows", #"{"type":"tenki.test.wait_signal","id":"h-1","input":{"other":1}}"#)
        #expect(status == 200 && object["created"] as? Bool == false)
        (status, object) = try await post("/workflows", #"{"type":"nope"}"#)
        #expect(status == 400 && (object["message"] as? String)?.contains("unknown workflow type 'nope'") == true)
        (status, object) = try await post("/workflows", #"[1]"#)
        #expect(status == 400 && object["message"] as? String == "the body must be one JSON object")
        (status, object) = try await post("/workflows", #"{"type":"tenki.test.echo","timeout":"soon"}"#)
        #expect(status == 400)
        #expect(try await get("/workflows/none").0 == 404)
        #expect(try await get("/workflows?status=asleep").0 == 400)

        (status, object) = try await post("/workflows/h-1/signals/go", #"{"from":"http"}"#)
        #expect(status == 202, "\(object)")
        let deadline = Date().addingTimeInterval(60)
        while try await (get("/workflows/h-1/result").1 as? [String: Any])?["status"] as? String != "completed", Date() < deadline {
            try await Task.sleep(nanoseconds: 50_000_000)
        }
        let result = try await get("/workflows/h-1/result").1 as? [String: Any]
        #expect((result?["output"] as? [String: Any])?["signal"] as? [String: String] == ["from": "http"])
        #expect(try await post("/workflows/h-1/signals/go", "1").0 == 400)
        let listed = try await get("/workflows?type=tenki.test.wait_signal&status=completed").1 as? [[String: Any]]
        #expect(listed?.compactMap { $0["id"] as? String } == ["h-1"])
        #expect(try await get("/workflows/h-1/state").0 == 200)

        _ = try await post("/workflows", #"{"type":"tenki.test.wait_signal","id":"h-2","input":{}}"#)
        (status, object) = try await post("/workflows/h-2/cancel", "")
        #expect(status == 200 && object["cancelled"] as? [String] == ["h-2"])

        (status, object) = try await post("/workflow-schedules", #"{"name":"hourly","cron":"0 * * * *","type":"tenki.test.echo","input":{"a":1}}"#)
        #expect(status == 201 && object["cron"] as? String == "0 * * * *", "\(object)")
        (status, object) = try await post("/workflow-schedules", #"{"name":"bad","cron":"0 * *","type":"tenki.test.echo"}"#)
        #expect(status == 400 && (object["message"] as? String)?.contains("5 fields") == true)
        // Beside the billing plugin's own monthly cycle.
        let schedules = (try await get("/workflow-schedules").1 as? [[String: Any]])?.compactMap { $0["name"] as? String }
        #expect(schedules?.sorted() == ["billing-cycle", "hourly"], "\(schedules ?? [])")
        #expect(server.terminate() == 0)
    }

    @Test("the operators' CLI: start, list, describe, signal, cancel, result, with clear errors")
    func commandLine() async throws {
        let test = try TestDatabase.make(.sqlite)
        var r = try Self.cli(test, ["start", "--task-queue", "default", "--type", "tenki.test.wait_signal", "--input", "{}", "--id", "cli-1"])
        #expect(r.status == 0 && r.output.contains("started: cli-1"), "\(r.error)")
        r = try Self.cli(test, ["start", "--type", "tenki.test.wait_signal", "--input", "{}", "--id", "cli-1"])
        #expect(r.status == 0 && r.output.contains("exists (not started again): cli-1"))
        _ = try Self.cli(test, ["start", "--type", "tenki.test.wait_signal", "--input", "{}", "--id", "cli-2"])
        r = try Self.cli(test, ["list", "--status", "pending", "--json"])
        let listed = try JSONSerialization.jsonObject(with: Data(r.output.utf8)) as? [[String: Any]] ?? []
        #expect(Set(listed.compactMap { $0["id"] as? String }) == ["cli-1", "cli-2"])
        r = try Self.cli(test, ["result", "cli-1"])
        #expect(r.status == 75 && r.error.contains("cli-1 is pending"))

        r = try Self.cli(test, ["signal", "cli-1", "go", "--input", #"{"ok":true}"#])
        #expect(r.status == 0, "\(r.error)")
        #expect(try Self.cli(test, ["cancel", "cli-2"]).output.contains("cancelled: cli-2"))
        var server = try await Self.serve(test)
        r = try Self.cli(test, ["result", "cli-1", "--wait", "--wait-seconds", "60"])
        #expect(r.status == 0 && r.output.contains(#"{"signal":{"ok":true}}"#), "\(r.error)")
        r = try Self.cli(test, ["result", "cli-2"])
        #expect(r.status == 1 && r.error.contains("cli-2 cancelled"))
        r = try Self.cli(test, ["query", "cli-1"])
        #expect(r.status == 0 && r.output.trimmingCharacters(in: .whitespacesAndNewlines) == "{}")
        r = try Self.cli(test, ["query", "cli-1", "progress"])
        #expect(r.status == 66 && r.error.contains("has published no state 'progress'"))
        r = try Self.cli(test, ["describe", "cli-1"])
        #expect(r.output.contains("1. signal go  completed  attempts 1"), "\(r.output)")
        #expect(server.terminate() == 0)

        // Every bad input is refused with a message and the usage exit code.
        for (arguments, message, status) in [
            (["start", "--type", "tenki.test.echo", "--input", "{bad"], "--input is not valid JSON", Int32(64)),
            (["start", "--type", "NoSuchType"], "unknown workflow type 'NoSuchType'", 64),
            (["start", "--type", "tenki.test.echo", "--task-queue", "NOPE"], "no worker takes task queue 'NOPE'", 64),
            (["start", "--type", "tenki.test.echo", "--timeout", "soon"], "bad --timeout 'soon'", 64),
            (["list", "--status", "asleep"], "--status must be one of", 64),
            (["describe", "nope"], "no workflow 'nope'", 66),
            (["signal", "cli-1", "go"], "is completed; only a run that has not ended takes signals", 64),
            (["schedule", "create", "nightly", "--cron", "0 25 * * *", "--type", "tenki.test.echo"], "cron hour field '25'", 64),
        ] {
            r = try Self.cli(test, arguments)
            #expect(r.status == status && r.error.contains(message), "\(arguments): \(r.status) \(r.error)")
        }
        server = try await Self.serve(test)
        #expect(server.terminate() == 0)
    }

    @Test(
        "a running tenki serve reloads scripts_root: a new script runs, a broken edit is rejected and the old one keeps serving",
        arguments: DriverKind.allCases)
    func scriptsHotReload(_ kind: DriverKind) async throws {
        let test = try TestDatabase.make(kind)
        defer { withExtendedLifetime(test) {} }
        let scripts = test.directory + "/scripts"
        try FileManager.default.createDirectory(atPath: scripts, withIntermediateDirectories: true)
        var environment = Self.environment
        environment["TENKI_SCRIPTS_ROOT"] = scripts
        environment["TENKI_SCRIPTS_RELOAD_POLL_MS"] = "20"
        let server = try await TenkiProcess.serve(dataDir: test.directory + "/data", databaseURL: test.url, secret: "s", environment: environment)
        let client = HTTPClient()
        func status() async throws -> [String: Any] {
            let response = try await client.send(
                OutboundRequest(url: server.baseURL + "/workflow-scripts", headers: server.authorization, timeoutMilliseconds: 10_000))
            return (try JSONSerialization.jsonObject(with: Data(response.body)) as? [String: Any]) ?? [:]
        }
        func waitFor(_ what: String, _ condition: ([String: Any]) -> Bool) async throws -> [String: Any] {
            let deadline = Date().addingTimeInterval(90)
            var last = try await status()
            while !condition(last) && Date() < deadline {
                try await Task.sleep(nanoseconds: 50_000_000)
                last = try await status()
            }
            #expect(condition(last), "waiting until \(what): \(last)")
            return last
        }
        func runToEnd(_ id: String, _ input: String) async throws -> (status: Int32, output: String, error: String) {
            let body = #"{"type":"script.echo","id":"\#(id)","input":\#(input)}"#
            let response = try await client.post(
                server.baseURL + "/workflows", headers: server.authorization + [(name: "Content-Type", value: "application/json")],
                body: Array(body.utf8))
            #expect(response.status == 201, "\(response.bodyText)")
            return try TenkiProcess.run(
                [
                    "workflow", "result", id, "--wait", "--wait-seconds", "90", "--data-dir", test.directory + "/data",
                    "--database-url", test.url,
                ], environment: environment)
        }
        let first = try await status()
        #expect((first["scripts"] as? [Any])?.isEmpty == true, "\(first)")

        try "return { run = function(input) return {echo = input.x} end }".write(toFile: scripts + "/echo.lua", atomically: true, encoding: .utf8)
        let loaded = try await waitFor("script.echo serves") { ($0["scripts"] as? [[String: Any]])?.first?["type"] as? String == "script.echo" }
        var r = try await runToEnd("e-1", #"{"x":1}"#)
        #expect(r.status == 0 && r.output.contains(#"{"echo":1}"#), "\(r.output) \(r.error)")

        try "return { run = function(input) return {echo = input.x end }".write(toFile: scripts + "/echo.lua", atomically: true, encoding: .utf8)
        let rejected = try await waitFor("the broken edit is rejected") { $0["last_rejection"] != nil }
        let errors = (rejected["last_rejection"] as? [String: Any])?["errors"] as? [String] ?? []
        #expect(errors.contains { $0.contains("echo.lua:1:") }, "\(rejected)")
        #expect(rejected["version"] as? String == loaded["version"] as? String)
        r = try await runToEnd("e-2", #"{"x":2}"#)
        #expect(r.status == 0 && r.output.contains(#"{"echo":2}"#), "\(r.output) \(r.error)")

        // The CLI checks the directory as a reload would take it.
        r = try TenkiProcess.run(
            ["workflow", "scripts", "--data-dir", test.directory + "/data", "--database-url", test.url], environment: environment)
        #expect(r.status == 65 && r.output.contains("refused  echo.lua:1:"), "\(r.status) \(r.output) \(r.error)")
        #expect(server.terminate() == 0)
    }
}
