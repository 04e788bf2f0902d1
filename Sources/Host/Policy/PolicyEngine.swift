import Foundation
import Logging
import Lua

/// What `tenki policy status` and `GET /policies/status` show.
package struct PolicyStatus: Sendable, Codable {
    package var version: String?
    package var loadedAt: String?
    package var files: [String]
    package var lastCheckAt: String?
    package var lastRejection: Rejection?
    package var reloads: Int

    /// A change that was not taken: its version hash, when, and every `file:line: reason`.
    package struct Rejection: Sendable, Codable {
        package let version: String
        package let at: String
        package let errors: [String]

        package init(version: String, at: String, errors: [String]) {
            self.version = version
            self.at = at
            self.errors = errors
        }
    }

    enum CodingKeys: String, CodingKey {
        case version, loadedAt = "loaded_at", files, lastCheckAt = "last_check_at", lastRejection = "last_rejection", reloads
    }
}

/// Loads, validates and serves Lua policies. A new set of files is compiled in a fresh state and
/// checked (syntax, required exports, each policy's own `examples`) before it replaces the
/// current set in one swap; a bad set is rejected with file:line and the current set keeps
/// serving. Each thread evaluates in its own Lua state for the set it started with.
/// Unchecked Sendable: `history` and the reload state are touched only under `lock`; Lua states are per
/// thread (`ThreadLocal`), never shared.
package final class PolicyEngine: @unchecked Sendable {
    package let source: any PolicySource
    let logger: Logger
    private let lock = NSLock()
    /// Every set that has served, oldest first; the last is current. Decisions about past
    /// events use the set that was in force then.
    private var history: [PolicySet] = []
    private var current: PolicySet? { history.last }
    /// How many past sets are kept in memory.
    package static let maxHistory = 100
    private var statusValue = PolicyStatus(files: [], reloads: 0)
    private var lastSeenVersion: String?
    /// This engine's worker on each thread.
    private let workers = ThreadLocal<WorkerCache>()

    package init(source: any PolicySource, logger: Logger) {
        self.source = source
        self.logger = logger
    }

    package var status: PolicyStatus { lock.withLock { statusValue } }
    package var currentVersion: String? { lock.withLock { current?.version } }

    package enum ReloadOutcome: Sendable, Equatable {
        case unchanged(version: String)
        case loaded(version: String)
        case rejected(version: String, errors: [String])
    }

    /// Reads the source; if its content changed, validates and swaps it in.
    @discardableResult
    package func reload(now: Date = Date()) -> ReloadOutcome {
        let files: [PolicyFile]
        do {
            files = try source.read()
        } catch {
            let message = "\(error)"
            lock.withLock {
                statusValue.lastCheckAt = Timestamp.iso(ms: Timestamp.ms(now))
                statusValue.lastRejection = .init(version: "-", at: Timestamp.iso(ms: Timestamp.ms(now)), errors: [message])
            }
            return .rejected(version: "-", errors: [message])
        }
        let candidate = PolicySet(files: files, loadedAt: now)
        let seen: Bool = lock.withLock {
            statusValue.lastCheckAt = Timestamp.iso(ms: Timestamp.ms(now))
            return lastSeenVersion == candidate.version
        }
        if seen { return .unchanged(version: candidate.version) }
        let (errors, schedule) = PolicyEngine.validateAndSchedule(candidate)
        let accepted = PolicySet(files: files, loadedAt: now, schedule: schedule)
        lock.withLock {
            lastSeenVersion = candidate.version
            if errors.isEmpty {
                history.append(accepted)
                if history.count > PolicyEngine.maxHistory { history.removeFirst(history.count - PolicyEngine.maxHistory) }
                statusValue.version = candidate.version
                statusValue.loadedAt = Timestamp.iso(ms: Timestamp.ms(now))
                statusValue.files = candidate.files.map(\.path)
                statusValue.reloads += 1
            } else {
                statusValue.lastRejection = .init(version: candidate.version, at: Timestamp.iso(ms: Timestamp.ms(now)), errors: errors)
            }
        }
        if errors.isEmpty {
            logger.info("policies loaded", metadata: ["version": .string(candidate.version), "files": .stringConvertible(files.count)])
            return .loaded(version: candidate.version)
        }
        logger.error(
            "policy change rejected; the previous version keeps serving",
            metadata: ["version": .string(candidate.version), "errors": .string(errors.joined(separator: " | "))])
        return .rejected(version: candidate.version, errors: errors)
    }

    /// Every problem with a set of files, as `file:line: reason` (empty when it may serve).
    package static func validate(_ set: PolicySet) -> [String] {
        validateAndSchedule(set).errors
    }

    static func validateAndSchedule(_ set: PolicySet) -> (errors: [String], schedule: [String: [PolicySet.ScheduledFile]]) {
        let worker: PolicyWorker
        do {
            worker = try PolicyWorker(set: set)
        } catch let error as LuaError {
            return ([PolicyError(error, defaultFile: "?").description], [:])
        } catch {
            return (["\(error)"], [:])
        }
        var errors: [String] = []
        let (schedule, scheduleErrors) = PolicySchedule.read(worker: worker, set: set)
        errors += scheduleErrors
        for (path, required) in PolicyContracts.requiredExports where set.policyPaths.contains(path) {
            // The policy and every file scheduled to replace it must offer the same functions.
            for file in Set([path] + (schedule[path]?.map(\.path) ?? [])).sorted() {
                for name in required where (try? worker.exports(file, name)) != true {
                    errors.append(PolicyError(file: file, line: nil, message: "must export a function '\(name)'").description)
                }
            }
        }
        errors += ContractRules.validate(worker: worker, set: set)
        for path in set.policyPaths {
            errors += PolicyExamples.run(worker: worker, path: path)
        }
        return (errors, schedule)
    }

    /// Puts back sets that served before (from the database), oldest first, so events from
    /// their time are decided as they were then.
    package func restore(_ entries: [(files: [PolicyFile], activatedAt: Date)]) {
        var restored: [PolicySet] = []
        for entry in entries.suffix(PolicyEngine.maxHistory) {
            let probe = PolicySet(files: entry.files, loadedAt: entry.activatedAt)
            let (errors, schedule) = PolicyEngine.validateAndSchedule(probe)
            if errors.isEmpty { restored.append(PolicySet(files: entry.files, loadedAt: entry.activatedAt, schedule: schedule)) }
        }
        lock.withLock {
            history = (restored + history).sorted { $0.loadedAt < $1.loadedAt }.suffix(PolicyEngine.maxHistory).map { $0 }
        }
    }

    /// The set that serves now.
    package var currentSet: PolicySet? { lock.withLock { current } }

    /// The set in force at `time` (Unix seconds): the newest activated at or before it, else the
    /// oldest known.
    func set(at time: Int64?) -> PolicySet? {
        lock.withLock {
            guard let time, let current, history.count > 1 else { return current }
            if Int64(current.loadedAt.timeIntervalSince1970) <= time { return current }
            return history.last { Int64($0.loadedAt.timeIntervalSince1970) <= time } ?? history.first
        }
    }

    /// Validates files without loading them (for `tenki policy check`).
    package static func check(_ files: [PolicyFile]) -> [String] {
        validate(PolicySet(files: files, loadedAt: Date()))
    }

    /// Calls `function` of policy `path` with `input` on this thread's worker for the current
    /// set. Throws `PolicyError` (with file:line) when the policy fails.
    /// `at` is the event's own time (Unix seconds): the set in force then, and the file
    /// scheduled for then, decide. nil means now.
    package func evaluate(_ path: String, _ function: String, input: LuaValue, at time: Int64? = nil) throws -> (output: LuaValue, version: String) {
        try evaluate(path, at: time) { worker, file in try worker.call(file, function, input) }
    }

    /// The fast path: argument written onto the stack, result read in place.
    package func evaluate<T>(
        _ path: String, _ function: String, at time: Int64? = nil, writing: (LuaWriter) throws -> Void,
        reading: (LuaReader, String) throws -> T
    ) throws -> T {
        try evaluate(path, at: time) { worker, file -> T in
            let version = worker.set.version
            return try worker.call(file, function, writing: writing, reading: { try reading($0, version) })
        }.output
    }

    private func evaluate<T>(_ path: String, at time: Int64?, _ body: (PolicyWorker, String) throws -> T) throws -> (output: T, version: String) {
        guard let set = set(at: time) else {
            throw PolicyError(file: path, line: nil, message: "no policy set is loaded (policy root: \(source.description))")
        }
        let file = set.resolve(path, at: time)
        let worker = try worker(for: set)
        do {
            return (try body(worker, file), set.version)
        } catch let error as LuaError {
            if worker.poisoned { workers.value?.workers.removeAll { $0 === worker } }
            throw PolicyError(error, defaultFile: file)
        }
    }

    /// Per thread, the workers of the sets it evaluated lately (usually just the current one).
    final class WorkerCache {
        var workers: [PolicyWorker] = []
    }

    private func worker(for set: PolicySet) throws -> PolicyWorker {
        let cache =
            workers.value
            ?? {
                let c = WorkerCache()
                workers.value = c
                return c
            }()
        if let worker = cache.workers.first(where: { $0.set === set }) { return worker }
        let worker: PolicyWorker
        do {
            worker = try PolicyWorker(set: set)
        } catch let error as LuaError {
            throw PolicyError(error, defaultFile: "?")
        }
        cache.workers.insert(worker, at: 0)
        if cache.workers.count > 3 { cache.workers.removeLast() }
        return worker
    }
}

/// A value per thread (pthread-specific storage), released when the thread ends.
/// Unchecked Sendable: `key` is set once in init; each thread reads and writes only its own slot.
final class ThreadLocal<Value: AnyObject>: @unchecked Sendable {
    private var key = pthread_key_t()

    init() {
        pthread_key_create(&key) { pointer in
            if let pointer { Unmanaged<AnyObject>.fromOpaque(pointer).release() }
        }
    }

    var value: Value? {
        get {
            guard let pointer = pthread_getspecific(key) else { return nil }
            return Unmanaged<AnyObject>.fromOpaque(pointer).takeUnretainedValue() as? Value
        }
        set {
            if let old = pthread_getspecific(key) { Unmanaged<AnyObject>.fromOpaque(old).release() }
            pthread_setspecific(key, newValue.map { Unmanaged.passRetained($0 as AnyObject).toOpaque() })
        }
    }

    deinit { pthread_key_delete(key) }
}

/// The functions each shipped policy must export.
package enum PolicyContracts {
    package static let requiredExports: [String: [String]] = [
        "pricing.lua": ["price", "match", "consume"],
        "admission.lua": ["admit", "limits"],
        "billing.lua": ["monthly_lines", "eligible", "signup_grant", "payment_fee", "dunning"],
        "abuse.lua": ["on_signup", "on_job"],
    ]
}
