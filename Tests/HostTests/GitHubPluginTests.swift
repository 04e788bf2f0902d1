import Foundation
import GitHubPlugin
import Host
import Logging
import Lua
import SQL
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
                #expect(e.workflowJob.id == 289782451 || e.workflowJob.id > 0)
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
        #expect(try versions.map { "\(try $0.string("plugin"))/\(try $0.int("version"))" } == ["github/1", "host/1", "host/2"])
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

    @Test("a typed subscriber receives decoded events and writes exactly once")
    func typedSubscriber() async throws {
        let test = try TestDatabase.make(.sqlite)
        let host = try await Self.openHost(test)
        try await host.database.execute("CREATE TABLE jobs_seen (job_id BIGINT NOT NULL, action TEXT NOT NULL)")
        host.events.subscribe(GitHubEvent.subscription(name: "test.jobs", topics: ["workflow_job.*"]) { typed, _ in
            guard case .workflowJob(let job) = typed else { return { _ in } }
            return { db in
                try db.execute("INSERT INTO jobs_seen (job_id, action) VALUES ($1, $2)", [.integer(job.workflowJob.id), .text(job.action)])
            }
        })
        let fixtures = try Fixtures.github()
        try await host.database.transaction { db in
            for (index, fixture) in fixtures.enumerated() {
                let action = (try? JSONSerialization.jsonObject(with: Data(fixture.body)) as? [String: Any])?["action"] as? String
                try EventInbox.publish(in: db, topic: action.map { "\(fixture.event).\($0)" } ?? fixture.event,
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
