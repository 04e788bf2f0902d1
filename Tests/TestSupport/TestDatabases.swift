import Foundation
import SQL

/// The two drivers every storage test runs against.
package enum DriverKind: String, CaseIterable, Sendable, CustomStringConvertible {
    case sqlite
    case postgres
    package var description: String { rawValue }
}

/// A dependency a test needs is missing or broken: the test fails with this, never skips.
package struct MissingDependency: Error, CustomStringConvertible {
    package let description: String
    package init(description: String) { self.description = description }
}

/// A fresh, empty database for one test: a new SQLite file, or a new PostgreSQL database in
/// the cluster named by `TENKI_TEST_POSTGRES_URL` (tools/test.sh starts one). A missing
/// PostgreSQL is a failure, never a skip.
package final class TestDatabase: Sendable {
    package let kind: DriverKind
    /// The URL `tenki` takes as `--database-url` (SQLite: a file path URL).
    package let url: String
    package let directory: String
    private let dropName: String?

    package static func make(_ kind: DriverKind) throws -> TestDatabase {
        let directory = try TemporaryDirectory.make(prefix: "tenki-test")
        switch kind {
        case .sqlite:
            return TestDatabase(kind: kind, url: "sqlite:" + directory + "/tenki.db", directory: directory, dropName: nil)
        case .postgres:
            guard let admin = ProcessInfo.processInfo.environment["TENKI_TEST_POSTGRES_URL"], !admin.isEmpty else {
                throw MissingDependency(
                    description: "TENKI_TEST_POSTGRES_URL is not set: run the tests with tools/test.sh, which starts a throwaway PostgreSQL")
            }
            let name = "tenki_t_" + String(UInt64.random(in: 0...UInt64.max), radix: 36)
            try PostgresAdmin.run(admin, "CREATE DATABASE \(name)")
            return TestDatabase(kind: kind, url: PostgresAdmin.replaceDatabase(in: admin, with: name), directory: directory, dropName: name)
        }
    }

    private init(kind: DriverKind, url: String, directory: String, dropName: String?) {
        self.kind = kind
        self.url = url
        self.directory = directory
        self.dropName = dropName
    }

    /// Opens a driver on it.
    package func open(poolSize: Int = 8) throws -> any Database {
        try DatabaseFactory.open(url: url, poolSize: poolSize)
    }

    /// Takes the database away from under `database` (opened on it), as a server that goes
    /// away mid-request would: PostgreSQL drops it, terminating its sessions, so reconnecting
    /// fails too; SQLite's connections are closed.
    package func takeAway(from database: any Database) async throws {
        switch kind {
        case .sqlite:
            await database.close()
        case .postgres:
            guard let admin = ProcessInfo.processInfo.environment["TENKI_TEST_POSTGRES_URL"], let dropName else { return }
            try PostgresAdmin.run(admin, "DROP DATABASE IF EXISTS \(dropName) WITH (FORCE)")
        }
    }

    deinit {
        if let dropName, let admin = ProcessInfo.processInfo.environment["TENKI_TEST_POSTGRES_URL"] {
            try? PostgresAdmin.run(admin, "DROP DATABASE IF EXISTS \(dropName) WITH (FORCE)")
        }
        try? FileManager.default.removeItem(atPath: directory)
    }
}

package enum PostgresAdmin {
    /// Runs one statement outside a transaction (CREATE DATABASE cannot run inside one).
    /// Blocks its thread briefly but waits on no task, so it cannot starve the test's executor.
    package static func run(_ url: String, _ sql: String) throws {
        try PostgresDatabase.runBlocking(url: url, sql)
    }

    package static func replaceDatabase(in url: String, with name: String) -> String {
        var base = url
        var query = ""
        if let q = base.firstIndex(of: "?") {
            query = String(base[q...])
            base = String(base[..<q])
        }
        guard let slash = base.range(of: "/", options: .backwards), base[..<slash.lowerBound].contains("@") || base.hasPrefix("postgres") else {
            return base + "/" + name + query
        }
        return String(base[..<slash.lowerBound]) + "/" + name + query
    }
}

/// Unchecked Sendable: `value` is touched only under `lock`.
package final class LockedBox<T>: @unchecked Sendable {
    private let lock = NSLock()
    private var _value: T
    package init(_ value: T) { _value = value }
    package var value: T {
        get { lock.withLock { _value } }
        set { lock.withLock { _value = newValue } }
    }
}

package enum TemporaryDirectory {
    package static func make(prefix: String) throws -> String {
        let path = NSTemporaryDirectory() + prefix + "-" + UUID().uuidString.prefix(8)
        try FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)
        return path
    }
}

/// Paths of the test fixtures kept in the repository (`Tests/Fixtures`).
package enum Fixtures {
    package static var packageRoot: String {
        URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent().path
    }

    /// `Tests/Fixtures`: third-party payloads and vectors, copied in with their licences.
    package static var directory: String { packageRoot + "/Tests/Fixtures" }

    package static func github() throws -> [(event: String, file: String, body: [UInt8])] {
        let directory = directory + "/github"
        let files = try FileManager.default.contentsOfDirectory(atPath: directory).filter { $0.hasSuffix(".payload.json") }.sorted()
        guard !files.isEmpty else { throw MissingDependency(description: "no fixtures in \(directory)") }
        return try files.map { file in
            let event = String(file.split(separator: ".")[0])
            guard let data = FileManager.default.contents(atPath: directory + "/" + file) else {
                throw MissingDependency(description: "cannot read \(file)")
            }
            return (event, file, Array(data))
        }
    }
}
