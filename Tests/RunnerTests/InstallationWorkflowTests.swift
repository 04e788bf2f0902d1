import Foundation
import Host
import RunnerPlugin
import SQL
import TestSupport
import Testing
import WorkflowPlugin

@Suite("Runner installation workflow: installation events as signals to one long-running run")
struct InstallationWorkflowTests {
    static let workflowID = "installation:957387"

    /// The fixture `installation.created`, with another action.
    static func installation(_ action: String) throws -> [UInt8] {
        let fixture = try Fixtures.github().first { $0.file == "installation.created.payload.json" }!
        var payload = try JSONSerialization.jsonObject(with: Data(fixture.body)) as! [String: Any]
        payload["action"] = action
        return Array(try JSONSerialization.data(withJSONObject: payload))
    }

    static func repositories(_ action: String, _ ids: [Int64]) -> [UInt8] {
        let repositories = ids.map { ["id": $0, "name": "repo-\($0)", "full_name": "Codertocat/repo-\($0)", "private": false] as [String: Any] }
        let payload: [String: Any] = [
            "action": action,
            "installation": ["id": RunnerHarness.installation, "account": ["id": 21_031_067, "login": "Codertocat", "type": "User"]],
            "repository_selection": "selected",
            "repositories_added": action == "added" ? repositories : [],
            "repositories_removed": action == "removed" ? repositories : [],
        ]
        return Array(try! JSONSerialization.data(withJSONObject: payload))
    }

    static func repositoryNames(_ h: RunnerHarness) async throws -> [String] {
        try await h.host.database.query(
            "SELECT full_name FROM runner_repositories WHERE installation_id = $1 ORDER BY full_name",
            [.integer(RunnerHarness.installation)]
        ).map { try $0.string("full_name") }
    }

    static func status(_ h: RunnerHarness) async throws -> String? {
        try await h.host.database.query("SELECT status FROM runner_installations WHERE id = $1", [.integer(RunnerHarness.installation)])
            .first.map { try $0.string("status") }
    }

    static func job(_ h: RunnerHarness, _ id: Int64) async throws -> RunnerJob? {
        try await h.runner.store.job(installationID: RunnerHarness.installation, jobID: id, runAttempt: 1)
    }

    static func state(_ h: RunnerHarness) async throws -> InstallationWorkflow.Input {
        let description = try await h.workflows.describe(id: workflowID)
        let value = try #require(description.state.first { $0.key == "installation" }?.value)
        return try WorkflowJSON.decode(InstallationWorkflow.Input.self, from: value, what: "state")
    }

    @Test(
        "install, add and remove repositories, suspend, unsuspend, uninstall: applied in order by one run; a redelivery applies nothing",
        arguments: DriverKind.allCases)
    func lifecycle(_ kind: DriverKind) async throws {
        let h = try await RunnerHarness(kind)
        defer { withExtendedLifetime(h) {} }
        try await h.deliver("installation", try Self.installation("created"), deliveryID: "install-1")
        var run = try await h.workflows.run(id: Self.workflowID)
        #expect(run.type == InstallationWorkflow.type && run.status == .sleeping && run.runNumber == 1)
        #expect(try await Self.status(h) == "active")
        #expect(try await Self.repositoryNames(h) == ["Codertocat/Hello-World"])
        #expect(try await h.runner.store.workspaces().map(\.slug) == ["codertocat"])

        try await h.deliver("installation_repositories", Self.repositories("added", [7, 8]), deliveryID: "add-7-8")
        try await h.deliver("installation_repositories", Self.repositories("removed", [7]), deliveryID: "remove-7")
        // GitHub (or `tenki webhooks redeliver`) sends the same delivery again: it is not applied twice.
        try await h.deliver("installation_repositories", Self.repositories("added", [7, 8]), deliveryID: "add-7-8")
        #expect(try await Self.repositoryNames(h) == ["Codertocat/Hello-World", "Codertocat/repo-8"])

        #expect(try await h.runner.scheduler.runOnce().credited == 1)
        try await h.deliver("installation", try Self.installation("suspend"), deliveryID: "suspend-1")
        #expect(try await Self.status(h) == "suspended")
        // A suspended installation's jobs are blocked, and admitted once it is active again.
        try await h.deliver("workflow_job", RunnerHarness.job("queued", id: 1, labels: ["tenki-2c-4gb"]))
        #expect(try await h.runner.scheduler.runOnce().blocked == 1)
        #expect(try await Self.job(h, 1)?.blockReason == "workspace_suspended")
        try await h.deliver("installation", try Self.installation("unsuspend"), deliveryID: "unsuspend-1")
        #expect(try await Self.status(h) == "active")
        #expect(try await Self.job(h, 1)?.status == .queued)
        #expect(try await h.runner.scheduler.runOnce().provisioned == 1)
        #expect(
            try await Self.state(h) == InstallationWorkflow.Input(installationID: RunnerHarness.installation, status: "active", signalsApplied: 5))
        let names = try await h.workflows.describe(id: Self.workflowID).steps.filter { $0.kind == "transaction" }.map(\.name)
        #expect(names == ["Install", "AddRepositories", "RemoveRepositories", "Suspend", "Unsuspend"])

        try await h.deliver("installation", try Self.installation("deleted"), deliveryID: "delete-1")
        run = try await h.workflows.run(id: Self.workflowID)
        #expect(run.status == .completed)
        #expect(try await Self.status(h) == "deleted")
        #expect(try await h.runner.store.workspaces().map(\.slug) == ["codertocat"])  // the workspace stays
        // ... and its jobs are no longer admitted.
        try await h.deliver("workflow_job", RunnerHarness.job("queued", id: 2, labels: ["tenki-2c-4gb"]))
        #expect(try await h.runner.scheduler.runOnce().blocked == 1)
        #expect(try await Self.job(h, 2)?.status == .blocked)
        // A late redelivery of an applied webhook does not bring the ended workflow back.
        try await h.deliver("installation", try Self.installation("suspend"), deliveryID: "suspend-1")
        #expect(try await h.workflows.run(id: Self.workflowID).status == .completed)
        #expect(try await h.workflows.list(type: InstallationWorkflow.type).count == 1)
        // Nor does a late event of its own for the uninstalled installation: nothing is applied.
        try await h.deliver("installation_repositories", Self.repositories("added", [9]), deliveryID: "late-add-9")
        try await h.deliver("installation", try Self.installation("unsuspend"), deliveryID: "late-unsuspend")
        run = try await h.workflows.run(id: Self.workflowID)
        #expect(run.status == .completed && run.runNumber == 1)
        #expect(try await Self.status(h) == "deleted")
        #expect(try await Self.repositoryNames(h) == ["Codertocat/Hello-World", "Codertocat/repo-8"])
    }

    @Test(
        "an installation's run continues as new every 100 signals: 230 webhooks, three runs, a short history, nothing lost",
        arguments: DriverKind.allCases)
    func continuesAsNew(_ kind: DriverKind) async throws {
        let h = try await RunnerHarness(kind)
        defer { withExtendedLifetime(h) {} }
        try await h.deliver("installation", try Self.installation("created"))
        for n in 1...229 { try await h.publish("installation_repositories", Self.repositories("added", [Int64(1000 + n)])) }
        try await h.settle()
        let description = try await h.workflows.describe(id: Self.workflowID)
        #expect(description.run.runNumber == 3 && description.run.status == .sleeping)
        #expect(description.steps.count == 3 * 30 + 1)  // run 3 took 30 signals (3 records each) and waits for the next
        #expect(try await Self.repositoryNames(h).count == 230)
        #expect(
            try await Self.state(h) == InstallationWorkflow.Input(installationID: RunnerHarness.installation, status: "active", signalsApplied: 230))
        #expect(try WorkflowJSON.decode(InstallationWorkflow.Input.self, from: description.run.input, what: "input").signalsApplied == 200)
    }
}
