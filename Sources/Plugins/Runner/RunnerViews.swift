import Foundation
import Host
import SQL

/// A job as operators and other tools read it (`tenki jobs list`, GET /runner/jobs): the
/// record's fields plus its public `state`, the `reason` it is not running, and what it was
/// charged. The public states fold the scheduler's inner steps: waiting for a slot reads as
/// `queued`, a runner being or having been provisioned as `provisioning`, a completed job whose
/// conclusion is `cancelled` as `cancelled`.
package struct JobView: Sendable, Encodable {
    package var job: RunnerJob
    package var billableMinutes: Int64
    package var freeMinutesConsumed: Int64
    package var amountMicros: Int64

    package var state: String {
        switch job.status {
        case .queued, .waiting: return "queued"
        case .blocked: return "blocked"
        case .provisioning, .provisioned: return "provisioning"
        case .running: return "running"
        case .completed: return job.conclusion == "cancelled" ? "cancelled" : "completed"
        case .foreign: return "foreign"
        }
    }

    /// Why the job is not running: the block's reason, or that it waits for a concurrency slot.
    package var reason: String? {
        switch job.status {
        case .blocked: return job.blockReason
        case .waiting: return "slot_limit"
        case .foreign: return "no_matching_offering"
        default: return nil
        }
    }

    enum Keys: String, CodingKey {
        case state, reason, billableMinutes = "billable_minutes", freeMinutesConsumed = "free_minutes_consumed", amountMicros = "amount_micros"
    }

    package func encode(to encoder: any Encoder) throws {
        try job.encode(to: encoder)
        var container = encoder.container(keyedBy: Keys.self)
        try container.encode(state, forKey: .state)
        try container.encode(reason, forKey: .reason)
        try container.encode(billableMinutes, forKey: .billableMinutes)
        try container.encode(freeMinutesConsumed, forKey: .freeMinutesConsumed)
        try container.encode(amountMicros, forKey: .amountMicros)
    }
}

extension RunnerStore {
    /// Jobs oldest first with what each was charged (0 until priced).
    package func jobViews(status: JobStatus? = nil, workspace: String? = nil, limit: Int = HostLimits.listMaxRows) async throws -> [JobView] {
        let (filter, values) = RunnerStore.jobFilter(status: status, workspace: workspace, limit: limit, table: "j")
        return try await database.read { db in
            try db.query(
                """
                SELECT j.*, u.billable_minutes AS u_billable, u.free_minutes_consumed AS u_free, u.amount_micros AS u_amount
                FROM runner_jobs j
                LEFT JOIN runner_usage u ON u.usage_key = j.installation_id || '/' || j.job_id || '/' || j.run_attempt
                \(filter)
                """, values
            ).map { row in
                JobView(
                    job: try RunnerStore.job(from: row), billableMinutes: try row.optionalInt("u_billable") ?? 0,
                    freeMinutesConsumed: try row.optionalInt("u_free") ?? 0, amountMicros: try row.optionalInt("u_amount") ?? 0)
            }
        }
    }
}

/// GetRunnerMetrics: per workspace and offering, over jobs that finished in a window — how long
/// they queued (GitHub's queue time to start) and ran, p50 and p90 in seconds, and how many failed.
package struct JobMetrics: Sendable, Codable, Equatable {
    package var workspaceID: String
    package var sku: String
    package var jobs: Int
    package var failed: Int
    /// failed / jobs, in parts per million (integers end to end).
    package var failureRatePPM: Int64
    package var queueSecondsP50: Int64?
    package var queueSecondsP90: Int64?
    package var durationSecondsP50: Int64?
    package var durationSecondsP90: Int64?

    enum CodingKeys: String, CodingKey {
        case workspaceID = "workspace_id", sku, jobs, failed, failureRatePPM = "failure_rate_ppm"
        case queueSecondsP50 = "queue_seconds_p50", queueSecondsP90 = "queue_seconds_p90"
        case durationSecondsP50 = "duration_seconds_p50", durationSecondsP90 = "duration_seconds_p90"
    }

    /// Conclusions that count as failures (a cancelled or skipped job is not one).
    static let failedConclusions: Set<String> = ["failure", "timed_out", "startup_failure"]
    /// At most this many finished jobs are read per computation.
    static let maxJobsRead = 100_000

    /// The nearest-rank percentile of sorted values.
    static func percentile(_ sorted: [Int64], _ p: Int) -> Int64? {
        guard !sorted.isEmpty else { return nil }
        let rank = max(1, (sorted.count * p + 99) / 100)
        return sorted[min(sorted.count, rank) - 1]
    }
}

/// What is waiting right now, per workspace and offering: the queue depth and its oldest job.
package struct QueueDepth: Sendable, Codable, Equatable {
    package var workspaceID: String
    /// The offering; `unadmitted` until admission has matched one.
    package var sku: String
    package var queued: Int64
    package var blocked: Int64
    package var oldestQueuedAgeSeconds: Int64

    enum CodingKeys: String, CodingKey {
        case workspaceID = "workspace_id", sku, queued, blocked, oldestQueuedAgeSeconds = "oldest_queued_age_seconds"
    }
}

extension RunnerStore {
    /// Metrics of jobs completed within the last `windowSeconds` (by when we recorded it).
    package func jobMetrics(workspace: String? = nil, windowSeconds: Int64 = 86_400) async throws -> [JobMetrics] {
        let since = RunnerStore.nowMilliseconds() - windowSeconds * 1000
        let rows = try await database.read { db in
            var values: [SQLValue] = [.integer(since), .integer(Int64(JobMetrics.maxJobsRead))]
            var filter = ""
            if let workspace {
                values.append(.text(workspace))
                filter = " AND workspace_id = $3"
            }
            return try db.query(
                """
                SELECT workspace_id, sku, queued_at, started_at, completed_at, conclusion FROM runner_jobs
                WHERE status = 'completed' AND sku IS NOT NULL AND started_at IS NOT NULL AND updated_at >= $1\(filter)
                ORDER BY updated_at DESC LIMIT $2
                """, values)
        }
        struct Group {
            var queue: [Int64] = []
            var duration: [Int64] = []
            var jobs = 0
            var failed = 0
        }
        var groups: [String: [String: Group]] = [:]
        for row in rows {
            let workspace = try row.string("workspace_id")
            let sku = try row.string("sku")
            var group = groups[workspace, default: [:]][sku, default: Group()]
            group.jobs += 1
            if let conclusion = try row.optionalString("conclusion"), JobMetrics.failedConclusions.contains(conclusion) { group.failed += 1 }
            let started = try row.optionalString("started_at").flatMap(Timestamp.parseUTCSeconds)
            if let queued = try row.optionalString("queued_at").flatMap(Timestamp.parseUTCSeconds), let started {
                group.queue.append(max(0, started - queued))
            }
            if let completed = try row.optionalString("completed_at").flatMap(Timestamp.parseUTCSeconds), let started {
                group.duration.append(max(0, completed - started))
            }
            groups[workspace, default: [:]][sku] = group
        }
        var out: [JobMetrics] = []
        for workspace in groups.keys.sorted() {
            for (sku, group) in groups[workspace]!.sorted(by: { $0.key < $1.key }) {
                let queue = group.queue.sorted()
                let duration = group.duration.sorted()
                out.append(
                    JobMetrics(
                        workspaceID: workspace, sku: sku, jobs: group.jobs, failed: group.failed,
                        failureRatePPM: Int64(group.failed) * 1_000_000 / Int64(max(1, group.jobs)),
                        queueSecondsP50: JobMetrics.percentile(queue, 50), queueSecondsP90: JobMetrics.percentile(queue, 90),
                        durationSecondsP50: JobMetrics.percentile(duration, 50),
                        durationSecondsP90: JobMetrics.percentile(duration, 90)))
            }
        }
        return out
    }

    /// Queued (not yet running, slot or admission pending) and blocked jobs per workspace and offering.
    package func queueDepths() async throws -> [QueueDepth] {
        let now = RunnerStore.nowMilliseconds()
        let rows = try await database.query(
            """
            SELECT workspace_id, COALESCE(sku, 'unadmitted') AS sku,
                SUM(CASE WHEN status IN ('queued', 'waiting') THEN 1 ELSE 0 END) AS queued,
                SUM(CASE WHEN status = 'blocked' THEN 1 ELSE 0 END) AS blocked,
                MIN(CASE WHEN status IN ('queued', 'waiting') THEN received_at END) AS oldest
            FROM runner_jobs WHERE status IN ('queued', 'waiting', 'blocked')
            GROUP BY workspace_id, COALESCE(sku, 'unadmitted') ORDER BY workspace_id, sku
            """)
        return try rows.map { row in
            QueueDepth(
                workspaceID: try row.string("workspace_id"), sku: try row.string("sku"), queued: try row.int("queued"),
                blocked: try row.int("blocked"),
                oldestQueuedAgeSeconds: try row.optionalInt("oldest").map { max(0, now - $0) / 1000 } ?? 0)
        }
    }

    /// The runner's Prometheus families: queue depth and oldest age now, and the job metrics of
    /// the last day.
    func metricFamilies() async throws -> [MetricFamily] {
        let depths = try await queueDepths()
        let metrics = try await jobMetrics()
        func labels(_ workspace: String, _ sku: String) -> [(String, String)] { [("workspace", workspace), ("sku", sku)] }
        var queueTime: [MetricFamily.Sample] = []
        var duration: [MetricFamily.Sample] = []
        for m in metrics {
            for (q, value) in [("0.5", m.queueSecondsP50), ("0.9", m.queueSecondsP90)] {
                if let value { queueTime.append(.init(labels: labels(m.workspaceID, m.sku) + [("quantile", q)], value: Double(value))) }
            }
            for (q, value) in [("0.5", m.durationSecondsP50), ("0.9", m.durationSecondsP90)] {
                if let value { duration.append(.init(labels: labels(m.workspaceID, m.sku) + [("quantile", q)], value: Double(value))) }
            }
        }
        return [
            MetricFamily(
                name: "tenki_runner_queue_depth", help: "Jobs waiting for admission or a slot, per workspace and offering.",
                kind: .gauge, samples: depths.map { .init(labels: labels($0.workspaceID, $0.sku), value: Double($0.queued)) }),
            MetricFamily(
                name: "tenki_runner_blocked_jobs", help: "Jobs blocked by admission, per workspace and offering.",
                kind: .gauge, samples: depths.map { .init(labels: labels($0.workspaceID, $0.sku), value: Double($0.blocked)) }),
            MetricFamily(
                name: "tenki_runner_oldest_queued_age_seconds", help: "Age of the oldest waiting job, per workspace and offering.",
                kind: .gauge, samples: depths.map { .init(labels: labels($0.workspaceID, $0.sku), value: Double($0.oldestQueuedAgeSeconds)) }),
            MetricFamily(
                name: "tenki_runner_job_queue_seconds", help: "Queue time of jobs finished in the last 24 h (GitHub queue to start).",
                kind: .gauge, samples: queueTime),
            MetricFamily(
                name: "tenki_runner_job_duration_seconds", help: "Run time of jobs finished in the last 24 h.",
                kind: .gauge, samples: duration),
            MetricFamily(
                name: "tenki_runner_jobs_finished", help: "Jobs finished in the last 24 h.", kind: .gauge,
                samples: metrics.map { .init(labels: labels($0.workspaceID, $0.sku), value: Double($0.jobs)) }),
            MetricFamily(
                name: "tenki_runner_job_failure_ratio", help: "Share of jobs finished in the last 24 h that failed.", kind: .gauge,
                samples: metrics.map { .init(labels: labels($0.workspaceID, $0.sku), value: Double($0.failureRatePPM) / 1_000_000) }),
        ]
    }
}
