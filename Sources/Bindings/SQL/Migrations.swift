import Foundation

/// One forward-only schema change of a plugin. `sql` is written once for both drivers: on
/// PostgreSQL, `INTEGER PRIMARY KEY AUTOINCREMENT` becomes `BIGSERIAL PRIMARY KEY` and `BLOB`
/// becomes `BYTEA`. `postgres` (when given) replaces it whole where the dialects differ more.
package struct Migration: Sendable {
    package let version: Int
    package let name: String
    package let sqlite: String
    package let postgres: String

    package init(_ version: Int, _ name: String, sql: String, postgres: String? = nil) {
        self.version = version
        self.name = name
        self.sqlite = sql
        self.postgres = postgres ?? Migration.translateToPostgres(sql)
    }

    static func translateToPostgres(_ sql: String) -> String {
        sql.replacingOccurrences(of: "INTEGER PRIMARY KEY AUTOINCREMENT", with: "BIGSERIAL PRIMARY KEY")
            .replacingOccurrences(of: #"\bBLOB\b"#, with: "BYTEA", options: .regularExpression)
    }

    func sql(for dialect: SQLDialect) -> String { dialect == .sqlite ? sqlite : postgres }

    /// FNV-1a of the SQL: an edited, already-applied migration is detected, not re-run.
    func checksum(for dialect: SQLDialect) -> String {
        var hash: UInt64 = 0xcbf2_9ce4_8422_2325
        for byte in sql(for: dialect).utf8 {
            hash ^= UInt64(byte)
            hash = hash &* 0x100_0000_01b3
        }
        return String(hash, radix: 16)
    }
}

/// Applies each plugin's migrations in order and records them in `schema_migrations`.
package enum Migrator {
    /// Returns the versions applied now (empty when the schema was current).
    @discardableResult
    package static func migrate(_ database: any Database, plugin: String, migrations: [Migration]) async throws -> [Int] {
        let sorted = migrations.sorted { $0.version < $1.version }
        precondition(Set(sorted.map(\.version)).count == sorted.count, "duplicate migration versions in \(plugin)")
        let dialect = database.dialect
        return try await database.transaction { db in
            try db.executeScript(
                """
                CREATE TABLE IF NOT EXISTS schema_migrations (
                    plugin TEXT NOT NULL,
                    version BIGINT NOT NULL,
                    name TEXT NOT NULL,
                    checksum TEXT NOT NULL,
                    applied_at TEXT NOT NULL,
                    PRIMARY KEY (plugin, version)
                )
                """)
            if dialect == .postgres {
                // Replicas starting together migrate one at a time.
                try db.execute("SELECT pg_advisory_xact_lock(7300115)")
            }
            let rows = try db.query("SELECT version, checksum FROM schema_migrations WHERE plugin = $1", [.text(plugin)])
            var applied: [Int: String] = [:]
            for row in rows { applied[Int(try row.int("version"))] = try row.string("checksum") }
            var done: [Int] = []
            for migration in sorted {
                let checksum = migration.checksum(for: dialect)
                if let recorded = applied[migration.version] {
                    guard recorded == checksum else {
                        throw SQLError(.migration, "\(plugin) migration \(migration.version) (\(migration.name)) was changed after it was applied")
                    }
                    continue
                }
                try db.executeScript(migration.sql(for: dialect))
                try db.execute(
                    "INSERT INTO schema_migrations (plugin, version, name, checksum, applied_at) VALUES ($1, $2, $3, $4, $5)",
                    [
                        .text(plugin), .integer(Int64(migration.version)), .text(migration.name), .text(checksum),
                        .text(ISO8601DateFormatter().string(from: Date())),
                    ])
                done.append(migration.version)
            }
            return done
        }
    }
}
