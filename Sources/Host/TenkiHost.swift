import Foundation
import HTTPClient
import Hummingbird
import Logging
import Lua
import SQL
import ServiceLifecycle

/// The assembled host: storage opened and migrated, the event bus, and the plugins.
package final class TenkiHost: Sendable {
    package let configuration: HostConfiguration
    package let database: any Database
    package let events: EventBus
    package let logger: Logger
    package let httpClient: HTTPClient
    /// In the order they were built.
    package let plugins: [any Plugin]
    package let policies: PolicyEngine
    package let workflows: WorkflowCatalog
    package let workspaces: WorkspaceDirectory

    /// Opens the database, applies every pending migration (kernel first) and builds the plugins.
    package static func open(
        _ configuration: HostConfiguration, plugins pluginTypes: [any Plugin.Type] = PluginCatalog.plugins,
        logger: Logger = Logger(label: "tenki")
    ) async throws -> TenkiHost {
        try PluginCatalog.checkOrder(pluginTypes)
        HostLimits.assertRelations()
        SQLLimits.assertRelations()
        WorkflowLimits.assertRelations()
        let database = try DatabaseOpener.open(configuration)
        try await migrate(database, plugins: pluginTypes)
        let events = EventBus(database: database, configuration: configuration, logger: logger)
        let policies = PolicyEngine(source: DirectoryPolicySource(root: configuration.policyRoot), logger: logger)
        policies.restore(try await PolicyHistoryStore.load(from: database).map { ($0.files, $0.activatedAt) })
        policies.reload()
        let httpClient = HTTPClient()
        let workflows = WorkflowCatalog()
        let workspaces = WorkspaceDirectory()
        var context = HostContext(
            configuration: configuration, database: database, events: events, logger: logger,
            httpClient: httpClient, policies: policies, workflows: workflows, workspaces: workspaces)
        for type in pluginTypes {
            let plugin = try await type.init(context: context)
            plugin.subscriptions.forEach(events.subscribe)
            context.plugins.append(plugin)
        }
        let plugins = context.plugins.all
        workflows.register(scriptFunctions: ScriptFunctions.all(configuration: configuration, http: httpClient, logger: logger))
        for plugin in plugins {
            plugin.workflows.forEach(workflows.register)
            plugin.workflowTaskQueues.forEach(workflows.register)
            plugin.workflowSchedules.forEach(workflows.register)
            workflows.register(scriptFunctions: plugin.luaFunctions)
        }
        return TenkiHost(
            configuration: configuration, database: database, events: events, logger: logger,
            httpClient: httpClient, plugins: plugins, policies: policies, workflows: workflows, workspaces: workspaces)
    }

    init(
        configuration: HostConfiguration, database: any Database, events: EventBus, logger: Logger,
        httpClient: HTTPClient, plugins: [any Plugin], policies: PolicyEngine, workflows: WorkflowCatalog = WorkflowCatalog(),
        workspaces: WorkspaceDirectory = WorkspaceDirectory()
    ) {
        self.workspaces = workspaces
        self.configuration = configuration
        self.database = database
        self.events = events
        self.logger = logger
        self.httpClient = httpClient
        self.plugins = plugins
        self.policies = policies
        self.workflows = workflows
    }

    /// The built plugin of type `type`, if this host has one.
    package func plugin<P: Plugin>(_ type: P.Type) -> P? {
        for plugin in plugins { if let match = plugin as? P { return match } }
        return nil
    }

    /// The built plugin of type `type`; a host without it is a configuration error, named.
    package func require<P: Plugin>(_ type: P.Type) throws -> P {
        guard let plugin = plugin(type) else { throw HostError(.badConfiguration, "this tenki has no \(P.name) plugin") }
        return plugin
    }

    /// Applies the kernel's and each plugin's migrations; returns what was applied, per owner.
    @discardableResult
    package static func migrate(_ database: any Database, plugins: [any Plugin.Type]) async throws -> [(String, [Int])] {
        var applied: [(String, [Int])] = []
        applied.append(
            (
                "host",
                try await Migrator.migrate(
                    database, plugin: "host",
                    migrations: EventInbox.migrations + PolicyHistoryStore.migrations + APIKeyStore.migrations)
            ))
        for plugin in plugins {
            applied.append((plugin.name, try await Migrator.migrate(database, plugin: plugin.name, migrations: plugin.migrations)))
        }
        return applied
    }

    /// Every Lua function the plugins offer.
    package var luaFunctions: [LuaHostFunction] { plugins.flatMap(\.luaFunctions) }

    /// The API keys requests present.
    package var apiKeys: APIKeyStore { APIKeyStore(database: database) }

    /// The HTTP router: health, readiness and every plugin's routes, each behind its access rule
    /// (`AccessMiddleware`). `before` runs ahead of the access check (tests add a default key);
    /// `extra` adds routes after the plugins' (tests); `limiter` replaces the configured one (tests).
    package func makeRouter(
        before: [any MiddlewareProtocol<Request, Response, HostRequestContext>] = [], limiter: KeyRateLimiter? = nil,
        extra: (HostRoutes) -> Void = { _ in }
    ) -> HostRouter {
        let router = HostRouter(context: HostRequestContext.self)
        router.add(middleware: RequestLogMiddleware(logger: logger))
        if !configuration.corsAllowedOrigins.isEmpty { router.add(middleware: HostCORSMiddleware(origins: Set(configuration.corsAllowedOrigins))) }
        router.add(middleware: HostErrorMiddleware(logger: logger))
        for middleware in before { router.add(middleware: middleware) }
        let table = RouteAccessTable()
        let limiter = limiter ?? KeyRateLimiter(perSecond: configuration.apiRatePerSecond, burst: configuration.apiRateBurst)
        router.add(middleware: AccessMiddleware(table: table, keys: apiKeys, workspaces: workspaces, limiter: limiter, logger: logger))
        let routes = HostRoutes(router: router, access: table)
        let database = self.database
        routes.get("/healthz", .open) { _, _ in
            JSONResponse.make(.ok, ["status": "ok"])
        }
        routes.get("/readyz", .open) { _, _ in
            do {
                try await database.ping()
            } catch {
                throw HostError(.unavailable, "database unavailable")
            }
            return JSONResponse.make(.ok, ["status": "ready", "database": database.dialect.rawValue])
        }
        let policies = self.policies
        routes.get("/policies/status", .area(.policies)) { _, _ in
            JSONResponse.raw(.ok, try JSONCoding.text(policies.status))
        }
        let plugins = self.plugins
        routes.get("/metrics", .scrape(.metrics)) { _, _ -> Response in
            var text = ""
            for family in try await KernelMetrics.families(database) { text += family.text }
            for plugin in plugins {
                for family in try await plugin.metrics() { text += family.text }
            }
            return Response(
                status: .ok, headers: [.contentType: "text/plain; version=0.0.4; charset=utf-8"],
                body: .init(byteBuffer: ByteBuffer(string: text)))
        }
        KeyRoutes(keys: apiKeys, workspaces: workspaces).add(to: routes)
        plugins.forEach { $0.addRoutes(to: routes) }
        extra(routes)
        return router
    }

    /// Serves HTTP and runs the dispatcher and plugin services until SIGTERM or SIGINT, then
    /// stops taking connections, finishes requests in flight and stops the services.
    package func serve(onListening: @escaping @Sendable (Int) async -> Void = { _ in }) async throws {
        var services: [any Service] = []
        if configuration.dispatch {
            services.append(events.dispatcher())
        } else {
            logger.notice("dispatch is off: deliveries are stored but not handled")
        }
        if let set = policies.currentSet { try await PolicyHistoryStore.record(set, in: database) }
        services.append(PolicyReloader(engine: policies, database: database))
        services.append(contentsOf: plugins.flatMap(\.services))
        let logger = self.logger
        let app = Application(
            router: makeRouter(),
            configuration: .init(address: .hostname(configuration.host, port: configuration.port), serverName: "tenki"),
            services: services,
            onServerRunning: { channel in
                let port = channel.localAddress?.port ?? 0
                logger.info("listening", metadata: ["address": .string("\(channel.localAddress?.description ?? "?")")])
                await onListening(port)
            },
            logger: logger)
        try await app.runService(gracefulShutdownSignals: [.sigterm, .sigint])
        await database.close()
    }
}

/// Logs each request at debug level with its status and duration.
struct RequestLogMiddleware: RouterMiddleware {
    typealias Context = HostRequestContext
    let logger: Logger

    func handle(_ request: Request, context: Context, next: (Request, Context) async throws -> Response) async throws -> Response {
        let start = ContinuousClock.now
        let response = try await next(request, context)
        if logger.logLevel <= .debug {
            logger.debug(
                "request",
                metadata: [
                    "method": .string(request.method.rawValue), "path": .string(request.uri.path),
                    "status": .stringConvertible(response.status.code),
                    "ms": .stringConvertible((ContinuousClock.now - start).components.attoseconds / 1_000_000_000_000_000),
                ])
        }
        return response
    }
}

/// Small JSON answers.
package enum JSONResponse {
    package static func make(_ status: HTTPResponse.Status, _ object: [String: Any]) -> Response {
        let data = (try? JSONSerialization.data(withJSONObject: object, options: [.sortedKeys])) ?? Data("{}".utf8)
        return Response(
            status: status, headers: [.contentType: "application/json"],
            body: .init(byteBuffer: ByteBuffer(bytes: data)))
    }

    /// A body already written as JSON (hot paths avoid JSONSerialization).
    package static func raw(_ status: HTTPResponse.Status, _ json: String) -> Response {
        Response(status: status, headers: [.contentType: "application/json"], body: .init(byteBuffer: ByteBuffer(string: json)))
    }
}

/// Opens the configured database with host errors a person can act on.
package enum DatabaseOpener {
    package static func open(_ configuration: HostConfiguration) throws -> any Database {
        try FileManager.default.createDirectory(atPath: configuration.dataDir, withIntermediateDirectories: true)
        do {
            return try DatabaseFactory.open(url: configuration.effectiveDatabaseURL, poolSize: configuration.databasePoolSize)
        } catch {
            throw HostError(.unavailable, "cannot open the database: \(error)")
        }
    }
}
