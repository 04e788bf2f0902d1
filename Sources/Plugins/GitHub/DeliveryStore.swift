import Foundation
import Host
import SQL

/// A stored GitHub webhook delivery.
package struct StoredDelivery: Sendable, Codable {
    package let deliveryID: String
    package let event: String
    package let action: String?
    package let hookID: String?
    package let installationID: Int64?
    package let repository: String?
    package let receivedAt: String
    package let bodyBytes: Int
    package let bodySHA256: String
    /// The inbox event of the latest dispatch (a redelivery makes a new one).
    package var eventID: Int64?
    package let redeliveries: Int
    /// How many times the delivery log subscriber has handled it (1 per dispatch).
    package let handledCount: Int
    /// Filled by the caller from the event bus: received, dispatched, retrying, dead.
    package var status: String

    enum CodingKeys: String, CodingKey {
        case deliveryID = "delivery_id", event, action, hookID = "hook_id", installationID = "installation_id", repository
        case receivedAt = "received_at", bodyBytes = "body_bytes", bodySHA256 = "body_sha256", eventID = "event_id"
        case redeliveries, handledCount = "handled_count", status
    }

    /// `event.action`, or `event` for events without an action: the bus topic.
    package var topic: String { action.map { "\(event).\($0)" } ?? event }
}

/// The GitHub plugin's table of deliveries. Bodies are kept once, here; inbox events point at
/// them by delivery id.
enum DeliveryStore {
    static let migrations: [Migration] = [
        Migration(
            1, "github deliveries",
            sql: """
                CREATE TABLE github_deliveries (
                    delivery_id TEXT PRIMARY KEY,
                    event TEXT NOT NULL,
                    action TEXT,
                    hook_id TEXT,
                    installation_id BIGINT,
                    repository TEXT,
                    headers TEXT NOT NULL,
                    body BLOB NOT NULL,
                    body_sha256 TEXT NOT NULL,
                    received_at_ms BIGINT NOT NULL,
                    redeliveries INTEGER NOT NULL DEFAULT 0,
                    handled_count INTEGER NOT NULL DEFAULT 0,
                    handled_at_ms BIGINT
                );
                CREATE INDEX github_deliveries_received ON github_deliveries (received_at_ms);
                """)
    ]

    struct Incoming {
        let deliveryID: String
        let event: String
        let action: String?
        let hookID: String?
        let installationID: Int64?
        let repository: String?
        let headersJSON: String
        let body: [UInt8]
        let bodySHA256: String
        let receivedAtMs: Int64

        var topic: String { action.map { "\(event).\($0)" } ?? event }
    }

    /// Stores a new delivery and its inbox event in one transaction. Returns false (and
    /// changes nothing) when the delivery id is already stored.
    static func insert(_ db: any SQLConnection, _ delivery: Incoming) throws -> Bool {
        let inserted = try db.execute(
            """
            INSERT INTO github_deliveries (delivery_id, event, action, hook_id, installation_id, repository, headers, body,
                                           body_sha256, received_at_ms)
            VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10) ON CONFLICT (delivery_id) DO NOTHING
            """,
            [
                .text(delivery.deliveryID), .text(delivery.event), SQLValue(delivery.action), SQLValue(delivery.hookID),
                delivery.installationID.map { .integer($0) } ?? .null, SQLValue(delivery.repository),
                .text(delivery.headersJSON), .blob(delivery.body), .text(delivery.bodySHA256), .integer(delivery.receivedAtMs),
            ])
        guard inserted == 1 else { return false }
        try EventInbox.publish(
            in: db, topic: delivery.topic, source: GitHubPlugin.eventSource,
            sourceID: delivery.deliveryID, payload: nil,
            now: Date(timeIntervalSince1970: Double(delivery.receivedAtMs) / 1000))
        return true
    }

    static func body(_ db: any SQLConnection, deliveryID: String) throws -> [UInt8]? {
        try db.queryOne("SELECT body FROM github_deliveries WHERE delivery_id = $1", [.text(deliveryID)]).map { try $0.bytes("body") }
    }

    static func headers(_ db: any SQLConnection, deliveryID: String) throws -> [String: String]? {
        guard let row = try db.queryOne("SELECT headers FROM github_deliveries WHERE delivery_id = $1", [.text(deliveryID)]) else {
            return nil
        }
        let data = Data(try row.string("headers").utf8)
        return (try? JSONSerialization.jsonObject(with: data)) as? [String: String]
    }

    static func recordHandled(_ db: any SQLConnection, deliveryID: String, nowMs: Int64) throws {
        try db.execute(
            """
            UPDATE github_deliveries SET handled_count = handled_count + 1, handled_at_ms = $2 WHERE delivery_id = $1
            """, [.text(deliveryID), .integer(nowMs)])
    }

    private static let columns = """
        delivery_id, event, action, hook_id, installation_id, repository, received_at_ms, body_sha256,
        redeliveries, handled_count, LENGTH(body) AS body_bytes
        """

    static func list(_ db: any SQLConnection, event: String?, limit: Int) throws -> [StoredDelivery] {
        let rows: [SQLRow]
        if let event {
            rows = try db.query(
                "SELECT \(columns) FROM github_deliveries WHERE event = $1 ORDER BY received_at_ms DESC, delivery_id LIMIT $2",
                [.text(event), .integer(Int64(limit))])
        } else {
            rows = try db.query(
                "SELECT \(columns) FROM github_deliveries ORDER BY received_at_ms DESC, delivery_id LIMIT $1",
                [.integer(Int64(limit))])
        }
        return try rows.map(decode)
    }

    static func find(_ db: any SQLConnection, deliveryID: String) throws -> StoredDelivery? {
        try db.queryOne("SELECT \(columns) FROM github_deliveries WHERE delivery_id = $1", [.text(deliveryID)]).map(decode)
    }

    static func count(_ db: any SQLConnection) throws -> Int {
        Int(try db.queryOne("SELECT COUNT(*) AS n FROM github_deliveries")?.int("n") ?? 0)
    }

    /// Publishes the stored delivery again as a new inbox event.
    static func redeliver(_ db: any SQLConnection, deliveryID: String, now: Date) throws -> Int64? {
        guard let delivery = try find(db, deliveryID: deliveryID) else { return nil }
        let eventID = try EventInbox.publish(
            in: db, topic: delivery.topic, source: GitHubPlugin.eventSource,
            sourceID: deliveryID, payload: nil, now: now)
        try db.execute("UPDATE github_deliveries SET redeliveries = redeliveries + 1 WHERE delivery_id = $1", [.text(deliveryID)])
        return eventID
    }

    private static func decode(_ row: SQLRow) throws -> StoredDelivery {
        StoredDelivery(
            deliveryID: try row.string("delivery_id"), event: try row.string("event"), action: try row.optionalString("action"),
            hookID: try row.optionalString("hook_id"), installationID: try row.optionalInt("installation_id"),
            repository: try row.optionalString("repository"), receivedAt: Timestamp.iso(ms: try row.int("received_at_ms")),
            bodyBytes: Int(try row.int("body_bytes")), bodySHA256: try row.string("body_sha256"),
            eventID: nil, redeliveries: Int(try row.int("redeliveries")),
            handledCount: Int(try row.int("handled_count")), status: "unknown")
    }
}
