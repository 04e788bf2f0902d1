import ArgumentParser
import Foundation
import GitHubPlugin
import Host
import HTTPClient
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
    @Option(help: "http: deliveries over loopback HTTP (the clients share the cores); direct: handed to the webhook ingress in process, after the socket (every check and write the same).")
    var transport = "http"

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
        enum CodingKeys: String, CodingKey {
            case sentPerSecond = "sent_per_second"
            case jobs, seconds, jobsPerSecond = "jobs_per_second", latencyMsP50 = "latency_ms_p50", latencyMsP99 = "latency_ms_p99"
            case latencyMsMax = "latency_ms_max"
        }
    }

    func run() async throws {
        try await runReportingErrors {
            guard jobs > 0, pacedJobs >= 0, rate > 0, workspaces > 0, clients > 0 else { throw HostError(.badRequest, "counts must be positive") }
            guard transport == "http" || transport == "direct" else { throw HostError(.badRequest, "--transport is http or direct") }
            let configuration = try options.configuration(extra: [
                "port": "0", "runner_provider": "none", "github_webhook_secret": RunnerBenchCommand.secret, "log_level": "error",
            ])
            HostLogHandler.bootstrap(configuration)
            let host = try await TenkiHost.open(configuration)
            let listening = AsyncStream<Int>.makeStream()
            let server = Task { try await host.serve { port in listening.continuation.yield(port) } }
            var ports = listening.stream.makeAsyncIterator()
            guard let port = await ports.next() else { throw HostError(.internal, "the server did not start") }
            let ingress = host.plugins.lazy.compactMap { $0 as? GitHubPlugin }.first
            let url = transport == "direct" ? "" : "http://127.0.0.1:\(port)/webhooks/github"
            let http = HTTPClient()
            let store = RunnerStore(database: host.database)
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
            var report: [String: Any] = ["database": host.database.dialect.rawValue, "workspaces": workspaces, "clients": clients, "transport": transport,
                                         "burst": try RunnerBenchCommand.object(burst)]
            if let paced { report["paced"] = try RunnerBenchCommand.object(paced); report["paced_rate"] = rate }
            print(String(decoding: try JSONSerialization.data(withJSONObject: report, options: [.sortedKeys]), as: UTF8.self))
            // The bench's data is throwaway: stop here rather than wait for a graceful shutdown.
            withExtendedLifetime(server) { Foundation.exit(0) }
        }
    }

    /// Sends `count` queued jobs (at `rate` per second, or as fast as possible) and waits until a
    /// runner was requested for each; the figures come from the jobs' own timestamps.
    func phase(_ http: HTTPClient, _ url: String, _ ingress: GitHubPlugin?, _ store: RunnerStore, first: Int, count: Int, rate: Int?, base: Int64) async throws -> Phase {
        // Bodies and signatures are made before the clock starts: the host's work is measured, not the client's.
        let bodies = (0..<count).map { i in RunnerBenchCommand.queuedJob(first + i, workspace: (first + i) % workspaces, base: base) }
        let signatures = bodies.map { WebhookSignature.gitHubHeader(secret: Array(RunnerBenchCommand.secret.utf8), body: $0) }
        let start = DispatchTime.now().uptimeNanoseconds
        try await withThrowingTaskGroup(of: Void.self) { group in
            for c in 0..<clients {
                group.addTask {
                    for i in stride(from: c, to: count, by: self.clients) {
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
        let low = base + Int64(first), high = base + Int64(first + count)
        try await RunnerBenchCommand.until(seconds: 300) {
            let row = try await store.database.query("""
                SELECT COUNT(*) AS n FROM runner_jobs WHERE job_id >= $1 AND job_id < $2 AND provision_requested_at IS NOT NULL
                """, [.integer(low), .integer(high)]).first
            return try row?.int("n") ?? 0 >= count
        }
        let rows = try await store.database.query("""
            SELECT received_at, provision_requested_at FROM runner_jobs WHERE job_id >= $1 AND job_id < $2
            """, [.integer(low), .integer(high)])
        var latencies: [Int64] = []
        var firstReceived = Int64.max, lastRequested = Int64.min
        for row in rows {
            let received = try row.int("received_at"), requested = try row.int("provision_requested_at")
            latencies.append(requested - received)
            firstReceived = min(firstReceived, received)
            lastRequested = max(lastRequested, requested)
        }
        latencies.sort()
        func p(_ q: Int) -> Double { Double(latencies[min(latencies.count - 1, latencies.count * q / 100)]) }
        let seconds = Double(max(1, lastRequested - firstReceived)) / 1000
        return Phase(jobs: count, seconds: seconds, jobsPerSecond: (Double(count) / seconds).rounded(),
                     latencyMsP50: p(50), latencyMsP99: p(99), latencyMsMax: Double(latencies.last ?? 0),
                     sentPerSecond: (Double(count) / sentSeconds).rounded())
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
    static func post(_ http: HTTPClient, _ url: String, _ ingress: GitHubPlugin?, event: String, body: [UInt8],
                     signature: String? = nil) async throws {
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
        return json(["action": "created", "installation": ["id": base + Int64(w), "account": account],
                     "repositories": [["id": base + Int64(w), "name": "app", "full_name": "bench-\(base)-\(w)/app", "private": true]]])
    }

    static func queuedJob(_ n: Int, workspace w: Int, base: Int64) -> [UInt8] {
        let owner: [String: Any] = ["id": base + Int64(w), "login": "bench-\(base)-\(w)", "type": "Organization"]
        return json([
            "action": "queued",
            "workflow_job": ["id": base + Int64(n), "run_id": base + Int64(n), "run_attempt": 1, "name": "build", "status": "queued",
                             "labels": ["tenki-standard-2c-4gb"], "created_at": "2026-01-05T10:00:00Z"],
            "repository": ["id": base + Int64(w), "name": "app", "full_name": "bench-\(base)-\(w)/app", "owner": owner],
            "installation": ["id": base + Int64(w)],
        ])
    }

    static func json(_ object: [String: Any]) -> [UInt8] { Array(try! JSONSerialization.data(withJSONObject: object)) }
}
