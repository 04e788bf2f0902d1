import ArgumentParser
import Foundation
import GitHubPlugin
import Host
import Logging
import SQL
import ServiceLifecycle

/// Makes the host agree with GitHub when webhooks were lost: GitHub does not resend a failed
/// delivery by itself. A sweep (1) asks GitHub to redeliver failed App deliveries, (2) asks for
/// the real state of every job we believe unfinished and records what it learns through
/// `JobStore.record`, the webhook's own idempotent path (a late webhook then changes nothing),
/// (3) finds queued jobs on installed repositories we never heard of, and (4) releases runners
/// whose job did not start within `orphanTimeoutSeconds`, queueing the job again. Runners of jobs
/// it closes are released, and the jobs charged at GitHub's `completed_at`, by the scheduler's
/// next round, as for a `completed` webhook.
package struct Reconciler: Sendable {
    package let store: RunnerStore
    package let github: GitHubAppClient
    package let provider: any ComputeProvider
    package let logger: Logger
    package let orphanTimeoutSeconds: Int64
    /// The wall clock, injectable so tests move time instead of sleeping.
    package let now: @Sendable () -> Date

    package init(
        store: RunnerStore, github: GitHubAppClient, provider: any ComputeProvider, logger: Logger,
        orphanTimeoutSeconds: Int64 = RunnerLimits.orphanTimeoutSecondsDefault, now: @escaping @Sendable () -> Date = { Date() }
    ) {
        precondition(orphanTimeoutSeconds > 0, "an orphan timeout must be positive")
        self.store = store
        self.github = github
        self.provider = provider
        self.logger = logger
        self.orphanTimeoutSeconds = orphanTimeoutSeconds
        self.now = now
    }

    /// What one sweep found and did.
    package struct Sweep: Codable, Sendable, Equatable {
        package var deliveries = FailedDeliveryRecovery.Outcome()
        /// Jobs whose state was asked for.
        package var checked = 0
        /// Jobs GitHub shows running that we did not (their `in_progress` was lost).
        package var started = 0
        /// Jobs GitHub shows finished that we did not (their `completed` was lost).
        package var completed = 0
        /// Jobs GitHub no longer has (404), closed without charge.
        package var gone = 0
        /// Queued jobs on installed repositories we never heard of, now recorded.
        package var discovered = 0
        /// Runners released because their job did not start in time; the job waits for a new one.
        package var orphansRequeued = 0
        package var failures = 0

        package init() {}

        package var changedJobs: Bool { started + completed + gone + discovered + orphansRequeued > 0 }

        enum CodingKeys: String, CodingKey {
            case deliveries, checked, started, completed, gone, discovered, orphansRequeued = "orphans_requeued", failures
        }
    }

    /// One sweep. Failures of single calls are counted and logged, never stop the sweep.
    package func sweepOnce() async throws -> Sweep {
        var sweep = Sweep()
        do {
            sweep.deliveries = try await FailedDeliveryRecovery(client: github, database: store.database, logger: logger).run()
        } catch {
            sweep.failures += 1
            logger.error("listing the App's deliveries failed", metadata: ["error": "\(error)"])
        }
        try await checkJobs(&sweep)
        try await discoverQueuedJobs(&sweep)
        return sweep
    }

    /// The one writer of `runner_jobs`.
    var jobs: JobStore { store.jobStore }

    // MARK: job truth

    func checkJobs(_ sweep: inout Sweep) async throws {
        let nowMs = Int64(now().timeIntervalSince1970 * 1000)
        let rows = try await store.database.query(
            """
            SELECT *, CASE status WHEN 'running' THEN 0 WHEN 'provisioned' THEN 1 WHEN 'provisioning' THEN 2 ELSE 3 END AS stake
            FROM runner_jobs WHERE \(JobStatus.sqlCondition(JobStatus.unfinished)) AND updated_at <= $1
            ORDER BY stake, updated_at, job_id LIMIT $2
            """, [.integer(nowMs - RunnerLimits.quietSecondsBeforeCheck * 1000), .integer(Int64(RunnerLimits.jobsCheckedPerSweepMax))])
        var unreachable: Set<Int64> = []
        for row in rows {
            let job = try RunnerStore.job(from: row)
            guard !unreachable.contains(job.installationID) else { continue }
            let truth: GitHubEvent.WorkflowJob.Job?
            do {
                truth = try await fetchJob(job)
            } catch {
                sweep.failures += 1
                if Reconciler.isInstallationFailure(error) { unreachable.insert(job.installationID) }
                logger.warning("could not ask GitHub about a job", metadata: ["job": "\(job.key)", "error": "\(error)"])
                continue
            }
            sweep.checked += 1
            let updatedAt = try row.int("updated_at")
            do {
                try await apply(truth, to: job, updatedAtMs: updatedAt, nowMs: nowMs, &sweep)
            } catch {
                sweep.failures += 1
                logger.error("reconciling a job failed", metadata: ["job": "\(job.key)", "error": "\(error)"])
            }
        }
    }

    /// GitHub's record of the job; nil when GitHub no longer has it.
    func fetchJob(_ job: RunnerJob) async throws -> GitHubEvent.WorkflowJob.Job? {
        let path = "/repos/\(try Reconciler.repositoryPath(job.repository))/actions/jobs/\(job.jobID)"
        do {
            let response = try await github.request(installation: job.installationID, method: "GET", path: path)
            return try Reconciler.decoder.decode(GitHubEvent.WorkflowJob.Job.self, from: Data(response.body))
        } catch let error as GitHubAPIError where error.kind == .status && error.status == 404 && error.path == path {
            return nil
        }
    }

    func apply(_ truth: GitHubEvent.WorkflowJob.Job?, to job: RunnerJob, updatedAtMs: Int64, nowMs: Int64, _ sweep: inout Sweep) async throws {
        guard let truth else {
            // A deleted run: nothing will ever run or be charged. A running job keeps its slot
            // until GitHub says more (its runner reports the end to GitHub, not to us).
            guard job.status != .running else { return }
            if try await jobs.closeOnGitHub(job, conclusion: "gone_from_github") { sweep.gone += 1 }
            return
        }
        guard let event = Reconciler.jobEvent(truth, installationID: job.installationID, repository: job.repository, runAttempt: job.runAttempt)
        else { return }
        switch event.action {
        case .completed:
            try await jobs.record(event, of: job)
            sweep.completed += 1
            logger.notice(
                "job completed on GitHub without our hearing of it",
                metadata: [
                    "job": "\(job.key)", "completed_at": "\(truth.completedAt ?? "-")", "conclusion": "\(truth.conclusion ?? "-")",
                ])
        case .inProgress where job.status != .running:
            try await jobs.record(event, of: job)
            sweep.started += 1
        case .queued where job.status == .provisioned && nowMs - updatedAtMs >= orphanTimeoutSeconds * 1000:
            if try await requeueOrphan(job) { sweep.orphansRequeued += 1 }
        default:
            break
        }
    }

    /// Releases the runner of a provisioned job GitHub still shows queued, and puts the job back
    /// to wait for a slot and a new runner. Returns false when the job moved on meanwhile.
    func requeueOrphan(_ job: RunnerJob) async throws -> Bool {
        guard let handle = job.providerHandle else { return false }
        // Its webhook may have come while GitHub was asked: a job that moved on keeps its runner.
        let current = try await store.job(installationID: job.installationID, jobID: job.jobID, runAttempt: job.runAttempt)
        guard current?.status == .provisioned, current?.providerHandle == handle else { return false }
        // A runner takes any job its labels match: one that GitHub says runs another job is busy, not orphaned.
        if try await store.database.query(
            "SELECT job_id FROM runner_jobs WHERE runner_name = $1 AND status = 'running' LIMIT 1",
            [.text(handle)]
        ).first != nil {
            return false
        }
        logger.warning(
            "releasing a runner whose job did not start",
            metadata: [
                "job": "\(job.key)", "handle": "\(handle)", "timeout_seconds": "\(orphanTimeoutSeconds)",
            ])
        try await provider.release(job, handle: handle)
        return try await jobs.requeueOrphan(job, handle: handle)
    }

    // MARK: discovery

    /// Queued jobs of queued or in-progress runs on every active installation's repositories.
    func discoverQueuedJobs(_ sweep: inout Sweep) async throws {
        let repositories = try await store.database.query(
            """
            SELECT r.installation_id, r.full_name, i.workspace_id FROM runner_repositories r
            JOIN runner_installations i ON i.id = r.installation_id
            WHERE i.status = 'active' ORDER BY r.installation_id, r.full_name LIMIT $1
            """, [.integer(Int64(RunnerLimits.repositoriesScannedPerSweepMax))])
        var unreachable: Set<Int64> = []
        for row in repositories {
            let installation = try row.int("installation_id")
            let repository = try row.string("full_name")
            guard !unreachable.contains(installation) else { continue }
            do {
                for job in try await queuedJobs(installation: installation, repository: repository) {
                    guard
                        let event = Reconciler.jobEvent(
                            job, installationID: installation, repository: repository,
                            runAttempt: Int64(job.runAttempt ?? 1)),
                        case .queued = event.action
                    else { continue }
                    if try await jobs.recordIfNew(event, workspaceID: try row.string("workspace_id")) {
                        sweep.discovered += 1
                        logger.notice("found a queued job we never heard of", metadata: ["job": "\(installation)/\(job.id)/\(event.runAttempt)"])
                    }
                }
            } catch {
                sweep.failures += 1
                if Reconciler.isInstallationFailure(error) { unreachable.insert(installation) }
                logger.warning("could not list a repository's queued jobs", metadata: ["repository": "\(repository)", "error": "\(error)"])
            }
        }
    }

    private struct Runs: Decodable {
        struct Run: Decodable { let id: Int64 }
        let workflowRuns: [Run]
    }

    private struct Jobs: Decodable {
        let jobs: [GitHubEvent.WorkflowJob.Job]
    }

    func queuedJobs(installation: Int64, repository: String) async throws -> [GitHubEvent.WorkflowJob.Job] {
        let prefix = "/repos/\(try Reconciler.repositoryPath(repository))/actions/runs"
        var found: [GitHubEvent.WorkflowJob.Job] = []
        // A run with one job started and another still queued (a matrix, a dependency) is in progress.
        for status in ["queued", "in_progress"] {
            let path = "\(prefix)?status=\(status)&per_page=\(RunnerLimits.runsPerRepositoryMax)"
            let runs = try await github.request(installation: installation, method: "GET", path: path)
            for run in try runs.decode(Runs.self, decoder: Reconciler.decoder, path: path).workflowRuns.prefix(RunnerLimits.runsPerRepositoryMax) {
                let jobsPath = "\(prefix)/\(run.id)/jobs?per_page=\(RunnerLimits.jobsPerRunPageMax)"
                let jobs = try await github.request(installation: installation, method: "GET", path: jobsPath)
                found += try jobs.decode(Jobs.self, decoder: Reconciler.decoder, path: jobsPath).jobs.filter {
                    GitHubJobStatus.notStarted.contains($0.status)
                }
            }
        }
        return found
    }

    // MARK: GitHub's job as a job event

    static let decoder: JSONDecoder = {
        let decoder = JSONDecoder()
        decoder.keyDecodingStrategy = .convertFromSnakeCase
        return decoder
    }()

    /// What the REST API says of a job, as the webhook's `workflow_job` would have said it.
    static func jobEvent(_ job: GitHubEvent.WorkflowJob.Job, installationID: Int64, repository: String, runAttempt: Int64) -> JobEvent? {
        let action: JobEvent.Action
        switch job.status {
        case "in_progress": action = .inProgress
        case "completed": action = .completed
        case let status where GitHubJobStatus.notStarted.contains(status): action = .queued
        default: return nil
        }
        return JobEvent(
            action: action, installationID: installationID, jobID: job.id, runAttempt: runAttempt, repository: repository,
            name: job.name, labels: job.labels, startedAt: job.startedAt, completedAt: job.completedAt,
            conclusion: job.conclusion, runnerName: job.runnerName, headSha: job.headSha, createdAt: job.createdAt)
    }

    /// `owner/name` checked to be two GitHub names, so it is safe in a path.
    static func repositoryPath(_ repository: String) throws -> String {
        let parts = repository.split(separator: "/", omittingEmptySubsequences: false)
        let valid =
            parts.count == 2
            && parts.allSatisfy { part in
                (1...RunnerLimits.gitHubNameCharactersMax).contains(part.count) && part != "." && part != ".."
                    && part.allSatisfy { $0.isASCII && ($0.isLetter || $0.isNumber || $0 == "-" || $0 == "_" || $0 == ".") }
            }
        guard valid else { throw HostError(.badRequest, "repository '\(repository)' is not owner/name") }
        return repository
    }

    /// The installation itself cannot be reached (no token): its other calls would fail alike.
    static func isInstallationFailure(_ error: any Error) -> Bool {
        guard let error = error as? GitHubAPIError else { return false }
        return error.path.hasPrefix("/app/installations/")
    }
}

extension GitHubAPIResponse {
    fileprivate func decode<T: Decodable>(_ type: T.Type, decoder: JSONDecoder, path: String) throws -> T {
        do {
            return try decoder.decode(type, from: Data(body))
        } catch {
            throw GitHubAPIError(kind: .unexpectedResponse, status: status, message: "cannot decode \(type): \(error)", method: "GET", path: path)
        }
    }
}

/// Sweeps every `intervalSeconds` until graceful shutdown (the first one interval after the
/// start), and wakes the scheduler when a sweep changed jobs so it releases and charges at once.
struct ReconcilerService: Service {
    let reconciler: Reconciler
    let intervalSeconds: Int
    let wakeups: Doorbell

    func run() async throws {
        await cancelWhenGracefulShutdown {
            while !Task.isCancelled {
                do {
                    try await Task.sleep(for: .seconds(intervalSeconds))
                } catch {
                    return
                }
                do {
                    let sweep = try await reconciler.sweepOnce()
                    if sweep.changedJobs { wakeups.ring() }
                } catch {
                    reconciler.logger.error("reconciliation sweep failed", metadata: ["error": "\(error)"])
                }
            }
        }
    }
}

extension RunnerCommand {
    /// `tenki runner reconcile`: one sweep, printed as JSON.
    struct Reconcile: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Ask GitHub once for failed deliveries and the real state of unfinished jobs, and print what changed as JSON.")
        @OptionGroup var options: HostOptions

        func run() async throws {
            let host = try await options.openHost()
            let plugin = try host.require(RunnerPlugin.self)
            guard let reconciler = plugin.reconciler else {
                throw HostError(.badConfiguration, "reconciling needs the GitHub App: set github_app_id and github_app_private_key_file")
            }
            print(try RunnerCommand.json(try await reconciler.sweepOnce(), pretty: false))
        }
    }
}
