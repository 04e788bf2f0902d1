import ArgumentParser
import Foundation
import GitHubPlugin
import HTTPClient
import Host
import TenkiCrypto

/// `tenki runner bench`: queued jobs admitted and scheduled per second, and the latency from a
/// webhook's receipt (its delivery stored) to the provisioning request, through a real host in
/// this process: signed `workflow_job` deliveries over loopback HTTP into `POST /webhooks/github`,
/// the durable inbox, the runner's subscription, scheduler rounds (admission and abuse policies,
/// slots under the workspace lock, the provisioning claim) with the `none` provider. Prints JSON.
/// Not a test. Two phases: a burst (every job sent as fast as the clients can: throughput) and a
/// paced run at `--rate` jobs/s (latency under a steady load).
struct RunnerBenchCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(commandName: "bench", abstract: "Runner admission and scheduling throughput and latency (JSON).")
    @OptionGroup var options: HostOptions
    @Option(help: "Jobs sent in the burst phase.") var jobs = 10_000
    @Option(help: "Jobs sent in the paced phase.") var pacedJobs = 6_000
    @Option(help: "Jobs per second in the paced phase.") var rate = 2_000
    @Option(help: "Workspaces (installations) the jobs spread over; each gets the slots its share needs (40 included).") var workspaces = 500
    @Option(help: "Concurrent HTTP clients.") var clients = 32
    @Option(help: ArgumentHelp(RunnerBenchCommand.transportHelp)) var transport = "http"
    static let transportHelp =
        "http: deliveries over loopback HTTP (the clients share the cores); direct: handed to the webhook ingress in process, "
        + "after the socket (every check and write the same)."

    static let secret = "tenki-bench-secret"

    struct Phase: Encodable {
        let jobs: Int
        let seconds: Double
        let jobsPerSecond: Double
        let latencyMsP50: Double
        let latencyMsP99: Double
        let latencyMsMax: Double
        /// How fast the clients got their deliveries accepted (202), for comparison.
        let sentPerSecond: Double
        /// This process's CPU over the phase (the loopback clients' included with `http`), and
        /// jobs per second of it.
        let cpuSeconds: Double
        let perCPUSecond: Double
        enum CodingKeys: String, CodingKey {
            case sentPerSecond = "sent_per_second", cpuSeconds = "cpu_seconds", perCPUSecond = "per_cpu_second"
            case jobs, seconds, jobsPerSecond = "jobs_per_second", latencyMsP50 = "latency_ms_p50", latencyMsP99 = "latency_ms_p99"
            case latencyMsMax = "latency_ms_max"
        }
    }

    func run() async throws {
        guard jobs > 0, pacedJobs >= 0, rate > 0, workspaces > 0, clients > 0 else { throw HostError(.badRequest, "counts must be positive") }
        guard transport == "http" || transport == "direct" else { throw HostError(.badRequest, "--transport is http or direct") }
        let configuration = try options.configuration(extra: [
            "port": "0", "runner_provider": "none", "github_webhook_secret": RunnerBenchCommand.secret, "log_level": "error",
        ])
        HostLogHandler.bootstrap(configuration)
        let host = try await TenkiHost.open(configuration)
        let machine = try MachineFacts.measure(directory: configuration.dataDir)
        let listening = AsyncStream<Int>.makeStream()
        let server = Task { try await host.serve { port in listening.continuation.yield(port) } }
        var ports = listening.stream.makeAsyncIterator()
        guard let port = await ports.next() else { throw HostError(.internal, "the server did not start") }
        let ingress = host.plugin(GitHubPlugin.self)
        let url = transport == "direct" ? "" : "http://127.0.0.1:\(port)/webhooks/github"
        let http = HTTPClient()
        let store = try host.require(RunnerPlugin.self).store
        let base = Int64(Date().timeIntervalSince1970) * 1_000

        // Installations, each with room for every job it gets (slots are not what is measured):
        // the 40 included, more only when a workspace's share is larger.
        for w in 0..<workspaces {
            try await RunnerBenchCommand.post(http, url, ingress, event: "installation", body: RunnerBenchCommand.installation(w, base: base))
        }
        try await RunnerBenchCommand.until(seconds: 60) { try await store.workspaces().count >= workspaces }
        let share = Int64((jobs + pacedJobs + workspaces - 1) / workspaces)
        if share > JobScheduler.includedSlots {
            for workspace in try await store.workspaces() {
                try await store.update(workspace: workspace.id, .init(extraSlotsX64: share - JobScheduler.includedSlots))
            }
        }

        let burst = try await phase(http, url, ingress, store, first: 0, count: jobs, rate: nil, base: base)
        let paced = pacedJobs > 0 ? try await phase(http, url, ingress, store, first: jobs, count: pacedJobs, rate: rate, base: base) : nil
        var report: [String: Any] = [
            "machine": machine.object, "database": host.database.dialect.rawValue, "workspaces": workspaces, "clients": clients,
            "transport": transport,
            "burst": try RunnerBenchCommand.object(burst),
        ]
        if let paced {
            report["paced"] = try RunnerBenchCommand.object(paced)
            report["paced_rate"] = rate
        }
        print(String(decoding: try JSONSerialization.data(withJSONObject: report, options: [.sortedKeys]), as: UTF8.self))
        // The bench's data is throwaway: stop here rather than wait for a graceful shutdown.
        withExtendedLifetime(server) { Foundation.exit(0) }
    }

    /// Sends `count` queued jobs (at `rate` per second, or as fast as possible) and waits until a
    /// runner was requested for each; the figures come from the jobs' own timestamps.
    func phase(
        _ http: HTTPClient, _ url: String, _ ingress: GitHubPlugin?, _ store: RunnerStore, first: Int, count: Int, rate: Int?, base: Int64
    ) async throws -> Phase {
        // Bodies and signatures are made before the clock starts: the host's work is measured, not the client's.
        let bodies = (0..<count).map { i in RunnerBenchCommand.queuedJob(first + i, workspace: (first + i) % workspaces, base: base) }
        let signatures = bodies.map { WebhookSignature.gitHubHeader(secret: Array(RunnerBenchCommand.secret.utf8), body: $0) }
        let start = DispatchTime.now().uptimeNanoseconds
        let cpuStart = MachineFacts.processCPUSeconds()
        let clients = self.clients
        try await withThrowingTaskGroup(of: Void.self) { group in
            for c in 0..<clients {
                group.addTask {
                    for i in stride(from: c, to: count, by: clients) {
                        if let rate {
                            let due = start + UInt64(i) * 1_000_000_000 / UInt64(rate)
                            let now = DispatchTime.now().uptimeNanoseconds
                            if due > now { try await Task.sleep(nanoseconds: due - now) }
                        }
                        try await RunnerBenchCommand.post(http, url, ingress, event: "workflow_job", body: bodies[i], signature: signatures[i])
                    }
                }
            }
            try await group.waitForAll()
        }
        let sentSeconds = Double(DispatchTime.now().uptimeNanoseconds - start) / 1e9
        let low = base + Int64(first)
        let high = base + Int64(first + count)
        try await RunnerBenchCommand.until(seconds: 300) {
            let row = try await store.database.query(
                """
                SELECT COUNT(*) AS n FROM runner_jobs WHERE job_id >= $1 AND job_id < $2 AND provision_requested_at IS NOT NULL
                """, [.integer(low), .integer(high)]
            ).first
            return try row?.int("n") ?? 0 >= count
        }
        let cpuSeconds = MachineFacts.processCPUSeconds() - cpuStart
        let rows = try await store.database.query(
            """
            SELECT received_at, provision_requested_at FROM runner_jobs WHERE job_id >= $1 AND job_id < $2
            """, [.integer(low), .integer(high)])
        var latencies: [Int64] = []
        var firstReceived = Int64.max
        var lastRequested = Int64.min
        for row in rows {
            let received = try row.int("received_at")
            let requested = try row.int("provision_requested_at")
            latencies.append(requested - received)
            firstReceived = min(firstReceived, received)
            lastRequested = max(lastRequested, requested)
        }
        latencies.sort()
        func p(_ q: Int) -> Double { Double(latencies[min(latencies.count - 1, latencies.count * q / 100)]) }
        let seconds = Double(max(1, lastRequested - firstReceived)) / 1000
        return Phase(
            jobs: count, seconds: seconds, jobsPerSecond: (Double(count) / seconds).rounded(),
            latencyMsP50: p(50), latencyMsP99: p(99), latencyMsMax: Double(latencies.last ?? 0),
            sentPerSecond: (Double(count) / sentSeconds).rounded(), cpuSeconds: (cpuSeconds * 100).rounded() / 100,
            perCPUSecond: (Double(count) / max(cpuSeconds, 1e-6)).rounded())
    }

    static func object(_ phase: Phase) throws -> Any {
        try JSONSerialization.jsonObject(with: JSONEncoder().encode(phase))
    }

    static func until(seconds: Double, _ done: () async throws -> Bool) async throws {
        let deadline = Date().addingTimeInterval(seconds)
        while try await !done() {
            guard Date() < deadline else { throw HostError(.unavailable, "the bench timed out waiting for the runner") }
            try await Task.sleep(nanoseconds: 5_000_000)
        }
    }

    /// Sends one delivery over HTTP, or (no URL) hands it to the ingress in process.
    static func post(
        _ http: HTTPClient, _ url: String, _ ingress: GitHubPlugin?, event: String, body: [UInt8],
        signature: String? = nil
    ) async throws {
        let headers = [
            ("X-GitHub-Event", event), ("X-GitHub-Delivery", UUID().uuidString), ("Content-Type", "application/json"),
            ("X-Hub-Signature-256", signature ?? WebhookSignature.gitHubHeader(secret: Array(secret.utf8), body: body)),
        ]
        let status: Int
        if url.isEmpty, let ingress {
            status = try await ingress.receive(headers: Dictionary(uniqueKeysWithValues: headers.map { ($0.0.lowercased(), $0.1) }), body: body)
        } else {
            status = try await http.post(url, headers: headers, body: body).status
        }
        guard status == 202 else { throw HostError(.internal, "webhook answered \(status)") }
    }

    static func installation(_ w: Int, base: Int64) -> [UInt8] {
        let account: [String: Any] = ["id": base + Int64(w), "login": "bench-\(base)-\(w)", "type": "Organization"]
        return json([
            "action": "created", "installation": ["id": base + Int64(w), "account": account],
            "repositories": [["id": base + Int64(w), "name": "app", "full_name": "bench-\(base)-\(w)/app", "private": true]],
        ])
    }

    /// A `workflow_job.queued` delivery shaped and sized like GitHub's (about 8 KB: the
    /// repository with its API URLs, its owner, the sender), so parsing and storing cost what
    /// they cost in production.
    static func queuedJob(_ n: Int, workspace w: Int, base: Int64) -> [UInt8] {
        let login = "bench-\(base)-\(w)"
        let repo = "\(login)/app"
        let api = "https://api.github.com"
        let owner = account(id: base + Int64(w), login: login, type: "Organization")
        var repository: [String: Any] = [
            "id": base + Int64(w), "node_id": "R_kgDO\(w)", "name": "app", "full_name": repo, "private": true, "owner": owner,
            "html_url": "https://github.com/\(repo)", "description": "A service with a CI pipeline", "fork": false,
            "url": "\(api)/repos/\(repo)", "created_at": "2025-03-01T10:00:00Z", "updated_at": "2026-01-05T09:00:00Z",
            "pushed_at": "2026-01-05T09:59:00Z", "git_url": "git://github.com/\(repo).git", "ssh_url": "git@github.com:\(repo).git",
            "clone_url": "https://github.com/\(repo).git", "svn_url": "https://github.com/\(repo)", "homepage": NSNull(), "size": 2048,
            "stargazers_count": 12, "watchers_count": 12, "language": "Swift", "has_issues": true, "has_projects": true,
            "has_downloads": true, "has_wiki": false, "has_pages": false, "forks_count": 1, "mirror_url": NSNull(), "archived": false,
            "disabled": false, "open_issues_count": 3, "license": NSNull(), "forks": 1, "open_issues": 3, "watchers": 12,
            "default_branch": "main", "is_template": false, "topics": ["ci", "swift"], "visibility": "private",
            "web_commit_signoff_required": false, "custom_properties": [String: Any](),
        ]
        for name in [
            "forks", "keys{/key_id}", "collaborators{/collaborator}", "teams", "hooks", "issues/events{/number}", "events",
            "assignees{/user}", "branches{/branch}", "tags", "git/blobs{/sha}", "git/tags{/sha}", "git/refs{/sha}",
            "git/trees{/sha}", "statuses/{sha}", "languages", "stargazers", "contributors", "subscribers", "subscription",
            "commits{/sha}", "git/commits{/sha}", "comments{/number}", "issues/comments{/number}", "contents/{+path}",
            "compare/{base}...{head}", "merges", "{archive_format}{/ref}", "downloads", "issues{/number}", "pulls{/number}",
            "milestones{/number}", "notifications{?since,all,participating}", "labels{/name}", "releases{/id}", "deployments",
        ] {
            let key = name.split(separator: "{")[0].split(separator: "/").last.map(String.init) ?? "archive"
            repository[(key.isEmpty ? "archive" : key.replacingOccurrences(of: "-", with: "_")) + "_url"] = "\(api)/repos/\(repo)/\(name)"
        }
        let id = base + Int64(n)
        return json([
            "action": "queued",
            "workflow_job": [
                "id": id, "run_id": id, "run_attempt": 1, "node_id": "CR_kwDO\(n)", "head_sha": "8f2c1d9e4b7a6c5d3e2f1a0b9c8d7e6f5a4b3c2d",
                "head_branch": "main", "url": "\(api)/repos/\(repo)/actions/jobs/\(id)",
                "html_url": "https://github.com/\(repo)/actions/runs/\(id)/job/\(id)",
                "run_url": "\(api)/repos/\(repo)/actions/runs/\(id)", "check_run_url": "\(api)/repos/\(repo)/check-runs/\(id)",
                "status": "queued", "conclusion": NSNull(), "started_at": "2026-01-05T10:00:00Z", "created_at": "2026-01-05T10:00:00Z",
                "completed_at": NSNull(), "name": "build", "steps": [Any](), "labels": ["tenki-standard-2c-4gb"], "runner_id": NSNull(),
                "runner_name": NSNull(), "runner_group_id": NSNull(), "runner_group_name": NSNull(), "workflow_name": "CI",
            ],
            "repository": repository,
            "sender": account(id: 9_000_000 + Int64(w), login: "dev-\(w)", type: "User"),
            "installation": ["id": base + Int64(w), "node_id": "MDIzOkludGVncmF0aW9uSW5zdGFsbGF0aW9u\(w)"],
        ])
    }

    static func account(id: Int64, login: String, type: String) -> [String: Any] {
        var fields: [String: Any] = [
            "login": login, "id": id, "node_id": "O_kgDO\(id)", "gravatar_id": "", "type": type, "site_admin": false,
            "avatar_url": "https://avatars.githubusercontent.com/u/\(id)?v=4",
        ]
        for (key, path) in [
            ("url", ""), ("html_url", ""), ("followers_url", "/followers"), ("following_url", "/following{/other_user}"),
            ("gists_url", "/gists{/gist_id}"), ("starred_url", "/starred{/owner}{/repo}"),
            ("subscriptions_url", "/subscriptions"), ("organizations_url", "/orgs"), ("repos_url", "/repos"),
            ("events_url", "/events{/privacy}"), ("received_events_url", "/received_events"),
        ] {
            fields[key] = (key == "html_url" ? "https://github.com/" : "https://api.github.com/users/") + login + path
        }
        return fields
    }

    static func json(_ object: [String: Any]) -> [UInt8] { Array(try! JSONSerialization.data(withJSONObject: object)) }
}
