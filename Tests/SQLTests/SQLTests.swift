import Foundation
import SQL
import Spawn
import TestSupport
import Testing

@Suite("SQL drivers")
struct SQLTests {
    @Test("typed values round-trip through parameters", arguments: DriverKind.allCases)
    func typedValuesRoundTrip(_ kind: DriverKind) async throws {
        let test = try TestDatabase.make(kind)
        let db = try test.open()
        defer { Task { await db.close() } }
        try await db.transaction {
            try $0.executeScript(
                kind == .sqlite
                    ? "CREATE TABLE t (id BIGINT PRIMARY KEY, d DOUBLE PRECISION, s TEXT, b BLOB, n TEXT)"
                    : "CREATE TABLE t (id BIGINT PRIMARY KEY, d DOUBLE PRECISION, s TEXT, b BYTEA, n TEXT)")
        }
        let blob: [UInt8] = [0, 1, 2, 255, 0, 39, 92]
        let text = "it's \"quoted\" $1 ? ünïcödé"
        try await db.execute(
            "INSERT INTO t (id, d, s, b, n) VALUES ($1, $2, $3, $4, $5)",
            [.integer(Int64.max), .double(2.5), .text(text), .blob(blob), .null])
        let row = try #require(try await db.query("SELECT id, d, s, b, n FROM t WHERE id = $1", [.integer(Int64.max)]).first)
        #expect(try row.int("id") == Int64.max)
        #expect(row["d"] == .double(2.5))
        #expect(try row.string("s") == text)
        #expect(try row.bytes("b") == blob)
        #expect(row["n"] == .null)
        #expect(try await db.query("SELECT COUNT(*) AS n FROM t WHERE s = $1", [.text("nope")])[0].int("n") == 0)
    }

    @Test("a transaction that throws leaves nothing behind", arguments: DriverKind.allCases)
    func rollbackOnThrow(_ kind: DriverKind) async throws {
        let test = try TestDatabase.make(kind)
        let db = try test.open()
        try await db.execute("CREATE TABLE r (id BIGINT PRIMARY KEY)")
        struct Abort: Error {}
        await #expect(throws: Abort.self) {
            try await db.transaction { tx in
                try tx.execute("INSERT INTO r (id) VALUES ($1)", [1])
                throw Abort()
            }
        }
        #expect(try await db.query("SELECT COUNT(*) AS n FROM r")[0].int("n") == 0)
        await db.close()
    }

    @Test("constraint violations are classified", arguments: DriverKind.allCases)
    func constraintViolation(_ kind: DriverKind) async throws {
        let test = try TestDatabase.make(kind)
        let db = try test.open()
        try await db.execute("CREATE TABLE u (id BIGINT PRIMARY KEY)")
        try await db.execute("INSERT INTO u (id) VALUES ($1)", [1])
        let error = await #expect(throws: SQLError.self) { try await db.execute("INSERT INTO u (id) VALUES ($1)", [1]) }
        #expect(error?.code == .constraintViolation)
        // A bad statement is an error with its SQL, and the database keeps working.
        let bad = await #expect(throws: SQLError.self) { try await db.query("SELEC nonsense") }
        #expect(bad?.sql == "SELEC nonsense")
        #expect(try await db.query("SELECT COUNT(*) AS n FROM u")[0].int("n") == 1)
        await db.close()
    }

    @Test("concurrent read-modify-write transactions lose no update", arguments: DriverKind.allCases)
    func noLostUpdates(_ kind: DriverKind) async throws {
        let test = try TestDatabase.make(kind)
        let db = try test.open(poolSize: 8)
        try await db.execute("CREATE TABLE c (id BIGINT PRIMARY KEY, n BIGINT NOT NULL)")
        try await db.execute("INSERT INTO c (id, n) VALUES (1, 0)")
        let lock = kind == .postgres ? " FOR UPDATE" : ""
        try await withThrowingTaskGroup(of: Void.self) { group in
            for _ in 0..<200 {
                group.addTask {
                    try await db.transaction { tx in
                        let n = try tx.query("SELECT n FROM c WHERE id = 1\(lock)")[0].int("n")
                        try tx.execute("UPDATE c SET n = $1 WHERE id = 1", [.integer(n + 1)])
                    }
                }
            }
            try await group.waitForAll()
        }
        #expect(try await db.query("SELECT n FROM c WHERE id = 1")[0].int("n") == 200)
        await db.close()
    }

    @Test("serialization failures are retried whole on PostgreSQL")
    func serializationFailuresAreRetried() async throws {
        let test = try TestDatabase.make(.postgres)
        let db = try test.open(poolSize: 4)
        try await db.execute("CREATE TABLE s (id BIGINT PRIMARY KEY, n BIGINT NOT NULL)")
        try await db.execute("INSERT INTO s (id, n) VALUES (1, 0)")
        // A reads, B then updates and commits, A updates: A must fail with 40001 and run again.
        let aHasRead = DispatchSemaphore(value: 0)
        let bCommitted = DispatchSemaphore(value: 0)
        let attemptsOfA = LockedBox(0)
        async let a: Void = db.transaction(isolation: .serializable) { tx in
            attemptsOfA.value += 1
            let n = try tx.query("SELECT n FROM s WHERE id = 1")[0].int("n")
            if attemptsOfA.value == 1 {
                aHasRead.signal()
                _ = bCommitted.wait(timeout: .now() + 20)
            }
            try tx.execute("UPDATE s SET n = $1 WHERE id = 1", [.integer(n + 1)])
        }
        try await db.transaction { tx in
            _ = aHasRead.wait(timeout: .now() + 20)
            try tx.execute("UPDATE s SET n = n + 1 WHERE id = 1")
        }
        bCommitted.signal()
        try await a
        #expect(attemptsOfA.value == 2)
        #expect(try await db.query("SELECT n FROM s WHERE id = 1")[0].int("n") == 2)
        await db.close()
    }

    @Test("a busy SQLite file written by another connection is waited for, not failed")
    func sqliteBusyIsRetried() async throws {
        let test = try TestDatabase.make(.sqlite)
        let a = try test.open()
        let b = try test.open()
        try await a.execute("CREATE TABLE w (id INTEGER PRIMARY KEY AUTOINCREMENT, who TEXT)")
        try await withThrowingTaskGroup(of: Void.self) { group in
            for i in 0..<100 {
                let db = i % 2 == 0 ? a : b
                group.addTask { try await db.execute("INSERT INTO w (who) VALUES ($1)", [.text("\(i)")]) }
            }
            try await group.waitForAll()
        }
        #expect(try await a.query("SELECT COUNT(*) AS n FROM w")[0].int("n") == 100)
        await a.close()
        await b.close()
    }

    @Test("group commit isolates a failing transaction from the others in its group")
    func groupCommitIsolatesFailures() async throws {
        let test = try TestDatabase.make(.sqlite)
        let db = try test.open()
        try await db.execute("CREATE TABLE g (id BIGINT PRIMARY KEY)")
        let results = try await withThrowingTaskGroup(of: Bool.self) { group in
            for i in 0..<300 {
                group.addTask {
                    do {
                        try await db.transaction { tx in
                            try tx.execute("INSERT INTO g (id) VALUES ($1)", [.integer(Int64(i))])
                            if i % 3 == 0 { try tx.execute("INSERT INTO g (id) VALUES ($1)", [.integer(Int64(i))]) }  // duplicate: fails
                        }
                        return true
                    } catch {
                        return false
                    }
                }
            }
            return try await group.reduce(into: [Bool]()) { $0.append($1) }
        }
        #expect(results.filter { $0 }.count == 200)
        #expect(try await db.query("SELECT COUNT(*) AS n FROM g")[0].int("n") == 200)
        #expect(try await db.query("SELECT COUNT(*) AS n FROM g WHERE id % 3 = 0")[0].int("n") == 0)
        await db.close()
    }

    @Test("a write that makes SQLite roll back the whole group's transaction fails alone; the rest of its group commits")
    func groupCommitSurvivesAWholeTransactionRollback() async throws {
        let test = try TestDatabase.make(.sqlite)
        let db = try test.open()
        try await db.execute("CREATE TABLE g (id BIGINT PRIMARY KEY)")
        try await db.execute("INSERT INTO g (id) VALUES (-1)")
        let results = try await withThrowingTaskGroup(of: (Int, Bool).self) { group in
            for i in 0..<300 {
                group.addTask {
                    do {
                        try await db.transaction { tx in
                            // OR ROLLBACK: SQLite ends the whole transaction, every savepoint with it.
                            if i % 50 == 7 { try tx.execute("INSERT OR ROLLBACK INTO g (id) VALUES (-1)") }
                            try tx.execute("INSERT INTO g (id) VALUES ($1)", [.integer(Int64(i))])
                        }
                        return (i, true)
                    } catch {
                        return (i, false)
                    }
                }
            }
            return try await group.reduce(into: [Int: Bool]()) { $0[$1.0] = $1.1 }
        }
        #expect(results.filter { !$0.value }.keys.sorted() == [7, 57, 107, 157, 207, 257])
        let stored = Set(try await db.query("SELECT id FROM g").map { try $0.int("id") })
        #expect(stored == Set((0..<300).filter { $0 % 50 != 7 }.map(Int64.init) + [-1]))
        await db.close()
    }

    /// Runs `script` (Python, with Python's own SQLite) on the database file in another process;
    /// returns what it printed. A failed assertion there fails here.
    private func pythonCheck(_ script: String, path: String) throws -> String {
        let result = try ChildProcess.run("/usr/bin/env", ["python3", "-c", script, path])
        #expect(result.status == 0, "python3 check failed: \(result.stderrText)")
        let printed = result.stdoutText
        return printed.trimmingCharacters(in: .whitespacesAndNewlines)
    }

    @Test(
        "what the SQLite writer commits is in its files for another process, through a transaction larger than its cache and many checkpoint rounds")
    func sqliteWALBufferingWritesThrough() async throws {
        let test = try TestDatabase.make(.sqlite)
        let path = test.directory + "/tenki.db"
        // Small checkpoint thresholds: the background passes, their write-back and the writer's
        // own short checkpoint all run many times below.
        let db = try SQLiteDatabase(path: path, checkpointWALPages: 300, writerCheckpointWALPages: 1_200)
        try await db.execute("CREATE TABLE w (id BIGINT PRIMARY KEY, data BLOB NOT NULL)")
        // Byte i of row id's data is (id * 31 + i * 7) mod 256: another process can check it.
        func data(_ id: Int, bytes: Int) -> [UInt8] {
            let pattern = (0..<256).map { UInt8(truncatingIfNeeded: id &* 31 &+ $0 &* 7) }
            return Array(repeating: pattern, count: bytes / 256).flatMap { $0 }
        }
        // 40 MiB in one transaction: more than the writer's page cache (32 MiB), so SQLite spills
        // pages to the WAL mid-transaction and reads them back; many times the 1 MiB WAL buffer.
        // Read back inside the transaction: spilled pages come from the WAL, some still buffered.
        let readBack = try await db.transaction { tx -> Int in
            for id in 0..<40 { try tx.execute("INSERT INTO w (id, data) VALUES ($1, $2)", [.integer(Int64(id)), .blob(data(id, bytes: 1 << 20))]) }
            return try (0..<40).filter { id in
                try tx.query("SELECT data FROM w WHERE id = $1", [.integer(Int64(id))])[0].bytes("data") == data(id, bytes: 1 << 20)
            }.count
        }
        #expect(readBack == 40)
        // Then many small commits in groups, and some one at a time.
        try await withThrowingTaskGroup(of: Void.self) { group in
            for id in 40..<3_040 {
                group.addTask {
                    try await db.execute("INSERT INTO w (id, data) VALUES ($1, $2)", [.integer(Int64(id)), .blob(data(id, bytes: 2_048))])
                }
            }
            try await group.waitForAll()
        }
        for id in 3_040..<3_240 {
            try await db.execute("INSERT INTO w (id, data) VALUES ($1, $2)", [.integer(Int64(id)), .blob(data(id, bytes: 2_048))])
        }
        #expect(try await db.query("SELECT COUNT(*) AS n FROM w")[0].int("n") == 3_240)
        #expect(try await db.query("SELECT data FROM w WHERE id = 39")[0].bytes("data") == data(39, bytes: 1 << 20))
        // Python's own SQLite, in another process, reads the files while the writer is still open
        // (committed frames must be in the WAL file, not in a buffer) and again after it closed.
        // The WAL header's checkpoint sequence number counts the times the WAL started over.
        let check = """
            import sqlite3, struct, sys, os
            wal = sys.argv[1] + "-wal"
            restarts = struct.unpack(">I", open(wal, "rb").read(16)[12:16])[0] if os.path.exists(wal) else -1
            db = sqlite3.connect(sys.argv[1])
            assert db.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
            n = 0
            for id, data in db.execute("SELECT id, data FROM w ORDER BY id"):
                pattern = bytes(((id * 31 + i * 7) & 0xff) for i in range(256))
                assert data == pattern * (len(data) // 256), id
                assert len(data) == (1 << 20 if id < 40 else 2048), id
                n += 1
            print(n, restarts)
            """
        let whileOpen = try pythonCheck(check, path: path).split(separator: " ")
        #expect(whileOpen.first == "3240")
        #expect((whileOpen.last.flatMap { Int($0) } ?? 0) >= 2, "the WAL never started over: \(whileOpen)")
        await db.close()
        #expect(try pythonCheck(check, path: path).split(separator: " ").first == "3240")
    }

    @Test("a rolled-back SQLite transaction's buffered WAL writes never reach the file another writer appends to")
    func sqliteRolledBackWALWritesAreDropped() async throws {
        let test = try TestDatabase.make(.sqlite)
        let path = test.directory + "/tenki.db"
        let a = try SQLiteDatabase(path: path)
        let b = try SQLiteDatabase(path: path)  // another writer on the file, as another process would be
        try await a.execute("CREATE TABLE r (id BIGINT PRIMARY KEY, who TEXT NOT NULL, data BLOB NOT NULL)")
        struct Abandon: Error {}
        // A small page cache spills A's pages to the WAL at once; the transaction then rolls back
        // with its last frames still in A's buffer.
        await #expect(throws: Abandon.self) {
            try await a.transaction { tx in
                try tx.execute("PRAGMA cache_size = 50")
                for id in 0..<300 { try tx.execute("INSERT INTO r (id, who, data) VALUES ($1, 'A', zeroblob(3000))", [.integer(Int64(id))]) }
                throw Abandon()
            }
        }
        // B commits over the same WAL offsets; then A writes and reads again.
        try await b.transaction { tx in
            for id in 1_000..<1_600 { try tx.execute("INSERT INTO r (id, who, data) VALUES ($1, 'B', zeroblob(3000))", [.integer(Int64(id))]) }
        }
        try await a.execute("INSERT INTO r (id, who, data) VALUES (5000, 'A2', zeroblob(10))")
        #expect(try await a.query("SELECT COUNT(*) AS n FROM r WHERE who = 'B'")[0].int("n") == 600)
        let check = """
            import sqlite3, sys
            db = sqlite3.connect(sys.argv[1])
            print(db.execute("PRAGMA integrity_check").fetchone()[0], dict(db.execute("SELECT who, COUNT(*) FROM r GROUP BY who").fetchall()))
            """
        #expect(try pythonCheck(check, path: path) == "ok {'A2': 1, 'B': 600}")
        await a.close()
        await b.close()
        #expect(try pythonCheck(check, path: path) == "ok {'A2': 1, 'B': 600}")
    }

    @Test("prepared statements are cached and reused", arguments: DriverKind.allCases)
    func preparedStatementCache(_ kind: DriverKind) async throws {
        let test = try TestDatabase.make(kind)
        let db = try test.open(poolSize: 1)
        try await db.execute("CREATE TABLE p (id BIGINT PRIMARY KEY, v TEXT)")
        try await db.transaction { tx in
            for i in 0..<(3 * 256 + 7) {
                try tx.execute("INSERT INTO p (id, v) VALUES ($1, $2)", [.integer(Int64(i)), .text("v\(i)")])
                // Many distinct statements overflow the cache, which must clear and go on.
                _ = try tx.query("SELECT v FROM p WHERE id = \(i)")
            }
        }
        #expect(try await db.query("SELECT COUNT(*) AS n FROM p")[0].int("n") == 775)
        await db.close()
    }

    @Test("migrations run forward once, in order, and detect edits", arguments: DriverKind.allCases)
    func migrations(_ kind: DriverKind) async throws {
        let test = try TestDatabase.make(kind)
        let db = try test.open()
        let v1 = Migration(1, "create", sql: "CREATE TABLE m (id BIGINT PRIMARY KEY)")
        let v2 = Migration(2, "add column", sql: "ALTER TABLE m ADD COLUMN name TEXT")
        #expect(try await Migrator.migrate(db, plugin: "demo", migrations: [v2, v1]) == [1, 2])
        #expect(try await Migrator.migrate(db, plugin: "demo", migrations: [v1, v2]) == [])
        // Another plugin's versions are its own.
        #expect(try await Migrator.migrate(db, plugin: "other", migrations: [Migration(1, "x", sql: "CREATE TABLE o (id BIGINT)")]) == [1])
        let edited = Migration(1, "create", sql: "CREATE TABLE m (id BIGINT PRIMARY KEY, extra TEXT)")
        let error = await #expect(throws: SQLError.self) { try await Migrator.migrate(db, plugin: "demo", migrations: [edited, v2]) }
        #expect(error?.code == .migration)
        // A failing migration applies nothing.
        let broken = Migration(3, "broken", sql: "ALTER TABLE nope ADD COLUMN x TEXT")
        await #expect(throws: SQLError.self) { try await Migrator.migrate(db, plugin: "demo", migrations: [v1, v2, broken]) }
        #expect(try await db.query("SELECT COUNT(*) AS n FROM schema_migrations WHERE plugin = 'demo'")[0].int("n") == 2)
        await db.close()
    }

    @Test("a dropped PostgreSQL connection is reopened on the next transaction")
    func postgresReconnects() async throws {
        let test = try TestDatabase.make(.postgres)
        let db = try test.open(poolSize: 1)
        try await db.execute("CREATE TABLE k (id BIGINT)")
        let admin = try #require(ProcessInfo.processInfo.environment["TENKI_TEST_POSTGRES_URL"])
        let name = String(test.url.split(separator: "/").last!)
        try PostgresAdmin.run(admin, "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = '\(name)' AND pid <> pg_backend_pid()")
        try await db.execute("INSERT INTO k (id) VALUES (1)")
        #expect(try await db.query("SELECT COUNT(*) AS n FROM k")[0].int("n") == 1)
        await db.close()
    }

    @Test("placeholders are rewritten for SQLite outside quotes only")
    func placeholderRewrite() async throws {
        let test = try TestDatabase.make(.sqlite)
        let db = try test.open()
        let rows = try await db.query("SELECT $1 AS a, '$1' AS b, $2 AS c", [.text("x"), .integer(2)])
        #expect(try rows[0].string("a") == "x")
        #expect(try rows[0].string("b") == "$1")
        #expect(try rows[0].int("c") == 2)
        // Reused and out-of-order placeholders keep their numbers.
        let reused = try await db.query("SELECT $2 AS a, $1 AS b, $2 AS c", [.text("one"), .text("two")])
        #expect(try reused[0].string("a") == "two" && reused[0].string("b") == "one" && reused[0].string("c") == "two")
        // Thousands of sequential parameters in one statement.
        try await db.execute("CREATE TABLE n (v BIGINT)")
        let rows5000 = (1...5_000).map { "($\($0))" }.joined(separator: ", ")
        try await db.execute("INSERT INTO n (v) VALUES \(rows5000)", (1...5_000).map { .integer(Int64($0)) })
        #expect(try await db.query("SELECT SUM(v) AS total FROM n")[0].int("total") == 12_502_500)
        await db.close()
    }
}
