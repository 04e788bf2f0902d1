import Foundation
import GitHubPlugin
import Host
import LedgerPlugin
import Logging
import PluginTestSupport
import RunnerPlugin
import SQL
import TestSupport
import Testing
import WorkflowPlugin

/// A host with the GitHub, ledger and runner plugins on a test database, fed with GitHub
/// events through the durable inbox exactly as deliveries are, and driven round by round.
final class RunnerHarness: Sendable {
    let test: TestDatabase
    let host: TenkiHost
    let runner: RunnerPlugin
    /// Runs the installation workflows (there is no worker service in these tests).
    let workflows: WorkflowEngine
    let ledger: LedgerStore
    let providerLog: String
    static let installation: Int64 = 957387  // the installation of the fixture installation.created

    init(_ kind: DriverKind) async throws {
        test = try TestDatabase.make(kind)
        providerLog = test.directory + "/provider.log"
        var configuration = HostConfiguration()
        configuration.dataDir = test.directory
        configuration.databaseURL = test.url
        configuration.githubWebhookSecret = "s"
        configuration.policyRoot = Fixtures.packageRoot + "/policies"
        configuration.scriptsRoot = test.directory + "/no-scripts"
        configuration.runnerLocalCommand = "echo \"$TENKI_ACTION $TENKI_JOB_KEY $TENKI_SKU\" >> '\(providerLog)'"
        var logger = Logger(label: "test")
        logger.logLevel = .critical
        host = try await TenkiHost.open(
            configuration, plugins: [GitHubPlugin.self, LedgerPlugin.self, WorkflowPlugin.self, RunnerPlugin.self],
            logger: logger)
        runner = try #require(host.plugin(RunnerPlugin.self))
        workflows = try #require(host.plugin(WorkflowPlugin.self)).engine
        ledger = LedgerStore(database: host.database)
    }

    /// Publishes one GitHub event into the inbox (under `deliveryID`, else a new one) and
    /// dispatches everything pending, and runs the workflows it signalled.
    func deliver(_ event: String, _ payload: [UInt8], deliveryID: String = UUID().uuidString) async throws {
        try await publish(event, payload, deliveryID: deliveryID)
        try await settle()
    }

    func publish(_ event: String, _ payload: [UInt8], deliveryID: String = UUID().uuidString) async throws {
        let action = (try JSONSerialization.jsonObject(with: Data(payload)) as? [String: Any])?["action"] as? String
        let topic = action.map { "\(event).\($0)" } ?? event
        try await host.database.transaction { db in
            _ = try EventInbox.publish(in: db, topic: topic, source: GitHubPlugin.eventSource, sourceID: deliveryID, payload: payload)
        }
    }

    /// Dispatches every pending event and runs the workflows until nothing is left to do.
    func settle() async throws {
        let dispatcher = host.events.dispatcher()
        while try await dispatcher.dispatchOnce() > 0 {}
        try await workflows.drain()
    }

    func installFixture() async throws {
        let fixture = try Fixtures.github().first { $0.file == "installation.created.payload.json" }!
        try await deliver("installation", fixture.body)
    }

    static func job(
        _ action: String, id: Int64, labels: [String], started: String? = nil, completed: String? = nil,
        runner: String? = nil, attempt: Int = 1
    ) -> [UInt8] {
        var job: [String: Any] = [
            "id": id, "run_id": 1000 + id, "run_attempt": attempt, "name": "build \(id)", "workflow_name": "CI", "head_branch": "main",
            "status": action == "in_progress" ? "in_progress" : action, "labels": labels, "created_at": "2026-01-05T09:59:00Z",
            "head_sha": "abc123",
        ]
        if let started { job["started_at"] = started }
        // As GitHub does: a queued job's started_at is its queue time, not when it runs.
        if action == "queued" { job["started_at"] = "2026-01-01T00:00:00Z" }
        if let completed {
            job["completed_at"] = completed
            job["conclusion"] = "success"
        }
        if let runner { job["runner_name"] = runner }
        let payload: [String: Any] = [
            "action": action, "workflow_job": job,
            "repository": [
                "id": 1_296_269, "name": "Hello-World", "full_name": "Codertocat/Hello-World", "private": false,
                "owner": ["id": 21_031_067, "login": "Codertocat", "type": "User"],
            ],
            "installation": ["id": installation],
        ]
        return Array(try! JSONSerialization.data(withJSONObject: payload))
    }

    /// queued → in_progress → completed for one job, with `minutes` of run time.
    func runJob(_ id: Int64, labels: [String], minutes: Int, startMinute: Int = 0) async throws {
        try await deliver("workflow_job", Self.job("queued", id: id, labels: labels))
        let started = Self.time(minute: startMinute)
        let completed = Self.time(minute: startMinute + minutes)
        try await deliver("workflow_job", Self.job("in_progress", id: id, labels: labels, started: started, runner: "tenki-\(id)"))
        try await deliver(
            "workflow_job", Self.job("completed", id: id, labels: labels, started: started, completed: completed, runner: "tenki-\(id)"))
    }

    static func time(minute: Int) -> String {
        String(format: "2026-01-05T%02d:%02d:00Z", 10 + minute / 60, minute % 60)
    }

    /// A scheduler that asks `github` whether released jobs still wait, with no compute provider.
    func scheduler(askingGitHub github: FakeGitHub) async throws -> JobScheduler {
        JobScheduler(
            store: runner.store, ledger: ledger, policies: host.policies, provider: NoProvider(), logger: host.logger,
            github: try await github.client())
    }

    var workspaceID: String { "ws-21031067" }

    func count(_ status: JobStatus) async throws -> Int { try await runner.store.jobs(status: status).count }
}

@Suite("Runner plugin: jobs from webhook to ledger")
struct RunnerPluginTests {
    @Test("an installation makes a workspace with its repositories and 1,000 signup free minutes", arguments: DriverKind.allCases)
    func installation(_ kind: DriverKind) async throws {
        let h = try await RunnerHarness(kind)
        defer { withExtendedLifetime(h) {} }
        try await h.installFixture()
        try await h.installFixture()  // redelivered: nothing new
        let workspaces = try await h.runner.store.workspaces()
        #expect(workspaces.map(\.slug) == ["codertocat"])
        let round = try await h.runner.scheduler.runOnce()
        #expect(round.credited == 1)
        #expect(try await h.runner.scheduler.runOnce().credited == 0)
        #expect(try await h.ledger.balance(workspace: h.workspaceID).freeMinutesRemaining == 1_000)
        let repos = try await h.host.database.query(
            "SELECT full_name FROM runner_repositories WHERE installation_id = $1",
            [.integer(RunnerHarness.installation)])
        #expect(try repos.map { try $0.string("full_name") } == ["Codertocat/Hello-World"])
    }

    @Test("a job goes queued → provisioned → running → completed and is charged once, free minutes first", arguments: DriverKind.allCases)
    func lifecycle(_ kind: DriverKind) async throws {
        let h = try await RunnerHarness(kind)
        defer { withExtendedLifetime(h) {} }
        try await h.installFixture()
        try await h.deliver("workflow_job", RunnerHarness.job("queued", id: 1, labels: ["tenki-4c-8gb"]))
        #expect(try await h.count(.queued) == 1)
        let first = try await h.runner.scheduler.runOnce()
        #expect(first.admitted == 1 && first.scheduled == 1 && first.provisioned == 1)
        let provisioned = try #require(try await h.runner.store.job(installationID: RunnerHarness.installation, jobID: 1, runAttempt: 1))
        #expect(provisioned.status == .provisioned && provisioned.sku == "x64-4c-8gb" && provisioned.arch == "x64")
        #expect(try String(contentsOfFile: h.providerLog, encoding: .utf8) == "provision \(RunnerHarness.installation)/1/1 x64-4c-8gb\n")

        let started = RunnerHarness.time(minute: 0)
        let completed = "2026-01-05T10:09:31Z"
        try await h.deliver("workflow_job", RunnerHarness.job("in_progress", id: 1, labels: ["tenki-4c-8gb"], started: started, runner: "r1"))
        #expect(try await h.count(.running) == 1)
        try await h.deliver(
            "workflow_job",
            RunnerHarness.job(
                "completed", id: 1, labels: ["tenki-4c-8gb"], started: started,
                completed: completed, runner: "r1"))
        let done = try await h.runner.scheduler.runOnce()
        #expect(done.charged == 1 && done.released == 1)
        // 9 min 31 s bills as 10 minutes; 4 vCPU takes 2 free minutes a minute.
        let usage = try #require(try await h.runner.store.usage(key: "\(RunnerHarness.installation)/1/1"))
        #expect(usage.billableMinutes == 10 && usage.freeMinutesConsumed == 20 && usage.amountMicros == 0 && usage.posted)
        #expect(usage.decision.contains("\"policy_version\""))
        #expect(try await h.ledger.balance(workspace: h.workspaceID).freeMinutesRemaining == 980)
        #expect(try String(contentsOfFile: h.providerLog, encoding: .utf8).hasSuffix("release \(RunnerHarness.installation)/1/1 x64-4c-8gb\n"))
        // Nothing more to do, and nothing charged twice.
        #expect(try await h.runner.scheduler.runOnce().didWork == false)
        #expect(try await h.ledger.transfers(workspace: h.workspaceID).count == 2)  // signup credit + the job's minutes
    }

    @Test("duplicate and out-of-order deliveries: completed before in_progress, the same event twice", arguments: DriverKind.allCases)
    func outOfOrder(_ kind: DriverKind) async throws {
        let h = try await RunnerHarness(kind)
        defer { withExtendedLifetime(h) {} }
        try await h.installFixture()
        let labels = ["tenki-2c-4gb"]
        let started = RunnerHarness.time(minute: 0)
        let completed = RunnerHarness.time(minute: 7)
        try await h.deliver(
            "workflow_job", RunnerHarness.job("completed", id: 7, labels: labels, started: started, completed: completed, runner: "r"))
        try await h.deliver("workflow_job", RunnerHarness.job("in_progress", id: 7, labels: labels, started: started, runner: "r"))
        try await h.deliver("workflow_job", RunnerHarness.job("queued", id: 7, labels: labels))
        try await h.deliver(
            "workflow_job", RunnerHarness.job("completed", id: 7, labels: labels, started: started, completed: completed, runner: "r"))
        let job = try #require(try await h.runner.store.job(installationID: RunnerHarness.installation, jobID: 7, runAttempt: 1))
        #expect(job.status == .completed && job.startedAt == started && job.completedAt == completed)
        #expect(try await h.runner.scheduler.runOnce().charged == 1)
        #expect(try await h.runner.scheduler.runOnce().charged == 0)
        #expect(try await h.ledger.balance(workspace: h.workspaceID).freeMinutesRemaining == 993)

        // A job cancelled while queued never started: it costs nothing and frees its place.
        try await h.deliver("workflow_job", RunnerHarness.job("queued", id: 8, labels: labels))
        try await h.deliver("workflow_job", RunnerHarness.job("completed", id: 8, labels: labels, completed: completed))
        #expect(try await h.runner.scheduler.runOnce().charged == 0)
        #expect(
            try await h.runner.store.job(installationID: RunnerHarness.installation, jobID: 8, runAttempt: 1)?.chargeStatus
                == ChargeStatus.notBillable)
        // A second run attempt is its own job.
        try await h.runJob(7, labels: labels, minutes: 3)
        _ = try await h.deliver("workflow_job", RunnerHarness.job("queued", id: 7, labels: labels, attempt: 2))
        #expect(try await h.runner.store.job(installationID: RunnerHarness.installation, jobID: 7, runAttempt: 2)?.status == .queued)
    }

    @Test("50 jobs against 40 slots: exactly 40 provisioned, the other 10 start one by one as slots free", arguments: DriverKind.allCases)
    func slots(_ kind: DriverKind) async throws {
        let h = try await RunnerHarness(kind)
        defer { withExtendedLifetime(h) {} }
        try await h.installFixture()
        let unknown = await #expect(throws: HostError.self) { try await h.runner.store.update(workspace: "nobody", .init(hasPaymentMethod: true)) }
        #expect(unknown?.code == .notFound)  // 404 on a route, exit 66 from `tenki workspaces set`
        try await h.runner.store.update(workspace: "codertocat", .init(hasPaymentMethod: true))
        for id in 1...50 { try await h.deliver("workflow_job", RunnerHarness.job("queued", id: Int64(id), labels: ["tenki-2c-4gb"])) }
        let round = try await h.runner.scheduler.runOnce()
        #expect(round.admitted == 50 && round.scheduled == 40 && round.provisioned == 40)
        #expect(try await h.count(.provisioned) == 40)
        #expect(try await h.count(.waiting) == 10)
        #expect(try await h.runner.scheduler.runOnce().scheduled == 0)
        // A macOS job has its own limit and is not held back by the x64 queue.
        try await h.runner.store.update(workspace: "codertocat", .init(addons: ["macos-m4"]))
        for id in 1...10 {
            // Job `id` finishes; the oldest waiting job (40 + id) takes its slot.
            try await h.deliver(
                "workflow_job",
                RunnerHarness.job(
                    "completed", id: Int64(id), labels: ["tenki-2c-4gb"],
                    started: RunnerHarness.time(minute: 0), completed: RunnerHarness.time(minute: 1), runner: "r"))
            let next = try await h.runner.scheduler.runOnce()
            #expect(next.scheduled == 1, "after job \(id) completed")
            let started = try #require(try await h.runner.store.job(installationID: RunnerHarness.installation, jobID: Int64(40 + id), runAttempt: 1))
            #expect(started.status == .provisioned, "job \(40 + id)")
            #expect(try await h.count(.provisioned) == 40)
        }
        #expect(try await h.count(.waiting) == 0)
    }

    @Test(
        "jobs waiting for a slot are judged again when the workspace changes: new slots, an abuse verdict",
        arguments: DriverKind.allCases)
    func waitingJobsTakeWorkspaceChanges(_ kind: DriverKind) async throws {
        let h = try await RunnerHarness(kind)
        defer { withExtendedLifetime(h) {} }
        try await h.installFixture()
        try await h.runner.store.update(workspace: "codertocat", .init(hasPaymentMethod: true))
        for id in 1...41 { try await h.deliver("workflow_job", RunnerHarness.job("queued", id: Int64(id), labels: ["tenki-2c-4gb"])) }
        #expect(try await h.runner.scheduler.runOnce().scheduled == 40)
        #expect(try await h.count(.waiting) == 1)
        // Ten more slots bought: the job that waited takes one now, not after one of the 40 ends.
        try await h.runner.store.update(workspace: "codertocat", .init(extraSlotsX64: 10))
        #expect(try await h.runner.scheduler.runOnce().scheduled == 1)
        #expect(try await h.count(.provisioned) == 41)
        #expect(try await h.count(.waiting) == 0)
        // A suspending abuse verdict: a job that waited for a slot does not get the next one.
        for id in 42...51 { try await h.deliver("workflow_job", RunnerHarness.job("queued", id: Int64(id), labels: ["tenki-2c-4gb"])) }
        #expect(try await h.runner.scheduler.runOnce().scheduled == 9)
        #expect(try await h.count(.waiting) == 1)
        try await h.runner.store.update(workspace: "codertocat", .init(abuseAction: .some("suspend")))
        try await h.deliver(
            "workflow_job",
            RunnerHarness.job(
                "completed", id: 1, labels: ["tenki-2c-4gb"],
                started: RunnerHarness.time(minute: 0), completed: RunnerHarness.time(minute: 1), runner: "r"))
        let round = try await h.runner.scheduler.runOnce()
        #expect(round.blocked == 1 && round.scheduled == 0)
        #expect(try await h.runner.store.jobs(status: .blocked).map(\.blockReason) == ["abuse"])
    }

    @Test("two replicas scheduling at once on one database never exceed the limit", arguments: DriverKind.allCases)
    func twoReplicas(_ kind: DriverKind) async throws {
        let h = try await RunnerHarness(kind)
        defer { withExtendedLifetime(h) {} }
        let second = try await TenkiHost.open(
            h.host.configuration, plugins: [GitHubPlugin.self, LedgerPlugin.self, WorkflowPlugin.self, RunnerPlugin.self],
            logger: h.host.logger)
        let other = try #require(second.plugin(RunnerPlugin.self))
        try await h.installFixture()
        try await h.runner.store.update(workspace: "codertocat", .init(hasPaymentMethod: true))
        for id in 1...60 { try await h.deliver("workflow_job", RunnerHarness.job("queued", id: Int64(id), labels: ["tenki-2c-4gb"])) }
        for _ in 0..<3 {
            async let a = h.runner.scheduler.runOnce()
            async let b = other.scheduler.runOnce()
            _ = try await (a, b)
        }
        #expect(try await h.count(.provisioned) == 40)
        #expect(try await h.count(.waiting) == 20)
        // Each job was provisioned once, by one replica or the other.
        let lines = try String(contentsOfFile: h.providerLog, encoding: .utf8).split(separator: "\n")
        #expect(lines.count == 40 && Set(lines).count == 40)
    }

    @Test("blocked jobs wait for their reason to clear, then are admitted", arguments: DriverKind.allCases)
    func blockedAndReleased(_ kind: DriverKind) async throws {
        let h = try await RunnerHarness(kind)
        defer { withExtendedLifetime(h) {} }
        try await h.installFixture()
        try await h.deliver("workflow_job", RunnerHarness.job("queued", id: 1, labels: ["tenki-macos-m4-6c"]))
        try await h.deliver("workflow_job", RunnerHarness.job("queued", id: 2, labels: ["ubuntu-latest"]))
        let round = try await h.runner.scheduler.runOnce()
        #expect(round.blocked == 1 && round.foreign == 1 && round.provisioned == 0)
        let blocked = try #require(try await h.runner.store.job(installationID: RunnerHarness.installation, jobID: 1, runAttempt: 1))
        #expect(blocked.status == .blocked && blocked.blockReason == "addon_required")
        // Scripts hear of it: one `runner_job.blocked` event with the job and the reason.
        let events = try await h.host.database.query("SELECT payload FROM event_inbox WHERE topic = 'runner_job.blocked'")
        #expect(events.count == 1)
        let payload = try JSONSerialization.jsonObject(with: Data(try events.first?.bytes("payload") ?? [])) as? [String: Any]
        #expect(payload?["reason"] as? String == "addon_required" && payload?["repository"] as? String == "Codertocat/Hello-World")
        #expect(payload?["head_sha"] as? String == "abc123" && payload?["installation_id"] as? Int == Int(RunnerHarness.installation))
        #expect(try await h.runner.store.job(installationID: RunnerHarness.installation, jobID: 2, runAttempt: 1)?.status == .foreign)

        #expect(try await h.runner.store.update(workspace: "codertocat", .init(hasPaymentMethod: true, addons: ["macos-m4"])) == 1)
        let released = try await h.runner.scheduler.runOnce()
        #expect(released.admitted == 1 && released.provisioned == 1)
        #expect(try await h.runner.store.job(installationID: RunnerHarness.installation, jobID: 1, runAttempt: 1)?.status == .provisioned)

        // A suspended workspace blocks new jobs; lifting the suspension releases them.
        try await h.runner.store.update(workspace: "codertocat", .init(suspended: true))
        try await h.deliver("workflow_job", RunnerHarness.job("queued", id: 3, labels: ["tenki-2c-4gb"]))
        _ = try await h.runner.scheduler.runOnce()
        #expect(
            try await h.runner.store.job(installationID: RunnerHarness.installation, jobID: 3, runAttempt: 1)?.blockReason == "workspace_suspended")
        try await h.runner.store.update(workspace: "codertocat", .init(suspended: false))
        _ = try await h.runner.scheduler.runOnce()
        #expect(try await h.runner.store.job(installationID: RunnerHarness.installation, jobID: 3, runAttempt: 1)?.status == .provisioned)
    }

    @Test("a released block runs only jobs GitHub still shows queued", arguments: DriverKind.allCases)
    func releasedOnlyIfStillQueued(_ kind: DriverKind) async throws {
        let h = try await RunnerHarness(kind)
        defer { withExtendedLifetime(h) {} }
        let github = try FakeGitHub()
        let scheduler = try await h.scheduler(askingGitHub: github)
        try await h.installFixture()
        for id in 1...3 { try await h.deliver("workflow_job", RunnerHarness.job("queued", id: Int64(id), labels: ["tenki-macos-m4-6c"])) }
        #expect(try await scheduler.runOnce().blocked == 3)
        try await github.setJob("Codertocat/Hello-World", 1, status: "queued")
        try await github.setJob("Codertocat/Hello-World", 2, status: "completed", conclusion: "cancelled")
        // Job 3 is unknown to GitHub (deleted run): 404.
        #expect(try await h.runner.store.update(workspace: "codertocat", .init(hasPaymentMethod: true, addons: ["macos-m4"])) == 3)
        let round = try await scheduler.runOnce()
        #expect(round.admitted == 1 && round.dropped == 2 && round.provisioned == 1)
        let jobs = try await h.runner.store.jobs()
        #expect(jobs.map(\.status) == [.provisioned, .completed, .completed])
        #expect(jobs.map(\.conclusion) == [nil, "cancelled", "gone_from_github"])
        #expect(jobs.map(\.chargeStatus) == [.notBillable, .notBillable, .notBillable])
        // Jobs admitted the first time are not asked about: GitHub is called only for released ones.
        try await h.deliver("workflow_job", RunnerHarness.job("queued", id: 4, labels: ["tenki-macos-m4-6c"]))
        let asked = try await github.requests().filter { ($0["path"] as? String)?.contains("/actions/jobs/") == true }.count
        #expect(try await scheduler.runOnce().admitted == 1)
        #expect(try await github.requests().filter { ($0["path"] as? String)?.contains("/actions/jobs/") == true }.count == asked)
    }

    @Test("a released job GitHub shows requested, waiting or pending has not started: it runs", arguments: DriverKind.allCases)
    func releasedWhileRequested(_ kind: DriverKind) async throws {
        let h = try await RunnerHarness(kind)
        defer { withExtendedLifetime(h) {} }
        let github = try FakeGitHub()
        let scheduler = try await h.scheduler(askingGitHub: github)
        try await h.installFixture()
        let statuses = ["requested", "waiting", "pending"]
        for id in 1...statuses.count {
            try await h.deliver("workflow_job", RunnerHarness.job("queued", id: Int64(id), labels: ["tenki-macos-m4-6c"]))
            try await github.setJob("Codertocat/Hello-World", Int64(id), status: statuses[id - 1])
        }
        #expect(try await scheduler.runOnce().blocked == 3)
        #expect(try await h.runner.store.update(workspace: "codertocat", .init(hasPaymentMethod: true, addons: ["macos-m4"])) == 3)
        let round = try await scheduler.runOnce()
        #expect(round.admitted == 3 && round.dropped == 0 && round.provisioned == 3)
        #expect(try await h.runner.store.jobs().map(\.status) == [.provisioned, .provisioned, .provisioned])
    }

    @Test("the abuse rules see every job: a miner blocks the workspace's next jobs with reason abuse", arguments: DriverKind.allCases)
    func abuse(_ kind: DriverKind) async throws {
        let h = try await RunnerHarness(kind)
        defer { withExtendedLifetime(h) {} }
        try await h.installFixture()
        try await h.runner.store.update(workspace: "codertocat", .init(hasPaymentMethod: true))
        try await h.runJob(1, labels: ["tenki-2c-4gb"], minutes: 5)
        #expect(try await h.runner.scheduler.runOnce().flagged == 0)
        #expect(try await h.runner.store.workspace("codertocat")?.abuseAction == nil)
        // The job's name carries a miner's signature (job payloads name it "build <id>").
        var payload = try JSONSerialization.jsonObject(with: Data(RunnerHarness.job("queued", id: 2, labels: ["tenki-2c-4gb"]))) as! [String: Any]
        var job = payload["workflow_job"] as! [String: Any]
        job["name"] = "xmrig --donate-level 1"
        payload["workflow_job"] = job
        try await h.deliver("workflow_job", Array(try JSONSerialization.data(withJSONObject: payload)))
        try await h.deliver("workflow_job", RunnerHarness.job("queued", id: 3, labels: ["tenki-2c-4gb"]))
        let round = try await h.runner.scheduler.runOnce()
        #expect(round.flagged == 1 && round.blocked == 2 && round.provisioned == 0)
        #expect(try await h.runner.store.workspace("codertocat")?.abuseAction == "suspend")
        #expect(try await h.runner.store.jobs(status: .blocked).map(\.blockReason) == ["abuse", "abuse"])
    }

    @Test("free minutes run out mid-job: the rest is charged in money, to the micro-cent", arguments: DriverKind.allCases)
    func freeMinutesThenMoney(_ kind: DriverKind) async throws {
        let h = try await RunnerHarness(kind)
        defer { withExtendedLifetime(h) {} }
        try await h.installFixture()
        try await h.runner.store.update(workspace: "codertocat", .init(hasPaymentMethod: true))
        // 64 vCPU takes 32 free minutes a minute: 16 min use 512 of 1,000.
        try await h.runJob(1, labels: ["tenki-64c-256gb"], minutes: 16)
        _ = try await h.runner.scheduler.runOnce()
        // 20 min with 488 left: 15 min covered (480), 5 charged at $0.096 = $0.48.
        try await h.runJob(2, labels: ["tenki-64c-256gb"], minutes: 20, startMinute: 30)
        _ = try await h.runner.scheduler.runOnce()
        let usage = try #require(try await h.runner.store.usage(key: "\(RunnerHarness.installation)/2/1"))
        #expect(usage.freeMinutesConsumed == 480 && usage.amountMicros == 48_000_000)
        let balance = try await h.ledger.balance(workspace: h.workspaceID)
        #expect(balance.freeMinutesRemaining == 8 && balance.balanceMicros == -48_000_000)
        let codes = try await h.ledger.transfers(workspace: h.workspaceID).map(\.code)
        #expect(codes == [3001, 2001, 2001, 2001])
    }

    @Test("replaying every delivery of a day twice, shuffled, leaves the ledger exactly as it was", arguments: DriverKind.allCases)
    func replay(_ kind: DriverKind) async throws {
        let h = try await RunnerHarness(kind)
        defer { withExtendedLifetime(h) {} }
        try await h.installFixture()
        try await h.runner.store.update(workspace: "codertocat", .init(hasPaymentMethod: true))
        // A day of one workspace: 78 jobs from 10:00 to 23:00 on three offerings, of varied
        // lengths; every 9th cancelled while queued, every 10th re-run as a second attempt.
        var deliveries: [[UInt8]] = []
        for id in 1...78 {
            let labels = [["tenki-2c-4gb"], ["tenki-premium-4c-8gb"], ["tenki-64c-256gb"]][id % 3]
            if id % 9 == 0 {
                deliveries += [
                    RunnerHarness.job("queued", id: Int64(id), labels: labels),
                    RunnerHarness.job("completed", id: Int64(id), labels: labels, completed: RunnerHarness.time(minute: id * 10)),
                ]
                continue
            }
            for attempt in 1...(id % 10 == 0 ? 2 : 1) {
                let start = id * 10 - 9 + attempt - 1
                let started = RunnerHarness.time(minute: start)
                let completed = RunnerHarness.time(minute: start + 1 + (id * 7) % 9)
                deliveries += [
                    RunnerHarness.job("queued", id: Int64(id), labels: labels, attempt: attempt),
                    RunnerHarness.job("in_progress", id: Int64(id), labels: labels, started: started, runner: "r\(id)", attempt: attempt),
                    RunnerHarness.job(
                        "completed", id: Int64(id), labels: labels, started: started, completed: completed,
                        runner: "r\(id)", attempt: attempt),
                ]
            }
        }
        for delivery in deliveries { try await h.deliver("workflow_job", delivery) }
        while try await h.runner.scheduler.runOnce().didWork {}
        let before = try await h.ledger.transfers(workspace: h.workspaceID)
        let balance = try await h.ledger.balance(workspace: h.workspaceID)
        // 77 runs that ran (70 jobs, 7 of them twice), each priced once and posted once.
        let usages = try await h.runner.store.usages(workspace: h.workspaceID)
        #expect(usages.count == 77 && usages.allSatisfy(\.posted))
        #expect(before.filter { $0.code == 2001 && $0.ledger == ChartOfAccounts.moneyLedger }.count == usages.filter { $0.amountMicros > 0 }.count)
        #expect(balance.balanceMicros < 0 && balance.freeMinutesRemaining == 0)
        var generator = SystemRandomNumberGenerator()
        for delivery in (deliveries + deliveries).shuffled(using: &generator) {
            try await h.deliver("workflow_job", delivery)
            _ = try await h.runner.scheduler.runOnce()
        }
        #expect(try await h.ledger.transfers(workspace: h.workspaceID) == before)
        #expect(try await h.ledger.balance(workspace: h.workspaceID) == balance)
    }
}
