import ArgumentParser
import Foundation
import GitHubPlugin
import Host
import Hummingbird
import Kubernetes
import LedgerPlugin
import Logging
import SQL
import ServiceLifecycle
import WorkflowPlugin

/// The product's main path: installations bring workspaces and repositories; each
/// `workflow_job` is recorded, admitted by policy, scheduled into the workspace's concurrency
/// slots, provisioned on a compute provider and, once completed, priced and charged through the
/// ledger (free minutes first).
package struct RunnerPlugin: Plugin {
    package static let name = "runner"
    /// The GitHub App client, the ledger store and the workflow engine are theirs, built once.
    package static var dependencies: [any Plugin.Type] { [GitHubPlugin.self, LedgerPlugin.self, WorkflowPlugin.self] }
    package static var migrations: [Migration] { RunnerStore.migrations }
    package static var commands: [any ParsableCommand.Type] { [RunnerCommand.self, JobsCommand.self] }

    package let store: RunnerStore
    package let scheduler: JobScheduler
    /// Rung after an event changed something, so a round starts without waiting for the next poll.
    let wakeups: Doorbell
    let interval: Int
    /// Sweeps for lost webhooks and orphaned runners; nil without the GitHub App.
    package let reconciler: Reconciler?
    let reconcileIntervalSeconds: Int
    /// The workflow plugin's engine: installation events signal their workflow through it.
    let workflowClient: any WorkflowClient

    package init(context: HostContext) async throws {
        store = RunnerStore(database: context.database)
        let github = try context.plugins.require(GitHubPlugin.self).app
        let provider = try RunnerPlugin.provider(context.configuration, github: github)
        scheduler = JobScheduler(
            store: store, ledger: try context.plugins.require(LedgerPlugin.self).store, policies: context.policies,
            provider: provider, logger: context.logger, github: github)
        wakeups = Doorbell()
        let store = self.store
        context.workspaces.register { try await store.workspace($0)?.id }
        interval = context.configuration.runnerSchedulerIntervalMilliseconds
        reconciler = scheduler.github.map {
            Reconciler(
                store: store, github: $0, provider: provider, logger: context.logger,
                orphanTimeoutSeconds: Int64(context.configuration.runnerOrphanTimeoutSeconds))
        }
        reconcileIntervalSeconds = context.configuration.runnerReconcileIntervalSeconds
        workflowClient = try context.plugins.require(WorkflowPlugin.self).engine
    }

    /// The configured compute provider; `kubernetes` needs the GitHub App and the API server.
    static func provider(_ configuration: HostConfiguration, github: GitHubAppClient?) throws -> any ComputeProvider {
        switch configuration.runnerProvider {
        case "none": return NoProvider()
        case "kubernetes":
            guard let github else {
                throw HostError(.badConfiguration, "runner_provider = kubernetes needs github_app_id and github_app_private_key_file")
            }
            guard let url = configuration.kubernetesAPIURL else {
                throw HostError(.badConfiguration, "runner_provider = kubernetes needs kubernetes_api_url")
            }
            let kubernetes = KubernetesClient(
                configuration: KubernetesConfiguration.resolve(
                    apiServerURL: url, tokenFile: configuration.kubernetesTokenFile, caFile: configuration.kubernetesCAFile,
                    namespace: configuration.kubernetesNamespace))
            return KubernetesProvider(github: github, kubernetes: kubernetes, image: configuration.runnerImage)
        default: return LocalProvider(command: configuration.runnerLocalCommand)
        }
    }

    /// One `runner.installation` workflow per installation (see `InstallationWorkflow`).
    package var workflows: [WorkflowDefinition] {
        let wakeups = self.wakeups
        return [InstallationWorkflow.definition { wakeups.ring() }]
    }

    package var subscriptions: [EventSubscription] {
        let wakeups = self.wakeups
        let workflowClient = self.workflowClient
        return [
            // Installation events are signals to the installation's workflow, which applies them.
            GitHubEvent.subscription(name: "runner.installations", topics: ["installation", "installation_repositories"]) { event, busEvent in
                guard let delivery = try InstallationWorkflow.delivery(event) else { return { _ in } }
                let requestID = "\(busEvent.source):\(busEvent.sourceID)"
                return { db in try InstallationWorkflow.send(delivery, requestID: requestID, client: workflowClient, db) }
            },
            // The scheduler is woken once the job is committed (woken earlier, it could miss it).
            GitHubEvent.subscription(name: "runner.jobs", topics: ["workflow_job"], committed: { wakeups.ring() }) { event, busEvent in
                guard case .workflowJob(let payload) = event, var received = RunnerPlugin.jobEvent(payload) else { return { _ in } }
                received.receivedAt = Int64(busEvent.createdAt.timeIntervalSince1970 * 1000)
                let job = received
                let sequence = busEvent.id
                let account = payload.organization ?? payload.repository.owner
                return { db in
                    let workspace =
                        try RunnerStore.workspace(ofInstallation: job.installationID, db)
                        ?? RunnerPlugin.implicitWorkspace(db, installationID: job.installationID, account: account)
                    try JobStore.record(db, event: job, workspaceID: workspace, sequence: sequence)
                }
            },
        ]
    }

    package func metrics() async throws -> [MetricFamily] { try await store.metricFamilies() }

    package var services: [any Service] {
        var services: [any Service] = [RunnerService(scheduler: scheduler, wakeups: wakeups, intervalMilliseconds: interval)]
        if let reconciler, reconcileIntervalSeconds > 0 {
            services.append(ReconcilerService(reconciler: reconciler, intervalSeconds: reconcileIntervalSeconds, wakeups: wakeups))
        }
        return services
    }

    /// Read-only views: GET /runner/jobs?status=&workspace= and /runner/workspaces.
    package func addRoutes(to routes: HostRoutes) {
        let store = self.store
        routes.get("/runner/jobs", .area(.jobs, workspace: .query("workspace"))) { request, _ -> Response in
            let status = request.uri.queryParameters.get("status")
            guard status == nil || JobStatus(rawValue: status!) != nil else { throw HostError(.badRequest, "unknown status '\(status!)'") }
            let workspace = try await store.workspaceID(named: request.uri.queryParameters.get("workspace"))
            let jobs = try await store.jobViews(
                status: status.flatMap(JobStatus.init(rawValue:)), workspace: workspace, limit: HostLimits.listMaxRows)
            return JSONResponse.raw(.ok, try RunnerCommand.json(jobs, pretty: false))
        }
        routes.get("/runner/metrics", .area(.jobs, workspace: .query("workspace"))) { request, _ -> Response in
            let workspace = try await store.workspaceID(named: request.uri.queryParameters.get("workspace"))
            let hours = request.uri.queryParameters.get("hours").flatMap { Int64($0) } ?? 24
            guard hours > 0, hours <= 24 * 90 else { throw HostError(.badRequest, "hours must be 1...2160") }
            let report = RunnerMetricsReport(
                jobs: try await store.jobMetrics(workspace: workspace, windowSeconds: hours * 3600),
                queue: try await store.queueDepths().filter { workspace == nil || $0.workspaceID == workspace })
            return JSONResponse.raw(.ok, try RunnerCommand.json(report, pretty: false))
        }
        routes.get("/runner/workspaces", .area(.workspaces)) { _, _ -> Response in
            JSONResponse.raw(.ok, try RunnerCommand.json(try await store.workspaces(), pretty: false))
        }
    }

    static func jobEvent(_ payload: GitHubEvent.WorkflowJob) -> JobEvent? {
        let action: JobEvent.Action
        switch payload.action {
        case "queued": action = .queued
        case "in_progress": action = .inProgress
        case "completed": action = .completed
        default: return nil  // "waiting" (environment approval) changes nothing for us
        }
        guard let installation = payload.installation else { return nil }
        let job = payload.workflowJob
        return JobEvent(
            action: action, installationID: installation.id, jobID: job.id, runAttempt: Int64(job.runAttempt ?? 1),
            repository: payload.repository.fullName, name: job.name, labels: job.labels, startedAt: job.startedAt,
            completedAt: job.completedAt, conclusion: job.conclusion, runnerName: job.runnerName, headSha: job.headSha,
            createdAt: job.createdAt)
    }

    /// A job from an installation we have not heard of yet: its account's workspace, created now.
    static func implicitWorkspace(_ db: any SQLConnection, installationID: Int64, account: GitHubEvent.Account?) throws -> String {
        let login = account?.login ?? "installation-\(installationID)"
        let workspace = try RunnerStore.ensureWorkspace(db, accountID: account?.id ?? -installationID, login: login)
        try RunnerStore.upsertInstallation(db, id: installationID, workspaceID: workspace, login: login, type: account?.type, status: "active")
        return workspace
    }
}

/// Runs scheduler rounds until graceful shutdown: at once after an event, else every interval.
struct RunnerService: Service {
    let scheduler: JobScheduler
    /// Rung after an event changed something, so a round starts without waiting for the next poll.
    let wakeups: Doorbell
    let intervalMilliseconds: Int

    func run() async throws {
        await cancelWhenGracefulShutdown {
            while !Task.isCancelled {
                do {
                    // Keep going while rounds find work (a slot freed, more than a batch queued).
                    while !Task.isCancelled, try await scheduler.runOnce(provisionInBackground: true).didWork {}
                } catch {
                    scheduler.logger.error("runner round failed", metadata: ["error": "\(error)"])
                }
                await wakeups.wait(timeoutMilliseconds: intervalMilliseconds)
            }
        }
    }
}

/// `tenki runner usage | run-once | reconcile | bench` (jobs have their own group, `tenki jobs`; workspaces are billing's `tenki workspaces`).
struct RunnerCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "runner", abstract: "Jobs, workspaces and usage of the runner marketplace.",
        subcommands: [Usage.self, RunOnce.self, Reconcile.self, RunnerBenchCommand.self])

    static func json<T: Encodable>(_ value: T, pretty: Bool = true) throws -> String {
        try JSONCoding.text(value, pretty: pretty)
    }

    static func store(_ options: HostOptions) async throws -> (TenkiHost, RunnerStore) {
        let host = try await options.openHost()
        return (host, try host.require(RunnerPlugin.self).store)
    }

    struct Usage: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "A workspace's usage records: what each job was charged, and why.")
        @OptionGroup var options: HostOptions
        @Option(help: "Workspace id or slug.") var workspace: String
        @Flag(help: "Print JSON.") var json = false

        func run() async throws {
            let (_, store) = try await RunnerCommand.store(options)
            let usages = try await store.usages(workspace: try await store.workspaceID(named: workspace)!)
            if json {
                print(try RunnerCommand.json(usages))
                return
            }
            for u in usages {
                print(
                    "\(u.key)  \(u.sku ?? "?")  \(u.billableMinutes) min  free \(u.freeMinutesConsumed)  "
                        + "\(MoneyText.usd(u.amountMicros, decimals: 4))  policy \(u.policyVersion)\(u.posted ? "" : "  (not posted yet)")"
                )
            }
        }
    }

    struct RunOnce: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "run-once", abstract: "Run one scheduler round (admit, schedule, provision, charge, release) and print what it did.")
        @OptionGroup var options: HostOptions

        func run() async throws {
            let host = try await options.openHost()
            let plugin = try host.require(RunnerPlugin.self)
            print(try RunnerCommand.json(try await plugin.scheduler.runOnce(), pretty: false))
        }
    }
}
