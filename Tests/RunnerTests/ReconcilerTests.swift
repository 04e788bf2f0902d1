import Foundation
import GitHubPlugin
import Host
import LedgerPlugin
import PluginTestSupport
import RunnerPlugin
import SQL
import TestSupport
import Testing
import WorkflowPlugin

/// A harness, the fake GitHub, and a reconciler between them whose clock the test moves.
struct ReconcilerRig {
    let h: RunnerHarness
    let github: FakeGitHub
    let clock: ManualClock
    let reconciler: Reconciler
    static let repository = "Codertocat/Hello-World"

    init(_ kind: DriverKind) async throws {
        h = try await RunnerHarness(kind)
        github = try FakeGitHub()
        clock = ManualClock(Date())
        let clock = self.clock
        reconciler = Reconciler(
            store: h.runner.store, github: try await github.client(), provider: h.runner.scheduler.provider,
            logger: h.host.logger, orphanTimeoutSeconds: 600, now: { clock.now })
        try await h.installFixture()
    }

    /// A sweep once `seconds` have passed since the jobs' last news.
    func sweep(after seconds: Double) async throws -> Reconciler.Sweep {
        clock.advance(seconds: seconds)
        return try await reconciler.sweepOnce()
    }

    func job(_ id: Int64) async throws -> RunnerJob? {
        try await h.runner.store.job(installationID: RunnerHarness.installation, jobID: id, runAttempt: 1)
    }

    func providerLines() throws -> [String] {
        ((try? String(contentsOfFile: h.providerLog, encoding: .utf8)) ?? "").split(separator: "\n").map(String.init)
    }

    func requests(_ method: String, pathPrefix: String) async throws -> [[String: Any]] {
        try await github.requests().filter { $0["method"] as? String == method && ($0["path"] as? String)?.hasPrefix(pathPrefix) == true }
    }
}

@Suite("Reconciler: lost webhooks and orphaned runners against a fake GitHub")
struct ReconcilerTests {
    static func key(_ id: Int64) -> String { "\(RunnerHarness.installation)/\(id)/1" }

    @Test("a job whose queued webhook never came is found on an installed repository and runs", arguments: DriverKind.allCases)
    func lostQueued(_ kind: DriverKind) async throws {
        let rig = try await ReconcilerRig(kind)
        defer { withExtendedLifetime(rig) {} }
        // Job 6's queued webhook came; job 5's was dropped. Job 7 belongs to a finished run.
        try await rig.h.deliver("workflow_job", RunnerHarness.job("queued", id: 6, labels: ["tenki-2c-4gb"]))
        for id: Int64 in [5, 6] {
            try await rig.github.seedJob(ReconcilerRig.repository, id, ["status": "queued", "labels": ["tenki-2c-4gb"], "run_id": 500])
        }
        try await rig.github.seedJob(
            ReconcilerRig.repository, 7,
            [
                "status": "completed", "conclusion": "success", "labels": ["tenki-2c-4gb"],
                "run_id": 700, "completed_at": "2026-01-05T10:00:00Z",
            ])
        let sweep = try await rig.sweep(after: 0)
        #expect(sweep.discovered == 1 && sweep.failures == 0)
        let found = try #require(try await rig.job(5))
        #expect(found.status == .queued && found.labels == ["tenki-2c-4gb"] && found.repository == ReconcilerRig.repository)
        #expect(found.headSha == "abc123" && found.startedAt == nil, "a queued job's started_at is its queue time, not a start")
        #expect(try await rig.job(7) == nil, "only queued jobs are taken from GitHub")
        let round = try await rig.h.runner.scheduler.runOnce()
        #expect(round.admitted == 2 && round.provisioned == 2)
        #expect(try await rig.job(5)?.status == .provisioned)

        // Swept again, and the late webhook arrives after all: nothing changes.
        #expect(try await rig.sweep(after: 0).discovered == 0)
        try await rig.h.deliver("workflow_job", RunnerHarness.job("queued", id: 5, labels: ["tenki-2c-4gb"]))
        #expect(try await rig.job(5)?.status == .provisioned)
        #expect(try await rig.h.runner.store.jobs().count == 2)
        // The runs were listed as the installation (its token), queued and in progress.
        let listed = try await rig.requests("GET", pathPrefix: "/repos/\(ReconcilerRig.repository)/actions/runs?status=")
        #expect(Set(listed.compactMap { $0["path"] as? String }).count == 2)
        #expect(listed.allSatisfy { ($0["headers"] as? [String: String])?["authorization"]?.hasPrefix("token ghs_") == true })
    }

    @Test(
        "a completed webhook never came: the job closes at GitHub's completed_at, its runner is released, it is charged once",
        arguments: DriverKind.allCases)
    func lostCompleted(_ kind: DriverKind) async throws {
        let rig = try await ReconcilerRig(kind)
        defer { withExtendedLifetime(rig) {} }
        let labels = ["tenki-4c-8gb"]
        // Job 1 ran (its in_progress came); job 2 was provisioned and neither in_progress nor completed came.
        for id: Int64 in [1, 2] { try await rig.h.deliver("workflow_job", RunnerHarness.job("queued", id: id, labels: labels)) }
        #expect(try await rig.h.runner.scheduler.runOnce().provisioned == 2)
        let started = RunnerHarness.time(minute: 0)
        try await rig.h.deliver("workflow_job", RunnerHarness.job("in_progress", id: 1, labels: labels, started: started, runner: "r1"))
        for id: Int64 in [1, 2] {
            try await rig.github.seedJob(
                ReconcilerRig.repository, id,
                [
                    "status": "completed", "conclusion": "success", "labels": labels, "started_at": started,
                    "completed_at": "2026-01-05T10:09:31Z", "runner_name": "r\(id)",
                ])
        }
        // News younger than the quiet period is not asked about: its webhook may be on its way.
        #expect(try await rig.sweep(after: 30).checked == 0)
        let sweep = try await rig.sweep(after: 300)
        #expect(sweep.checked == 2 && sweep.completed == 2 && sweep.failures == 0)
        let round = try await rig.h.runner.scheduler.runOnce()
        #expect(round.charged == 2 && round.released == 2)
        for id: Int64 in [1, 2] {
            let job = try #require(try await rig.job(id))
            #expect(job.status == .completed && job.completedAt == "2026-01-05T10:09:31Z" && job.startedAt == started && job.chargeStatus == .charged)
            // 9 min 31 s bills as 10 minutes; 4 vCPU takes 2 free minutes a minute.
            let usage = try #require(try await rig.h.runner.store.usage(key: Self.key(id)))
            #expect(usage.billableMinutes == 10 && usage.freeMinutesConsumed == 20 && usage.posted)
        }
        #expect(try rig.providerLines().filter { $0.hasPrefix("release ") }.count == 2)

        // The late webhook arrives after all (with another completed_at), and a sweep runs again: nothing twice.
        try await rig.h.deliver(
            "workflow_job",
            RunnerHarness.job(
                "completed", id: 1, labels: labels, started: started,
                completed: "2026-01-05T10:30:00Z", runner: "r1"))
        #expect(try await rig.sweep(after: 300).checked == 0)
        #expect(try await rig.h.runner.scheduler.runOnce().didWork == false)
        #expect(try await rig.job(1)?.completedAt == "2026-01-05T10:09:31Z")
        #expect(try await rig.h.ledger.transfers(workspace: rig.h.workspaceID).count == 3)  // signup credit + two jobs' minutes
        #expect(try await rig.h.ledger.balance(workspace: rig.h.workspaceID).freeMinutesRemaining == 960)
    }

    @Test(
        "a runner whose job never started is released after the timeout and the job gets a new one; a job GitHub lost is closed",
        arguments: DriverKind.allCases)
    func orphanedRunner(_ kind: DriverKind) async throws {
        let rig = try await ReconcilerRig(kind)
        defer { withExtendedLifetime(rig) {} }
        for id: Int64 in 1...4 { try await rig.h.deliver("workflow_job", RunnerHarness.job("queued", id: id, labels: ["tenki-2c-4gb"])) }
        #expect(try await rig.h.runner.scheduler.runOnce().provisioned == 4)
        for id: Int64 in [1, 4] { try await rig.github.seedJob(ReconcilerRig.repository, id, ["status": "queued", "labels": ["tenki-2c-4gb"]]) }
        // Job 2 is gone from GitHub (its run deleted): 404. Job 3 started without our hearing of it,
        // on job 4's runner (a runner takes any job its labels match): that runner is busy, not orphaned.
        let runner4 = "tenki-\(RunnerHarness.installation)-4-1"
        try await rig.github.seedJob(
            ReconcilerRig.repository, 3,
            [
                "status": "in_progress", "labels": ["tenki-2c-4gb"],
                "started_at": RunnerHarness.time(minute: 1), "runner_name": runner4,
            ])
        let early = try await rig.sweep(after: 300)
        #expect(early.orphansRequeued == 0 && early.gone == 1 && early.started == 1)
        let gone = try #require(try await rig.job(2))
        #expect(gone.status == .completed && gone.conclusion == "gone_from_github" && gone.chargeStatus == .notBillable)
        let started = try #require(try await rig.job(3))
        #expect(started.status == .running && started.startedAt == RunnerHarness.time(minute: 1) && started.runnerName == runner4)
        #expect(try await rig.h.runner.scheduler.runOnce().released == 1)  // job 2's runner

        // Past the 600 s timeout (the test's clock moves; the jobs' own times are real ones, a little later).
        let late = try await rig.sweep(after: 400)
        #expect(late.orphansRequeued == 1 && late.failures == 0)
        let requeued = try #require(try await rig.job(1))
        #expect(requeued.status == .waiting && requeued.providerHandle == nil)
        #expect(try await rig.job(4)?.status == .provisioned)
        #expect(try rig.providerLines().filter { $0.hasPrefix("release \(Self.key(1)) ") }.count == 1)
        #expect(try await rig.h.runner.scheduler.runOnce().provisioned == 1)
        #expect(try await rig.job(1)?.status == .provisioned)
        #expect(try rig.providerLines().filter { $0.hasPrefix("provision \(Self.key(1)) ") }.count == 2)
    }

    @Test(
        "a failed delivery is redelivered once; ones that succeeded, were redelivered or that we stored are not",
        arguments: DriverKind.allCases)
    func failedDeliveries(_ kind: DriverKind) async throws {
        let rig = try await ReconcilerRig(kind)
        defer { withExtendedLifetime(rig) {} }
        // A delivery we committed even though GitHub saw it fail (our answer timed out afterwards).
        _ = try await rig.h.host.database.execute(
            """
            INSERT INTO github_deliveries (delivery_id, event, headers, body, body_sha256, received_at_ms)
            VALUES ('stored-1', 'workflow_job', '{}', $1, 'x', 0)
            """, [.blob(Array("{}".utf8))])
        let ids = try await rig.github.addDeliveries([
            ["guid": "lost-1", "status_code": 500, "action": "queued", "installation_id": RunnerHarness.installation],
            ["guid": "lost-2", "status_code": 0, "action": "completed"],
            ["guid": "lost-2", "status_code": 0, "action": "completed"],
            ["guid": "ok-1", "status_code": 502],
            ["guid": "ok-1", "status_code": 200, "redelivery": true],
            ["guid": "stored-1", "status_code": 504],
            ["guid": "asked-1", "status_code": 500],
            ["guid": "asked-1", "status_code": 500, "redelivery": true],
            ["guid": "fine-1", "status_code": 202],
        ])
        try await rig.github.configure(deliveriesPageMax: 2)
        let sweep = try await rig.sweep(after: 0)
        #expect(sweep.deliveries.listed == 9 && sweep.deliveries.failed == 4 && sweep.deliveries.alreadyStored == 1)
        #expect(sweep.deliveries.redelivered == 2 && sweep.deliveries.failures == 0)
        let attempts = try await rig.requests("POST", pathPrefix: "/app/hook/deliveries/")
        #expect(
            attempts.compactMap { $0["path"] as? String }.sorted()
                == ["/app/hook/deliveries/\(ids[0])/attempts", "/app/hook/deliveries/\(ids[2])/attempts"], "lost-1, and lost-2's latest attempt")
        #expect(attempts.allSatisfy { ($0["jwt_claims"] as? [String: Any])?["iss"] as? String == FakeGitHub.appID }, "as the App, with its JWT")
        // Five pages of two, followed through the Link header's cursor.
        #expect(try await rig.requests("GET", pathPrefix: "/app/hook/deliveries").count == 5)

        // GitHub now lists the redeliveries: nothing is asked for twice.
        let again = try await rig.sweep(after: 0)
        #expect(again.deliveries.listed == 11 && again.deliveries.redelivered == 0)
        #expect(try await rig.requests("POST", pathPrefix: "/app/hook/deliveries/").count == 2)
    }

    @Test("the sweep's summary is JSON with snake_case keys")
    func summaryJSON() throws {
        var sweep = Reconciler.Sweep()
        sweep.orphansRequeued = 1
        sweep.deliveries.alreadyStored = 2
        let json = try JSONSerialization.jsonObject(with: JSONEncoder().encode(sweep)) as? [String: Any]
        #expect(json?["orphans_requeued"] as? Int == 1)
        #expect((json?["deliveries"] as? [String: Any])?["already_stored"] as? Int == 2)
    }
}

@Suite("Runner plugin wiring: the GitHub App client and the ledger store are built once")
struct RunnerWiringTests {
    @Test("the scheduler, the reconciler and the provider share the GitHub plugin's App client")
    func oneAppClient() async throws {
        let fake = try FakeGitHub()
        let test = try TestDatabase.make(.sqlite)
        let host = try await TestHosts.open(test, plugins: [GitHubPlugin.self, LedgerPlugin.self, WorkflowPlugin.self, RunnerPlugin.self]) {
            $0.githubWebhookSecret = "s"
            $0.githubAppID = FakeGitHub.appID
            $0.githubAppPrivateKeyFile = fake.keys.privateKeyPath
            $0.githubAPIURL = fake.peer.baseURL
        }
        let app = try #require(try host.require(GitHubPlugin.self).app)
        let runner = try host.require(RunnerPlugin.self)
        #expect(runner.scheduler.github === app)
        #expect(runner.reconciler?.github === app)
        await host.database.close()
    }
}
