import BlockingPool
import CSQLiteShim
import Foundation

/// SQLite in WAL mode: one writer connection and a few readers.
///
/// Writes use group commit: transactions that arrive while the writer is busy are run one after
/// another inside one physical transaction, each in its own savepoint (a failing one is rolled
/// back alone), and are all acknowledged after the single durable COMMIT. Each caller still sees
/// its own transaction commit or fail as a whole, and none returns before its data is on disk.
/// Unchecked Sendable: `pending` and `draining` are touched only under `lock`; the writer connection only on
/// the writer thread, a reader connection only by the one caller that checked it out.
package final class SQLiteDatabase: Database, @unchecked Sendable {
    package let dialect = SQLDialect.sqlite
    package let path: String
    package var displayName: String { "sqlite:\(path)" }

    private let writer: SQLiteConnection
    private let writerThread = BlockingThreadPool(name: "tenki-sqlite-writer", maxThreads: 1)
    private let lock = NSLock()
    private var pending: [PendingWrite] = []
    private var draining = false

    private let checkpointer: SQLiteConnection
    private let checkpointThread = BlockingThreadPool(name: "tenki-sqlite-checkpoint", maxThreads: 1)
    private var checkpointScheduled = false
    /// The WAL's round (see `walRound`) in which a background checkpoint last finished, until
    /// the writer copies what it left.
    private var checkpointCopiedBulkInRound: Int?
    /// The database file, for the background checkpoint to write back what it copied (see
    /// `walGrew`), or -1. Never closed: see `writeBackFile(path:)`.
    private let databaseFile: Int32
    /// How many times the WAL started over, and its pages after the last commit (writer thread only).
    private var walRound = 0
    private var walPagesBefore = 0
    /// The writer copies the WAL's last frames once the current group is answered (writer thread only).
    private var writerCheckpointDue = false

    private let readers: [SQLiteConnection]
    /// One thread per reader connection: a job always finds a free connection.
    private let readerPool: BlockingThreadPool
    private var freeReaders: [Int]

    /// WAL pages that start a background checkpoint, and that make the writer checkpoint itself.
    private let checkpointWALPages: Int
    private let writerCheckpointWALPages: Int

    /// Opens (creating if needed) the database file and its parent directory. The checkpoint
    /// thresholds are `SQLLimits`' unless a test wants many rounds from little data.
    package init(
        path: String, readers readerCount: Int = 4, checkpointWALPages: Int = SQLLimits.sqliteCheckpointWALPages,
        writerCheckpointWALPages: Int = SQLLimits.sqliteWriterCheckpointWALPages
    ) throws {
        self.path = path
        self.checkpointWALPages = checkpointWALPages
        self.writerCheckpointWALPages = writerCheckpointWALPages
        let directory = (path as NSString).deletingLastPathComponent
        if !directory.isEmpty {
            try? FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        }
        writer = try SQLiteConnection(path: path, readOnly: false)
        checkpointer = try SQLiteConnection(path: path, readOnly: false)
        databaseFile = SQLiteDatabase.writeBackFile(path: path)
        readers = try (0..<readerCount).map { _ in try SQLiteConnection(path: path, readOnly: true) }
        readerPool = BlockingThreadPool(name: "tenki-sqlite-reader", maxThreads: readerCount)
        freeReaders = Array(0..<readerCount)
        // Checkpoints run on their own connection and thread, so a commit never waits for one.
        writer.onWALCommit(context: Unmanaged.passUnretained(self).toOpaque()) { context, _, _, pages in
            let database = Unmanaged<SQLiteDatabase>.fromOpaque(context!).takeUnretainedValue()
            database.walGrew(pages: Int(pages))
            return 0  // SQLITE_OK
        }
    }

    private static let writeBackFilesLock = NSLock()
    /// Unchecked Sendable: read and written only under `writeBackFilesLock` (a `Mutex` needs macOS 15).
    nonisolated(unsafe) private static var writeBackFiles: [String: Int32] = [:]

    /// A descriptor of the database file at `path`, opened once per process and kept open:
    /// closing any descriptor of a file drops every POSIX lock the process holds on it, SQLite's
    /// own connections' included (other processes could then take locks SQLite believes it holds).
    private static func writeBackFile(path: String) -> Int32 {
        writeBackFilesLock.withLock {
            if let fd = writeBackFiles[path] { return fd }
            let fd = open(path, O_RDONLY | O_CLOEXEC)
            if fd >= 0 { writeBackFiles[path] = fd }
            return fd
        }
    }

    /// Called on the writer thread after each commit.
    ///
    /// The background checkpoint never finishes the WAL by itself while commits keep coming
    /// (each adds frames it has not copied), and SQLite only starts the WAL over once every frame
    /// is copied: left alone, the WAL grows without end and every commit appends to a longer
    /// file. So once the background checkpoint has copied the bulk, the writer copies the few
    /// frames committed since, between two transactions, and the next one starts the WAL over.
    /// SQLite flushes the database file only in that last checkpoint, the one that copied every
    /// frame: the background one writes its pages back itself, so the writer's flush carries
    /// only the few pages it copied. It runs after the commit's callers are answered (this hook
    /// runs inside COMMIT), so only the transactions queued behind it wait for it.
    private func walGrew(pages: Int) {
        if pages < walPagesBefore { walRound += 1 }  // the WAL started over
        walPagesBefore = pages
        guard pages >= checkpointWALPages else { return }
        enum Step { case none, background, writer }
        let round = walRound
        let step: Step = lock.withLock {
            // A checkpoint of an earlier round, which the WAL started over after, left nothing.
            if checkpointCopiedBulkInRound == round || pages >= writerCheckpointWALPages {
                // The background checkpointer copied the bulk (only the tail is left), or it is
                // not keeping up at all: the writer copies what is left.
                checkpointCopiedBulkInRound = nil
                return .writer
            }
            if checkpointScheduled { return .none }
            checkpointScheduled = true
            return .background
        }
        switch step {
        case .none: return
        case .writer: writerCheckpointDue = true
        case .background:
            checkpointThread.submit {
                // Copies the bulk, then what was committed meanwhile, until a pass copies less
                // than about a commit's worth. Each pass's pages go to the device at once, a piece
                // at a time: the writer's own checkpoint (above) then flushes only its few pages,
                // and no commit's WAL sync queues behind a whole checkpoint's worth of writes.
                var copiedBefore = 0
                for _ in 0..<SQLLimits.sqliteCheckpointPasses {
                    let copied = self.checkpointer.passiveCheckpoint()
                    if self.databaseFile >= 0 { tenki_write_back(self.databaseFile, SQLLimits.sqliteWriteBackPieceBytes) }
                    if copied - copiedBefore < SQLLimits.sqliteCheckpointTailFrames { break }
                    copiedBefore = copied
                }
                self.lock.withLock {
                    self.checkpointScheduled = false
                    self.checkpointCopiedBulkInRound = round
                }
            }
        }
    }

    private final class PendingWrite {
        let run: (any SQLConnection) throws -> Any
        let complete: (Result<Any, any Error>) -> Void
        var attempts = 0
        init(run: @escaping (any SQLConnection) throws -> Any, complete: @escaping (Result<Any, any Error>) -> Void) {
            self.run = run
            self.complete = complete
        }
    }

    package func transaction<T>(isolation: SQLIsolation, _ body: @escaping (any SQLConnection) throws -> T) async throws -> T {
        let handed: Handover<Any> = try await withCheckedThrowingContinuation { continuation in
            let write = PendingWrite(run: { try body($0) }, complete: { continuation.resume(returning: Handover(result: $0)) })
            lock.lock()
            pending.append(write)
            let start = !draining
            draining = true
            lock.unlock()
            if start { writerThread.submit { self.drain() } }
        }
        return try handed.result.get() as! T
    }

    /// Runs on the writer thread until no writes are pending.
    private func drain() {
        while true {
            lock.lock()
            if pending.isEmpty {
                draining = false
                lock.unlock()
                return
            }
            let take = min(pending.count, SQLLimits.maxGroupCommitTransactions)
            let group = Array(pending.prefix(take))
            pending.removeFirst(take)
            lock.unlock()
            commitGroup(group)
            if writerCheckpointDue {
                writerCheckpointDue = false
                writer.passiveCheckpoint()
            }
        }
    }

    /// BEGIN, SAVEPOINT, RELEASE and COMMIT go through `execute`: prepared once, not parsed
    /// for every transaction.
    private func commitGroup(_ group: [PendingWrite]) {
        var group = group
        var attempt = 0
        while true {
            attempt += 1
            var results: [Result<Any, any Error>] = []
            do {
                try writer.execute("BEGIN IMMEDIATE")
            } catch let error as SQLError where error.isRetryable && attempt < SQLLimits.maxTransactionAttempts {
                Thread.sleep(forTimeInterval: Double(retryDelay(attempt: attempt)) / 1e9)
                continue
            } catch {
                group.forEach { $0.complete(.failure(error)) }
                return
            }
            var retryLater: [PendingWrite] = []
            if group.count == 1 {
                // Alone in its group, a write needs no savepoint (whose journal copies every page
                // it changes): if it fails, the whole transaction is rolled back.
                do {
                    results.append(.success(try group[0].run(writer)))
                } catch {
                    results.append(.failure(error))
                }
            } else {
                var lost: Int?  // the write whose failure took the whole transaction with it
                for (index, write) in group.enumerated() {
                    do {
                        try writer.execute("SAVEPOINT tenki_group")
                        let value = try write.run(writer)
                        try writer.execute("RELEASE tenki_group")
                        results.append(.success(value))
                    } catch {
                        results.append(.failure(error))
                        // The failed write is undone alone, unless SQLite already rolled back the
                        // whole transaction (an I/O error, a full disk, OR ROLLBACK) or the
                        // savepoint cannot be rolled back: then the writes before it are gone too.
                        let undone = (try? writer.executeScript("ROLLBACK TO tenki_group; RELEASE tenki_group")) != nil
                        if !undone || writer.isAutocommit {
                            lost = index
                            break
                        }
                    }
                }
                if let lost {
                    try? writer.executeScript("ROLLBACK")
                    group[lost].complete(results[lost])
                    group.remove(at: lost)  // the others run again, in a new transaction
                    if group.isEmpty { return }
                    attempt = 0
                    continue
                }
            }
            do {
                if group.count == 1, case .failure = results[0] {
                    try? writer.execute("ROLLBACK")  // SQLite may have rolled back already
                } else {
                    try writer.execute("COMMIT")
                }
            } catch {
                try? writer.executeScript("ROLLBACK")
                if let sqlError = error as? SQLError, sqlError.isRetryable, attempt < SQLLimits.maxTransactionAttempts {
                    continue
                }
                group.forEach { $0.complete(.failure(error)) }
                return
            }
            for (write, result) in zip(group, results) {
                // A body that hit a busy lock (another process) is run again in the next group.
                if case .failure(let error as SQLError) = result, error.isRetryable,
                    write.attempts < SQLLimits.maxTransactionAttempts
                {
                    write.attempts += 1
                    retryLater.append(write)
                } else {
                    write.complete(result)
                }
            }
            if retryLater.isEmpty { return }
            group = retryLater
            attempt = 0
        }
    }

    package func read<T>(_ body: @escaping (any SQLConnection) throws -> T) async throws -> T {
        try await readerPool.run {
            let index = self.lock.withLock { self.freeReaders.removeLast() }
            defer { self.lock.withLock { self.freeReaders.append(index) } }
            let reader = self.readers[index]
            try reader.executeScript("BEGIN")
            defer { try? reader.executeScript("COMMIT") }
            return try body(reader)
        }
    }

    /// Copies the whole WAL into the database file and starts it over (a TRUNCATE checkpoint, on
    /// the writer's thread between two transactions), so what comes next does not pay for the
    /// write-back of what came before. For tools: the billing bench calls it after its seed.
    package func checkpointAll() async throws {
        try await writerThread.run { _ = try self.writer.query("PRAGMA wal_checkpoint(TRUNCATE)", []) }
    }

    package func close() async {
        _ = try? await writerThread.run { self.writer.close() }
        _ = try? await checkpointThread.run { self.checkpointer.close() }
        _ = try? await readerPool.run { self.lock.withLock { self.readers.forEach { $0.close() } } }
    }
}
