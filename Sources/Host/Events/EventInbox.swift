import Foundation
import SQL

/// The durable inbox under the event bus: events are rows written in the producer's own
/// transaction, claimed under a lease (with `FOR UPDATE SKIP LOCKED` on PostgreSQL, so several
/// replicas share the work), and marked handled per subscriber.
package enum EventInbox {
    static let migrations: [Migration] = [
        Migration(
            1, "event inbox",
            sql: """
                CREATE TABLE event_inbox (
                    id INTEGER PRIMARY KEY AUTOINCREMENT,
                    topic TEXT NOT NULL,
                    source TEXT NOT NULL,
                    source_id TEXT NOT NULL,
                    payload BLOB,
                    status TEXT NOT NULL DEFAULT 'pending',
                    attempts INTEGER NOT NULL DEFAULT 0,
                    next_attempt_at_ms BIGINT NOT NULL,
                    lease_owner TEXT,
                    lease_until_ms BIGINT,
                    last_error TEXT,
                    created_at_ms BIGINT NOT NULL,
                    handled_at_ms BIGINT
                );
                CREATE INDEX event_inbox_pending ON event_inbox (next_attempt_at_ms, id) WHERE status = 'pending';
                CREATE INDEX event_inbox_source ON event_inbox (source, source_id);
                CREATE TABLE event_handled (
                    event_id BIGINT NOT NULL,
                    subscriber TEXT NOT NULL,
                    handled_at_ms BIGINT NOT NULL,
                    PRIMARY KEY (event_id, subscriber)
                );
                """)
    ]

    /// Adds an event inside the caller's transaction, so it exists exactly when the caller's
    /// own write does. A nil payload is read at dispatch time from the source's payload loader.
    @discardableResult
    package static func publish(
        in db: any SQLConnection, topic: String, source: String, sourceID: String,
        payload: [UInt8]?, now: Date = Date()
    ) throws -> Int64 {
        let nowMs = Int64(now.timeIntervalSince1970 * 1000)
        let rows = try db.query(
            """
            INSERT INTO event_inbox (topic, source, source_id, payload, next_attempt_at_ms, created_at_ms)
            VALUES ($1, $2, $3, $4, $5, $5) RETURNING id
            """, [.text(topic), .text(source), .text(sourceID), payload.map { .blob($0) } ?? .null, .integer(nowMs)])
        return try rows[0].int("id")
    }

    struct Claimed {
        let id: Int64
        let topic: String
        let source: String
        let sourceID: String
        let payload: [UInt8]?
        let createdAtMs: Int64
        let attempts: Int
    }

    static func claim(_ db: any SQLConnection, owner: String, nowMs: Int64, leaseMs: Int64, limit: Int) throws -> [Claimed] {
        let lock = db.dialect == .postgres ? "FOR UPDATE SKIP LOCKED" : ""
        let rows = try db.query(
            """
            UPDATE event_inbox SET lease_owner = $1, lease_until_ms = $2, attempts = attempts + 1
            WHERE id IN (
                SELECT id FROM event_inbox
                WHERE status = 'pending' AND next_attempt_at_ms <= $3 AND (lease_until_ms IS NULL OR lease_until_ms < $3)
                ORDER BY id LIMIT $4 \(lock))
            RETURNING id, topic, source, source_id, payload, created_at_ms, attempts
            """, [.text(owner), .integer(nowMs + leaseMs), .integer(nowMs), .integer(Int64(limit))])
        return try rows.map { row in
            Claimed(
                id: try row.int("id"), topic: try row.string("topic"), source: try row.string("source"),
                sourceID: try row.string("source_id"), payload: row["payload"].isNull ? nil : try row.bytes("payload"),
                createdAtMs: try row.int("created_at_ms"), attempts: Int(try row.int("attempts")))
        }.sorted { $0.id < $1.id }
    }

    /// Records that `subscriber` handled `eventID`; false if it already had.
    static func markHandled(_ db: any SQLConnection, eventID: Int64, subscriber: String, nowMs: Int64) throws -> Bool {
        try db.execute(
            """
            INSERT INTO event_handled (event_id, subscriber, handled_at_ms) VALUES ($1, $2, $3)
            ON CONFLICT (event_id, subscriber) DO NOTHING
            """, [.integer(eventID), .text(subscriber), .integer(nowMs)]) == 1
    }

    static func handledSubscribers(_ db: any SQLConnection, eventID: Int64) throws -> Set<String> {
        Set(
            try db.query("SELECT subscriber FROM event_handled WHERE event_id = $1", [.integer(eventID)])
                .map { try $0.string("subscriber") })
    }

    static func complete(_ db: any SQLConnection, eventID: Int64, owner: String, nowMs: Int64) throws {
        try db.execute(
            """
            UPDATE event_inbox SET status = 'done', handled_at_ms = $3, lease_owner = NULL, lease_until_ms = NULL, last_error = NULL
            WHERE id = $1 AND lease_owner = $2
            """, [.integer(eventID), .text(owner), .integer(nowMs)])
    }

    static func fail(_ db: any SQLConnection, eventID: Int64, owner: String, error: String, retryAtMs: Int64, maxAttempts: Int) throws {
        try db.execute(
            """
            UPDATE event_inbox SET lease_owner = NULL, lease_until_ms = NULL, last_error = $3, next_attempt_at_ms = $4,
                status = CASE WHEN attempts >= $5 THEN 'dead' ELSE 'pending' END
            WHERE id = $1 AND lease_owner = $2
            """,
            [
                .integer(eventID), .text(owner), .text(String(error.prefix(HostLimits.inboxMaxStoredErrorCharacters))), .integer(retryAtMs),
                .integer(Int64(maxAttempts)),
            ])
    }

    /// Drops every lease (used at start by the single process that owns a SQLite file).
    static func releaseAllLeases(_ db: any SQLConnection) throws {
        try db.execute("UPDATE event_inbox SET lease_owner = NULL, lease_until_ms = NULL WHERE status = 'pending' AND lease_owner IS NOT NULL")
    }

    /// The state of the given events, with who handled them.
    package static func records(_ db: any SQLConnection, ids: [Int64]) throws -> [Int64: EventRecord] {
        var result: [Int64: EventRecord] = [:]
        for id in ids {
            guard
                let row = try db.queryOne(
                    """
                    SELECT id, topic, source, source_id, status, attempts, last_error, created_at_ms, handled_at_ms
                    FROM event_inbox WHERE id = $1
                    """, [.integer(id)])
            else { continue }
            let handled = try db.query(
                "SELECT subscriber, handled_at_ms FROM event_handled WHERE event_id = $1 ORDER BY subscriber",
                [.integer(id)])
            result[id] = EventRecord(
                id: id, topic: try row.string("topic"), source: try row.string("source"), sourceID: try row.string("source_id"),
                status: try row.string("status"), attempts: Int(try row.int("attempts")), lastError: try row.optionalString("last_error"),
                createdAt: Timestamp.iso(ms: try row.int("created_at_ms")),
                handledAt: try row.optionalInt("handled_at_ms").map { Timestamp.iso(ms: $0) },
                handledBy: try handled.map {
                    .init(subscriber: try $0.string("subscriber"), handledAt: Timestamp.iso(ms: try $0.int("handled_at_ms")))
                })
        }
        return result
    }

    package static func latestRecords(_ db: any SQLConnection, source: String, sourceIDs: [String]) throws -> [String: EventRecord] {
        var ids: [Int64] = []
        for sourceID in sourceIDs {
            if let row = try db.queryOne(
                "SELECT MAX(id) AS id FROM event_inbox WHERE source = $1 AND source_id = $2",
                [.text(source), .text(sourceID)]), let id = try row.optionalInt("id")
            {
                ids.append(id)
            }
        }
        var result: [String: EventRecord] = [:]
        for record in try records(db, ids: ids).values { result[record.sourceID] = record }
        return result
    }

    /// Counts of events by status, for health and metrics.
    package static func counts(_ db: any SQLConnection) throws -> [String: Int] {
        var counts: [String: Int] = [:]
        for row in try db.query("SELECT status, COUNT(*) AS n FROM event_inbox GROUP BY status") {
            counts[try row.string("status")] = Int(try row.int("n"))
        }
        return counts
    }
}

/// Millisecond timestamps as stored, and their ISO 8601 form as shown.
package enum Timestamp {
    /// `YYYY-MM-DDThh:mm:ss[.fff]Z` → Unix seconds, without a formatter (hot paths); nil if malformed.
    package static func parseUTCSeconds(_ text: String) -> Int64? {
        var utf8 = Array(text.utf8)
        guard utf8.count >= 20, utf8.last == UInt8(ascii: "Z") else { return nil }
        utf8.removeLast()
        if utf8.count > 19 {
            guard utf8[19] == UInt8(ascii: "."), utf8[20...].allSatisfy({ (48...57).contains($0) }), utf8.count > 20 else { return nil }
        }
        let layout = Array("dddd-dd-ddTdd:dd:dd".utf8)
        for k in 0..<19 {
            let ok = layout[k] == UInt8(ascii: "d") ? (48...57).contains(utf8[k]) : utf8[k] == layout[k]
            guard ok else { return nil }
        }
        func number(_ from: Int, _ count: Int) -> Int64 {
            var value: Int64 = 0
            for k in from..<(from + count) { value = value * 10 + Int64(utf8[k] - 48) }
            return value
        }
        let (y, m, d) = (number(0, 4), number(5, 2), number(8, 2))
        let (hh, mm, ss) = (number(11, 2), number(14, 2), number(17, 2))
        let monthDays: [Int64] = [31, (y % 4 == 0 && y % 100 != 0) || y % 400 == 0 ? 29 : 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31]
        guard (1...12).contains(m), d >= 1, d <= monthDays[Int(m) - 1], hh < 24, mm < 60, ss < 61 else { return nil }
        // Days from the civil date (Howard Hinnant's algorithm).
        let yy = m <= 2 ? y - 1 : y
        let era = (yy >= 0 ? yy : yy - 399) / 400
        let yoe = yy - era * 400
        let doy = (153 * (m > 2 ? m - 3 : m + 9) + 2) / 5 + d - 1
        let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy
        let days = era * 146_097 + doe - 719_468
        return days * 86_400 + hh * 3_600 + mm * 60 + ss
    }

    package static func ms(_ date: Date) -> Int64 { Int64((date.timeIntervalSince1970 * 1000).rounded(.down)) }

    /// `2026-11-03T10:00:00.250Z` from Unix milliseconds.
    package static func iso(ms: Int64) -> String {
        let seconds = ms >= 0 ? ms / 1000 : (ms - 999) / 1000
        var text = iso(seconds: seconds)
        text.removeLast()
        return text + "." + padded(ms - seconds * 1000, 3) + "Z"
    }

    /// `2026-11-03T10:00:00Z` from Unix seconds, without a formatter (hot paths: a formatter is
    /// built per call, and billing writes dates for every day of every invoice).
    package static func iso(seconds: Int64) -> String {
        let days = seconds >= 0 ? seconds / 86_400 : (seconds - 86_399) / 86_400
        let clock = seconds - days * 86_400
        // The civil date from days (Howard Hinnant's algorithm).
        let z = days + 719_468
        let era = (z >= 0 ? z : z - 146_096) / 146_097
        let doe = z - era * 146_097
        let yoe = (doe - doe / 1_460 + doe / 36_524 - doe / 146_096) / 365
        let doy = doe - (365 * yoe + yoe / 4 - yoe / 100)
        let mp = (5 * doy + 2) / 153
        let d = doy - (153 * mp + 2) / 5 + 1
        let m = mp < 10 ? mp + 3 : mp - 9
        let y = yoe + era * 400 + (m <= 2 ? 1 : 0)
        return padded(y, 4) + "-" + padded(m, 2) + "-" + padded(d, 2) + "T" + padded(clock / 3_600, 2) + ":" + padded(clock / 60 % 60, 2) + ":"
            + padded(clock % 60, 2) + "Z"
    }

    /// `value` in decimal with leading zeros to `width` digits (`String(format:)` without its cost).
    package static func padded(_ value: Int64, _ width: Int) -> String {
        let digits = String(value)
        return digits.count >= width ? digits : String(repeating: "0", count: width - digits.count) + digits
    }
}
