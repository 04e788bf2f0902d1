import Foundation
import Host
import Spawn

/// Where runners come from. `provision` asks for one ephemeral runner for a job and returns a
/// handle to release it by; both calls may be repeated after a crash and must be idempotent
/// (the job key names the runner).
package protocol ComputeProvider: Sendable {
    var name: String { get }
    func provision(_ job: RunnerJob) async throws -> String
    func release(_ job: RunnerJob, handle: String) async throws
}

/// Development and tests: runs a shell command per job with the job's facts in its environment
/// (`TENKI_JOB_KEY`, `TENKI_JOB_ID`, `TENKI_RUN_ATTEMPT`, `TENKI_INSTALLATION_ID`,
/// `TENKI_WORKSPACE`, `TENKI_REPOSITORY`, `TENKI_SKU`, `TENKI_LABELS`, `TENKI_RUNNER_NAME`,
/// and `TENKI_ACTION` = `provision` or `release`). A non-zero exit fails the call.
package struct LocalProvider: ComputeProvider {
    package let name = "local"
    package let command: String?

    package init(command: String?) { self.command = command }

    package static func runnerName(_ job: RunnerJob) -> String { "tenki-\(job.installationID)-\(job.jobID)-\(job.runAttempt)" }

    package func provision(_ job: RunnerJob) async throws -> String {
        try await run(job, action: "provision")
        return LocalProvider.runnerName(job)
    }

    package func release(_ job: RunnerJob, handle: String) async throws {
        try await run(job, action: "release")
    }

    private func run(_ job: RunnerJob, action: String) async throws {
        guard let command else { return }
        var environment = ProcessInfo.processInfo.environment
        environment["TENKI_ACTION"] = action
        environment["TENKI_JOB_KEY"] = job.key
        environment["TENKI_JOB_ID"] = String(job.jobID)
        environment["TENKI_RUN_ATTEMPT"] = String(job.runAttempt)
        environment["TENKI_INSTALLATION_ID"] = String(job.installationID)
        environment["TENKI_WORKSPACE"] = job.workspaceID
        environment["TENKI_REPOSITORY"] = job.repository
        environment["TENKI_SKU"] = job.sku ?? ""
        environment["TENKI_LABELS"] = job.labels.joined(separator: ",")
        environment["TENKI_RUNNER_NAME"] = LocalProvider.runnerName(job)
        let child: ChildProcess
        do {
            child = try ChildProcess.start("/bin/sh", ["-c", command], environment: environment, stdin: .null)
        } catch {
            throw HostError(.internal, "local provider: \(error)")
        }
        let status = await child.exited().status
        guard status == 0 else { throw HostError(.internal, "local provider: '\(command)' exited \(status) on \(action) of \(job.key)") }
    }
}

/// No compute at all: jobs are admitted and scheduled but nothing is started (dry runs).
package struct NoProvider: ComputeProvider {
    package let name = "none"
    package init() {}
    package func provision(_ job: RunnerJob) async throws -> String { "none" }
    package func release(_ job: RunnerJob, handle: String) async throws {}
}
