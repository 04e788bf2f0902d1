import Foundation
import Host
import SQL

/// Daily storage snapshots per workspace (docs/PRODUCT.md §7): billable bytes and the
/// transparent cache's bytes, kept apart (the cache is never billed). One row per workspace and
/// UTC day: a second report of the same day replaces the first (the latest measurement wins), so
/// a repeated report changes nothing.
package enum StorageSnapshots {
    package struct Snapshot: Sendable, Codable, Equatable {
        package let workspaceID: String
        /// `YYYY-MM-DD` (UTC).
        package let day: String
        package let billableBytes: Int64
        package let cacheBytes: Int64

        enum CodingKeys: String, CodingKey {
            case workspaceID = "workspace_id", day, billableBytes = "billable_bytes", cacheBytes = "cache_bytes"
        }

        package init(workspaceID: String, day: String, billableBytes: Int64, cacheBytes: Int64) {
            self.workspaceID = workspaceID
            self.day = day
            self.billableBytes = billableBytes
            self.cacheBytes = cacheBytes
        }
    }

    /// A report as `POST /billing/workspaces/{w}/storage` takes it.
    package struct Report: Sendable, Codable {
        package let day: String
        package let billableBytes: Int64
        package let cacheBytes: Int64?
        enum CodingKeys: String, CodingKey { case day, billableBytes = "billable_bytes", cacheBytes = "cache_bytes" }
    }

    /// Checks a day and byte counts; a bad one is a bad request.
    package static func validated(_ snapshot: Snapshot) throws -> Snapshot {
        guard snapshot.day.count == 10, Timestamp.parseUTCSeconds(snapshot.day + "T00:00:00Z") != nil else {
            throw HostError(.badRequest, "day must be YYYY-MM-DD, not '\(snapshot.day)'")
        }
        guard snapshot.billableBytes >= 0, snapshot.cacheBytes >= 0 else { throw HostError(.badRequest, "byte counts must not be negative") }
        return snapshot
    }

    package static func record(_ database: any Database, _ snapshot: Snapshot, now: Int64) async throws {
        let s = try validated(snapshot)
        _ = try await database.execute(
            """
            INSERT INTO billing_storage_snapshots (workspace_id, day, billable_bytes, cache_bytes, recorded_at) VALUES ($1, $2, $3, $4, $5)
            ON CONFLICT (workspace_id, day) DO UPDATE SET billable_bytes = excluded.billable_bytes, cache_bytes = excluded.cache_bytes,
                recorded_at = excluded.recorded_at
            """, [.text(s.workspaceID), .text(s.day), .integer(s.billableBytes), .integer(s.cacheBytes), .integer(now)])
    }

    package static func list(_ database: any Database, workspace: String) async throws -> [Snapshot] {
        try await database.read { db in
            try db.query("SELECT * FROM billing_storage_snapshots WHERE workspace_id = $1 ORDER BY day", [.text(workspace)]).map {
                Snapshot(
                    workspaceID: try $0.string("workspace_id"), day: try $0.string("day"), billableBytes: try $0.int("billable_bytes"),
                    cacheBytes: try $0.int("cache_bytes"))
            }
        }
    }

    /// Billable bytes of each day of the period: a day without a snapshot counts as the last
    /// known value (from before the period too), a day before the first snapshot as 0. nil when
    /// the workspace never reported storage up to the period's end.
    static func dailyBytes(_ db: any SQLConnection, workspace: String, period: BillingPeriod) throws -> [Int64]? {
        let first = BillingPeriod.day(period.start)
        let end = BillingPeriod.day(period.end)
        var known: [String: Int64] = [:]
        for row in try db.query(
            "SELECT day, billable_bytes FROM billing_storage_snapshots WHERE workspace_id = $1 AND day >= $2 AND day < $3",
            [.text(workspace), .text(first), .text(end)])
        {
            known[try row.string("day")] = try row.int("billable_bytes")
        }
        let before = try db.queryOne(
            "SELECT billable_bytes FROM billing_storage_snapshots WHERE workspace_id = $1 AND day < $2 ORDER BY day DESC LIMIT 1",
            [.text(workspace), .text(first)])
        guard !known.isEmpty || before != nil else { return nil }
        var last = try before?.int("billable_bytes") ?? 0
        return (0..<period.days).map { i in
            last = known[BillingPeriod.day(period.start + Int64(i) * 86_400)] ?? last
            return last
        }
    }
}

/// Promotional credits in money (docs/PRODUCT.md §13): grants (3003) and revocations (3004),
/// each with a reason and who did it; an invoice applies what is available before the card is
/// charged.
package enum PromoCredits {
    /// Granted − revoked − applied on invoices that were not voided.
    static func available(_ db: any SQLConnection, workspace: String) throws -> Int64 {
        let granted = try db.queryOne(
            """
            SELECT COALESCE(SUM(CASE WHEN kind = 'grant' THEN amount_micros ELSE -amount_micros END), 0) AS n
            FROM billing_promo_credits WHERE workspace_id = $1
            """, [.text(workspace)])!.int("n")
        let applied = try db.queryOne(
            "SELECT COALESCE(SUM(promo_applied_micros), 0) AS n FROM billing_invoices WHERE workspace_id = $1 AND status <> 'void'",
            [.text(workspace)])!.int("n")
        return granted - applied
    }
}
