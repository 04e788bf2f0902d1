import ArgumentParser
import Foundation
import Host

/// `tenki jobs list | metrics`: the jobs of the marketplace, as operators and tools read them.
struct JobsCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "jobs", abstract: "Workflow jobs: their state, why they wait, what they cost; queue and run metrics.",
        subcommands: [List.self, Metrics.self])

    struct List: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "List jobs, oldest first.")
        @OptionGroup var options: HostOptions
        @Option(help: "Only jobs in this inner status (queued, blocked, waiting, provisioning, provisioned, running, completed, foreign).")
        var status: String?
        @Option(help: "Only this workspace (id or slug).") var workspace: String?
        @Option(help: "At most this many.") var limit = 100
        @Flag(help: "Print JSON.") var json = false

        func run() async throws {
            guard status == nil || JobStatus(rawValue: status!) != nil else { throw HostError(.badRequest, "unknown status '\(status!)'") }
            let (_, store) = try await RunnerCommand.store(options)
            let id = try await store.workspaceID(named: workspace)
            let jobs = try await store.jobViews(status: status.flatMap(JobStatus.init(rawValue:)), workspace: id, limit: limit)
            if json {
                print(try RunnerCommand.json(jobs))
                return
            }
            for view in jobs {
                let job = view.job
                print(
                    "\(job.key)  \(view.state)\(view.reason.map { " (\($0))" } ?? "")  \(job.workspaceID)  \(job.repository)  "
                        + "\(job.sku ?? job.labels.joined(separator: ","))  \(view.billableMinutes) min  "
                        + "\(MoneyText.usd(view.amountMicros, decimals: 4))"
                )
            }
        }
    }

    struct Metrics: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Queue time and duration p50/p90 and failure rate per workspace and offering; the queue right now.")
        @OptionGroup var options: HostOptions
        @Option(help: "Only this workspace (id or slug).") var workspace: String?
        @Option(help: "Jobs finished within this many hours.") var hours: Int64 = 24
        @Flag(help: "Print JSON.") var json = false

        func run() async throws {
            let (_, store) = try await RunnerCommand.store(options)
            let id = try await store.workspaceID(named: workspace)
            let metrics = try await store.jobMetrics(workspace: id, windowSeconds: hours * 3600)
            let queue = try await store.queueDepths().filter { id == nil || $0.workspaceID == id }
            if json {
                print(try RunnerCommand.json(RunnerMetricsReport(jobs: metrics, queue: queue)))
                return
            }
            func s(_ value: Int64?) -> String { value.map { "\($0)s" } ?? "-" }
            for m in metrics {
                print(
                    "\(m.workspaceID)  \(m.sku)  jobs=\(m.jobs) failed=\(m.failed)  queue p50 \(s(m.queueSecondsP50)) p90 \(s(m.queueSecondsP90))"
                        + "  duration p50 \(s(m.durationSecondsP50)) p90 \(s(m.durationSecondsP90))")
            }
            for q in queue {
                print("\(q.workspaceID)  \(q.sku)  queued=\(q.queued) blocked=\(q.blocked) oldest=\(q.oldestQueuedAgeSeconds)s")
            }
        }
    }
}

/// What `tenki jobs metrics --json` and GET /runner/metrics answer.
struct RunnerMetricsReport: Codable {
    var jobs: [JobMetrics]
    var queue: [QueueDepth]
}
