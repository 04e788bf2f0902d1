import ArgumentParser
import Foundation
import HTTPClient
import Hummingbird
import Logging
import Lua
import SQL
import ServiceLifecycle

/// The router plugins add their HTTP routes to.
package typealias HostRouter = Router<HostRequestContext>

/// What the kernel hands every plugin: configuration, storage, the event bus, logging and the
/// outbound HTTP client. Plugins talk to each other through the bus and public Swift APIs,
/// never through each other's tables.
package struct HostContext: Sendable {
    package let configuration: HostConfiguration
    package let database: any Database
    package let events: EventBus
    package let logger: Logger
    package let httpClient: HTTPClient
    /// The Lua policies' decisions (pricing, admission, ...).
    package let policies: PolicyEngine
    /// Every plugin's workflow types and task queues (filled after all plugins are built).
    package let workflows: WorkflowCatalog
    /// Workspace ids by id or slug (the runner registers its workspaces).
    package let workspaces: WorkspaceDirectory
    /// The plugins built before this one: those a plugin declares in `dependencies`, and the
    /// shared parts they own (the GitHub App client, the ledger store, the workflow engine).
    package internal(set) var plugins = PluginRegistry()

    package init(
        configuration: HostConfiguration, database: any Database, events: EventBus, logger: Logger, httpClient: HTTPClient,
        policies: PolicyEngine, workflows: WorkflowCatalog = WorkflowCatalog(), workspaces: WorkspaceDirectory = WorkspaceDirectory()
    ) {
        self.workspaces = workspaces
        self.configuration = configuration
        self.database = database
        self.events = events
        self.logger = logger
        self.httpClient = httpClient
        self.policies = policies
        self.workflows = workflows
    }
}

/// A function a plugin offers to Lua policies and scripts, e.g. `ledger.balance`.
package struct LuaHostFunction: Sendable {
    package let module: String
    package let name: String
    /// Read-only functions are offered to policies; the others only to scripts.
    package let readOnly: Bool
    package let function: @Sendable ([LuaValue]) throws -> [LuaValue]

    package init(module: String, name: String, readOnly: Bool, function: @escaping @Sendable ([LuaValue]) throws -> [LuaValue]) {
        self.module = module
        self.name = name
        self.readOnly = readOnly
        self.function = function
    }

    /// A function whose work is async (a database read, an HTTP call). Scripts run on threads of
    /// their own, so the calling thread waits for it; never offer one to code evaluated on the
    /// cooperative pool (policies), where the wait could starve the work it waits for.
    package static func waiting(
        module: String, name: String,
        _ body: @escaping @Sendable ([LuaValue]) async throws -> [LuaValue]
    ) -> LuaHostFunction {
        LuaHostFunction(module: module, name: name, readOnly: false) { arguments in
            /// Unchecked Sendable: written by the detached task before `done.signal()` and read
            /// only after `done.wait()`; the semaphore orders the two.
            final class Outcome: @unchecked Sendable { var result: Result<[LuaValue], any Error>? }
            let outcome = Outcome()
            let done = DispatchSemaphore(value: 0)
            Task.detached {
                do { outcome.result = .success(try await body(arguments)) } catch { outcome.result = .failure(error) }
                done.signal()
            }
            done.wait()
            switch outcome.result! {
            case .success(let values): return values
            case .failure(let error as LuaError): throw error
            case .failure(let error): throw LuaError(kind: .runtime, message: "\(module).\(name): \(error)")
            }
        }
    }

    /// Installs the functions into a state as `module.name`.
    package static func install(_ functions: [LuaHostFunction], into state: LuaState, readOnlyOnly: Bool) {
        for function in functions where function.readOnly || !readOnlyOnly {
            state.register(function.name, in: function.module, function.function)
        }
    }
}

/// A built-in capability. Everything it contributes goes through this one protocol: its
/// migrations, HTTP routes, event subscriptions, Lua functions, workflow types, long-running
/// services and CLI subcommands.
package protocol Plugin: Sendable {
    /// Stable name: migrations are recorded under it.
    static var name: String { get }
    /// The plugins this one uses: they are built (and migrated) before it, and its
    /// `init(context:)` finds them in `context.plugins`. The host refuses a list that does not
    /// put them first.
    static var dependencies: [any Plugin.Type] { get }
    static var migrations: [Migration] { get }
    /// Subcommands added to `tenki` (e.g. `tenki webhooks`).
    static var commands: [any ParsableCommand.Type] { get }

    init(context: HostContext) async throws

    func addRoutes(to routes: HostRoutes)
    var subscriptions: [EventSubscription] { get }
    var luaFunctions: [LuaHostFunction] { get }
    /// Durable workflow types (run by the workflow plugin) and task queues with their limits.
    var workflows: [WorkflowDefinition] { get }
    var workflowTaskQueues: [WorkflowTaskQueue] { get }
    /// Cron schedules that start workflows (created or updated when the server starts).
    var workflowSchedules: [WorkflowScheduleDefinition] { get }
    /// Long-running work, started and stopped gracefully with the server.
    var services: [any Service] { get }
    /// Prometheus families for `GET /metrics`, computed at scrape time.
    func metrics() async throws -> [MetricFamily]
}

extension Plugin {
    package static var dependencies: [any Plugin.Type] { [] }
    package static var migrations: [Migration] { [] }
    package static var commands: [any ParsableCommand.Type] { [] }
    package func addRoutes(to routes: HostRoutes) {}
    package var subscriptions: [EventSubscription] { [] }
    package var luaFunctions: [LuaHostFunction] { [] }
    package var workflows: [WorkflowDefinition] { [] }
    package var workflowTaskQueues: [WorkflowTaskQueue] { [] }
    package var workflowSchedules: [WorkflowScheduleDefinition] { [] }
    package var services: [any Service] { [] }
    package func metrics() async throws -> [MetricFamily] { [] }
}

/// Built plugins by type: how a plugin finds the parts another one owns, and how callers find a
/// plugin, without a downcast loop at every call site.
package struct PluginRegistry: Sendable {
    /// In the order they were built.
    package private(set) var all: [any Plugin] = []

    package init() {}

    /// The built plugin of type `type`, if any.
    package func get<P: Plugin>(_ type: P.Type) -> P? {
        for plugin in all { if let match = plugin as? P { return match } }
        return nil
    }

    /// The built plugin of type `type`; a plugin asking for one it did not declare is a
    /// configuration error, named.
    package func require<P: Plugin>(_ type: P.Type) throws -> P {
        guard let plugin = get(type) else {
            throw HostError(.badConfiguration, "the \(P.name) plugin is not built yet: declare it in `dependencies` and list it first")
        }
        return plugin
    }

    mutating func append(_ plugin: any Plugin) { all.append(plugin) }
}

/// The plugins compiled into this `tenki`, in the order they are built: bound by the
/// executable's `main` for the whole run (a task-local value, not a mutable global).
package enum PluginCatalog {
    @TaskLocal package static var plugins: [any Plugin.Type] = []

    /// Refuses a list in which a plugin comes before one it depends on, or appears twice.
    package static func checkOrder(_ types: [any Plugin.Type]) throws {
        var built: Set<String> = []
        for type in types {
            for dependency in type.dependencies where !built.contains(dependency.name) {
                throw HostError(.badConfiguration, "plugin \(type.name) depends on \(dependency.name), which must be listed before it")
            }
            guard built.insert(type.name).inserted else { throw HostError(.badConfiguration, "plugin \(type.name) is listed twice") }
        }
    }
}
