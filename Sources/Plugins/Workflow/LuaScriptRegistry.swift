import Foundation
import Host
import Logging
import ServiceLifecycle

/// What `tenki workflow scripts` and `GET /workflow-scripts` show.
package struct LuaScriptStatus: Sendable, Codable {
    package var root: String
    package var version: String
    package var loadedAt: String
    package var files: [String]
    package var scripts: [Script]
    /// Scripts refused when tenki started (a reload with any error is rejected as a whole).
    package var refused: [String]
    /// Types of scripts removed since start: no event starts them, runs already started finish
    /// with the last version loaded (until tenki restarts).
    package var retired: [String]
    package var lastCheckAt: String?
    package var lastRejection: Rejection?
    package var reloads: Int

    /// A change that was not taken: its version hash, when, and every `file:line: reason` (the
    /// same record as a rejected policy change).
    package typealias Rejection = PolicyStatus.Rejection

    package struct Script: Sendable, Codable {
        package let type: String
        package let path: String
        package let on: [String]
        package let match: Bool
        package let taskQueue: String

        enum CodingKeys: String, CodingKey { case type, path, on, match, taskQueue = "task_queue" }
    }

    enum CodingKeys: String, CodingKey {
        case root, version, loadedAt = "loaded_at", files, scripts, refused, retired, lastCheckAt = "last_check_at", lastRejection = "last_rejection",
            reloads
    }
}

/// The Lua scripts serving now. At start it serves the scripts that load (refused ones are
/// logged); after that `reload()` re-reads `scripts_root` and, when its content hash changed,
/// checks every script in fresh states (syntax, shape, `on`, `match`, `task_queue`) and swaps
/// the whole set in at once (the workflow types in the catalog first, then the set the event
/// subscription consults). A change with any error is rejected with `file:line` and the
/// previous set keeps serving — the same rules as the policies' hot reload. Runs already
/// started replay with the version loaded when they execute next; a removed script keeps its
/// last definition (until restart) so its runs finish, but no event starts it any more.
/// Unchecked Sendable: its mutable state is touched only under `lock`.
package final class LuaScriptRegistry: @unchecked Sendable {
    package let root: String
    let catalog: WorkflowCatalog?
    let logger: Logger
    private let lock = NSLock()
    private var set: LuaScriptSet
    private var statusValue: LuaScriptStatus
    private var lastSeenVersion: String
    /// The script types in the catalog (the serving ones and the retired ones).
    private var served: [String: WorkflowDefinition] = [:]

    package init(root: String, catalog: WorkflowCatalog?, logger: Logger, now: Date = Date()) {
        self.root = root
        self.catalog = catalog
        self.logger = logger
        let set = LuaWorkflows.load(root: root)
        self.set = set
        lastSeenVersion = set.version
        statusValue = LuaScriptStatus(
            root: root, version: set.version, loadedAt: Timestamp.iso(ms: Timestamp.ms(now)), files: set.files.map(\.path),
            scripts: LuaScriptRegistry.describe(set), refused: set.errors, retired: [], reloads: 0)
        for definition in LuaWorkflows.definitions(set, catalog: catalog) { served[definition.type] = definition }
        for error in set.errors {
            logger.error("workflow script refused", metadata: ["error": .string(error)])
        }
    }

    static func describe(_ set: LuaScriptSet) -> [LuaScriptStatus.Script] {
        set.scripts.map { .init(type: $0.type, path: $0.path, on: $0.topics, match: $0.hasMatch, taskQueue: $0.taskQueue) }
    }

    /// The set serving now.
    package var current: LuaScriptSet { lock.withLock { set } }
    package var status: LuaScriptStatus { lock.withLock { statusValue } }

    /// The script workflow types to register: the serving scripts and the retired ones.
    package var definitions: [WorkflowDefinition] { lock.withLock { served.values.sorted { $0.type < $1.type } } }

    /// Re-reads the directory; if its content changed, validates it and swaps it in. Blocking
    /// (Lua): call it from the scripts' own threads.
    @discardableResult
    package func reload(now: Date = Date()) -> PolicyEngine.ReloadOutcome {
        let candidate = LuaWorkflows.load(root: root)
        let at = Timestamp.iso(ms: Timestamp.ms(now))
        let seen: Bool = lock.withLock {
            statusValue.lastCheckAt = at
            return lastSeenVersion == candidate.version
        }
        if seen { return .unchanged(version: candidate.version) }
        guard candidate.errors.isEmpty else {
            lock.withLock {
                lastSeenVersion = candidate.version
                statusValue.lastRejection = .init(version: candidate.version, at: at, errors: candidate.errors)
            }
            logger.error(
                "workflow script change rejected; the previous scripts keep serving",
                metadata: ["version": .string(candidate.version), "errors": .string(candidate.errors.joined(separator: " | "))])
            return .rejected(version: candidate.version, errors: candidate.errors)
        }
        let definitions: [WorkflowDefinition] = lock.withLock {
            for definition in LuaWorkflows.definitions(candidate, catalog: catalog) { served[definition.type] = definition }
            let types = Set(candidate.scripts.map(\.type))
            statusValue.retired = served.keys.filter { !types.contains($0) }.sorted()
            return served.values.sorted { $0.type < $1.type }
        }
        // The types first, then the set the events consult: an event never starts an unknown type.
        catalog?.replace(prefix: "script.", with: definitions)
        lock.withLock {
            lastSeenVersion = candidate.version
            set = candidate
            statusValue.version = candidate.version
            statusValue.loadedAt = at
            statusValue.files = candidate.files.map(\.path)
            statusValue.scripts = LuaScriptRegistry.describe(candidate)
            statusValue.refused = []
            statusValue.reloads += 1
        }
        logger.info(
            "workflow scripts loaded", metadata: ["version": .string(candidate.version), "scripts": .stringConvertible(candidate.scripts.count)])
        return .loaded(version: candidate.version)
    }
}

/// Polls `scripts_root` and swaps in valid changes (within one poll interval plus validation
/// time). The checking runs on the scripts' own threads. Runs until graceful shutdown.
package struct LuaScriptReloader: Service {
    let registry: LuaScriptRegistry
    let intervalMilliseconds: Int

    package init(registry: LuaScriptRegistry, intervalMilliseconds: Int = PolicyLimits.reloadPollMilliseconds) {
        self.registry = registry
        self.intervalMilliseconds = max(1, intervalMilliseconds)
    }

    package func run() async throws {
        let registry = self.registry
        await cancelWhenGracefulShutdown {
            while !Task.isCancelled {
                _ = try? await LuaWorkflows.pool.run { registry.reload() }
                try? await Task.sleep(nanoseconds: UInt64(intervalMilliseconds) * 1_000_000)
            }
        }
    }
}
