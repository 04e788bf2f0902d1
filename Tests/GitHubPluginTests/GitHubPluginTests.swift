import Foundation
import GitHubPlugin
import Host
import Logging
import Lua
import SQL
import TenkiCrypto
import TestSupport
import Testing

@Suite("GitHub plugin inside the host")
struct GitHubPluginTests {
    static func openHost(_ test: TestDatabase) async throws -> TenkiHost {
        var configuration = HostConfiguration()
        configuration.dataDir = test.directory
        configuration.databaseURL = test.url
        configuration.githubWebhookSecret = "s"
        var logger = Logger(label: "test")
        logger.logLevel = .critical
        return try await TenkiHost.open(configuration, plugins: [GitHubPlugin.self], logger: logger)
    }

    @Test("every fixture decodes to its typed event")
    func typedEvents() throws {
        for fixture in try Fixtures.github() {
            let event = try GitHubEvent.decode(type: fixture.event, payload: fixture.body)
            switch (fixture.event, event) {
            case ("ping", .ping(let ping)): #expect(ping.zen != nil)
            case ("installation", .installation(let e)): #expect(e.installation.id > 0)
            case ("installation_repositories", .installationRepositories(let e)):
                #expect(!(e.repositoriesAdded + e.repositoriesRemoved).isEmpty)
            case ("workflow_job", .workflowJob(let e)):
                #expect(e.workflowJob.id == 289_782_451 || e.workflowJob.id > 0)
                #expect(!e.workflowJob.labels.isEmpty)
            case ("workflow_run", .workflowRun(let e)): #expect(e.workflowRun.id > 0)
            case ("push", .push(let e)): #expect(e.ref.hasPrefix("refs/"))
            default: Issue.record("\(fixture.file) decoded as \(event)")
            }
        }
        let completed = try Fixtures.github().first { $0.file.hasPrefix("workflow_job.completed") }!
        guard case .workflowJob(let job) = try GitHubEvent.decode(type: "workflow_job", payload: completed.body) else {
            Issue.record("not a workflow_job")
            return
        }
        #expect(job.workflowJob.startedAt == "2021-08-05T10:34:58Z")
        #expect(job.workflowJob.completedAt == "2021-08-05T10:38:16Z")
        #expect(job.workflowJob.labels == ["ubuntu-latest"])
        #expect(job.installation == nil)
        #expect(job.organization != nil)
    }

    @Test("the host assembles the plugin: migrations, subscriptions and Lua functions", arguments: DriverKind.allCases)
    func hostAssemblesPlugin(_ kind: DriverKind) async throws {
        let test = try TestDatabase.make(kind)
        let host = try await Self.openHost(test)
        let versions = try await host.database.query("SELECT plugin, version FROM schema_migrations ORDER BY plugin, version")
        #expect(try versions.map { "\(try $0.string("plugin"))/\(try $0.int("version"))" } == ["github/1", "host/1", "host/2", "host/3"])
        // Opening again applies nothing new.
        #expect(try await TenkiHost.migrate(host.database, plugins: [GitHubPlugin.self]).allSatisfy { $0.1.isEmpty })

        let lua = try LuaState()
        LuaHostFunction.install(host.luaFunctions, into: lua, readOnlyOnly: true)
        let signed = try lua.run("return github.signature(\"It's a Secret to Everybody\", 'Hello, World!')")
        #expect(signed == ["sha256=757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17"])
        let misuse = #expect(throws: LuaError.self) { try lua.run("github.signature(1)", chunkName: "@p.lua") }
        #expect(misuse?.line == 1)
        await host.database.close()
    }

    @Test("a delivery whose kept headers exceed the stored-header limit is refused with 431 and nothing is stored")
    func storedHeaderLimit() async throws {
        let test = try TestDatabase.make(.sqlite)
        let host = try await Self.openHost(test)
        let plugin = try #require(host.plugin(GitHubPlugin.self))
        let body = Array(#"{"zen":"Keep it logically awesome."}"#.utf8)
        func headers(userAgent: String, delivery: String) -> [String: String] {
            [
                "x-github-event": "ping", "x-github-delivery": delivery, "user-agent": userAgent,
                "x-hub-signature-256": WebhookSignature.gitHubHeader(secret: Array("s".utf8), body: body),
            ]
        }
        let big = String(repeating: "a", count: HostLimits.webhookMaxStoredHeaderBytes)
        #expect(try await plugin.receive(headers: headers(userAgent: big, delivery: "big"), body: body) == 431)
        #expect(try await plugin.receive(headers: headers(userAgent: "GitHub-Hookshot/1", delivery: "small"), body: body) == 202)
        let stored = try await host.database.query("SELECT delivery_id FROM github_deliveries ORDER BY delivery_id")
        #expect(try stored.map { try $0.string("delivery_id") } == ["small"])
        await host.database.close()
    }

    @Test("a typed subscriber receives decoded events and writes exactly once")
    func typedSubscriber() async throws {
        let test = try TestDatabase.make(.sqlite)
        let host = try await Self.openHost(test)
        try await host.database.execute("CREATE TABLE jobs_seen (job_id BIGINT NOT NULL, action TEXT NOT NULL)")
        host.events.subscribe(
            GitHubEvent.subscription(name: "test.jobs", topics: ["workflow_job.*"]) { typed, _ in
                guard case .workflowJob(let job) = typed else { return { _ in } }
                return { db in
                    try db.execute("INSERT INTO jobs_seen (job_id, action) VALUES ($1, $2)", [.integer(job.workflowJob.id), .text(job.action)])
                }
            })
        let fixtures = try Fixtures.github()
        try await host.database.transaction { db in
            for (index, fixture) in fixtures.enumerated() {
                let action = (try? JSONSerialization.jsonObject(with: Data(fixture.body)) as? [String: Any])?["action"] as? String
                try EventInbox.publish(
                    in: db, topic: action.map { "\(fixture.event).\($0)" } ?? fixture.event,
                    source: "github", sourceID: "t\(index)", payload: fixture.body)
            }
        }
        let dispatcher = host.events.dispatcher()
        while try await dispatcher.dispatchOnce() > 0 {}
        let rows = try await host.database.query("SELECT action FROM jobs_seen ORDER BY action")
        #expect(try rows.map { try $0.string("action") } == ["completed", "in_progress", "queued", "waiting"])
        await host.database.close()
    }
}

@Suite("workflow_job read from the scanned bytes")
struct WorkflowJobScanTests {
    /// What the general decoder makes of a payload, for comparison.
    static func reference(_ body: [UInt8]) throws -> GitHubEvent.WorkflowJob {
        let decoder = JSONDecoder()
        decoder.keyDecodingStrategy = .convertFromSnakeCase
        return try decoder.decode(GitHubEvent.WorkflowJob.self, from: Data(body))
    }

    static func same(_ a: GitHubEvent.WorkflowJob, _ b: GitHubEvent.WorkflowJob) -> Bool {
        a.action == b.action && a.workflowJob == b.workflowJob && a.repository == b.repository && a.installation == b.installation
            && a.organization == b.organization
    }

    @Test("every workflow_job fixture reads the same as with the general decoder, also with edits")
    func fixturesMatch() throws {
        let fixtures = try Fixtures.github().filter { $0.event == "workflow_job" }
        #expect(fixtures.count >= 3)
        for fixture in fixtures {
            guard case .workflowJob(let scanned) = try GitHubEvent.decode(type: "workflow_job", payload: fixture.body) else {
                Issue.record("\(fixture.file) did not decode as a workflow_job")
                continue
            }
            #expect(Self.same(scanned, try Self.reference(fixture.body)), "\(fixture.file)")
            #expect(try GitHubEvent.WorkflowJob.scanned(fixture.body) != nil, "the scanned path read \(fixture.file)")
            // Escapes, unicode, nulls, an organization and a run attempt change nothing either.
            var object = try JSONSerialization.jsonObject(with: Data(fixture.body)) as! [String: Any]
            var job = object["workflow_job"] as! [String: Any]
            job["name"] = "build \"äöü\" \\ \u{1F680}\n"
            job["labels"] = ["tenki-2c-4gb", "gpu\t\"x\""]
            job["run_attempt"] = 3
            job["runner_name"] = NSNull()
            object["workflow_job"] = job
            object["organization"] = ["id": 42, "login": "Acme", "type": "Organization"]
            let edited = Array(try JSONSerialization.data(withJSONObject: object))
            guard case .workflowJob(let again) = try GitHubEvent.decode(type: "workflow_job", payload: edited) else {
                Issue.record("edited \(fixture.file) did not decode")
                continue
            }
            #expect(Self.same(again, try Self.reference(edited)) && again.workflowJob.name == "build \"äöü\" \\ \u{1F680}\n")
            #expect(try GitHubEvent.WorkflowJob.scanned(edited)?.workflowJob.labels == ["tenki-2c-4gb", "gpu\t\"x\""])
        }
    }

    @Test("a payload missing a required field is refused as the general decoder refuses it")
    func missingField() throws {
        let body = Array(
            (#"{"action":"queued","workflow_job":{"id":1,"name":"x","status":"queued","labels":[]},"repository":{"id":2,"name":"r","#
                + #""full_name":"o/r"}}"#).utf8)
        #expect(throws: (any Error).self) { try GitHubEvent.decode(type: "workflow_job", payload: body) }
        let wrongType = Array(
            (#"{"action":"queued","workflow_job":{"id":"1","run_id":1,"name":"x","status":"queued","labels":[]},"repository":{"id":2,"#
                + #""name":"r","full_name":"o/r"}}"#).utf8)
        #expect(throws: (any Error).self) { try GitHubEvent.decode(type: "workflow_job", payload: wrongType) }
        #expect(try GitHubEvent.WorkflowJob.scanned(wrongType) == nil)
    }
}
