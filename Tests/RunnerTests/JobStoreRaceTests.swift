import Foundation
import GitHubPlugin
import Host
import SQL
import TestSupport
import Testing

@testable import RunnerPlugin

@Suite("JobStore under concurrent reports of one job")
struct JobStoreRaceTests {
    static func event(_ body: [UInt8]) throws -> JobEvent {
        guard case .workflowJob(let payload) = try GitHubEvent.decode(type: "workflow_job", payload: body),
            let event = RunnerPlugin.jobEvent(payload)
        else { throw HostError(.badRequest, "not a workflow_job") }
        return event
    }

    /// The `completed` report commits while an `in_progress` report of the same job is between
    /// its read and its write. Without the row lock the start was written over the completion:
    /// the job stayed `running`, never charged, its slot and runner held.
    @Test("a start report racing a completion on PostgreSQL never undoes the completion")
    func startNeverOverwritesCompletion() async throws {
        let h = try await RunnerHarness(.postgres)
        defer { withExtendedLifetime(h) {} }
        try await h.installFixture()
        try await h.runner.store.update(workspace: "codertocat", .init(hasPaymentMethod: true))
        try await h.deliver("workflow_job", RunnerHarness.job("queued", id: 7, labels: ["tenki-2c-4gb"]))
        _ = try await h.runner.scheduler.runOnce()
        let before = try #require(try await h.runner.store.job(installationID: RunnerHarness.installation, jobID: 7, runAttempt: 1))
        #expect(before.status == .provisioning || before.status == .provisioned)

        let started = try Self.event(RunnerHarness.job("in_progress", id: 7, labels: ["tenki-2c-4gb"], started: "2026-01-05T10:00:00Z", runner: "r7"))
        let completed = try Self.event(
            RunnerHarness.job(
                "completed", id: 7, labels: ["tenki-2c-4gb"], started: "2026-01-05T10:00:00Z", completed: "2026-01-05T10:05:00Z", runner: "r7"))
        let workspace = before.workspaceID
        let written = DispatchSemaphore(value: 0)
        let release = DispatchSemaphore(value: 0)
        let database = h.host.database
        // The completion, held open after its write until the start is under way.
        let completion = Task {
            try await database.transaction { db in
                try JobStore.record(db, event: completed, workspaceID: workspace, sequence: 0)
                written.signal()
                release.wait()
            }
        }
        await Task.detached { written.wait() }.value
        let start = Task { try await database.transaction { db in try JobStore.record(db, event: started, workspaceID: workspace, sequence: 0) } }
        // Give the start time to read (and, without the lock, to queue its write behind ours).
        try await Task.sleep(nanoseconds: 300_000_000)
        release.signal()
        try await completion.value
        try await start.value

        let after = try #require(try await h.runner.store.job(installationID: RunnerHarness.installation, jobID: 7, runAttempt: 1))
        #expect(after.status == .completed)
        #expect(after.chargeStatus == .pending)
    }
}
