import Foundation
import SQL

/// Keeps every policy set that has served (its files, once per version) and when each began to
/// serve, so replicas and restarts decide past events with the policies of their time, and
/// `tenki policy versions` can list them.
package enum PolicyHistoryStore {
    static let migrations: [Migration] = [
        Migration(
            2, "policy versions",
            sql: """
                CREATE TABLE policy_versions (
                    version TEXT PRIMARY KEY,
                    files TEXT NOT NULL,
                    first_seen_ms BIGINT NOT NULL
                );
                CREATE TABLE policy_activations (
                    id INTEGER PRIMARY KEY AUTOINCREMENT,
                    version TEXT NOT NULL,
                    activated_at_ms BIGINT NOT NULL
                );
                CREATE INDEX policy_activations_time ON policy_activations (activated_at_ms);
                """)
    ]

    struct StoredFile: Codable {
        let path: String
        let source: String
    }

    /// Records that `set` began serving at its `loadedAt` (unless it already is the latest).
    package static func record(_ set: PolicySet, in database: any Database) async throws {
        let files = String(decoding: try JSONEncoder().encode(set.files.map { StoredFile(path: $0.path, source: $0.source) }), as: UTF8.self)
        let at = Timestamp.ms(set.loadedAt)
        try await database.transaction { db in
            try db.execute(
                "INSERT INTO policy_versions (version, files, first_seen_ms) VALUES ($1, $2, $3) ON CONFLICT (version) DO NOTHING",
                [.text(set.version), .text(files), .integer(at)])
            let latest = try db.queryOne("SELECT version FROM policy_activations ORDER BY activated_at_ms DESC, id DESC LIMIT 1")
            if try latest?.string("version") != set.version {
                try db.execute("INSERT INTO policy_activations (version, activated_at_ms) VALUES ($1, $2)", [.text(set.version), .integer(at)])
            }
        }
    }

    package struct Activation: Sendable, Codable {
        package let version: String
        package let activatedAt: String
        package let files: [String]
        enum CodingKeys: String, CodingKey { case version, activatedAt = "activated_at", files }
    }

    /// The latest activations, oldest first, with their files.
    package static func load(
        from database: any Database, limit: Int = PolicyEngine.maxHistory
    ) async throws -> [(files: [PolicyFile], activatedAt: Date, version: String)] {
        try await database.read { db in
            let rows = try db.query(
                """
                SELECT a.version, a.activated_at_ms, v.files FROM policy_activations a JOIN policy_versions v ON v.version = a.version
                ORDER BY a.activated_at_ms DESC, a.id DESC LIMIT $1
                """, [.integer(Int64(limit))])
            return try rows.reversed().map { row in
                let stored = try JSONDecoder().decode([StoredFile].self, from: Data(try row.string("files").utf8))
                return (
                    stored.map { PolicyFile(path: $0.path, source: $0.source) },
                    Date(timeIntervalSince1970: Double(try row.int("activated_at_ms")) / 1000), try row.string("version")
                )
            }
        }
    }
}
