import ArgumentParser
import Foundation
import Host
import Hummingbird
import Logging
import SQL
import ServiceLifecycle

/// Durable workflows on the `Database` protocol (SQLite or PostgreSQL): DBOS-style step
/// memoisation with Temporal's semantics (retry policies, durable timers, signals, children,
/// timeouts, cancellation), task queues worked by every replica under leases, cron schedules,
/// `tenki workflow ...` and `/workflows` over HTTP. Other plugins contribute workflow types
/// through `Plugin.workflows`; this one runs them.
package struct WorkflowPlugin: Plugin {
    package static let name = "workflow"
    package static var migrations: [Migration] { WorkflowStore.migrations }
    package static var commands: [any ParsableCommand.Type] { [WorkflowCommand.self] }

    package let engine: WorkflowEngine
    let catalog: WorkflowCatalog
    /// Lua workflows under `scripts_root`, reloaded when the directory changes.
    package let scriptRegistry: LuaScriptRegistry
    /// The scripts serving now.
    package var scripts: LuaScriptSet { scriptRegistry.current }
    let configuration: HostConfiguration
    let database: any Database
    let logger: Logger

    package init(context: HostContext) async throws {
        configuration = context.configuration
        catalog = context.workflows
        database = context.database
        logger = context.logger
        scriptRegistry = LuaScriptRegistry(root: context.configuration.scriptsRoot, catalog: context.workflows, logger: context.logger)
        engine = WorkflowEngine(
            database: context.database, catalog: context.workflows,
            leaseSeconds: context.configuration.workflowLeaseSeconds,
            concurrency: context.configuration.workflowConcurrency, logger: context.logger)
        if context.configuration.workflowTestTypes {
            try await context.database.transaction { try $0.executeScript(TestWorkflows.effectsTableSQL) }
        }
    }

    package var workflows: [WorkflowDefinition] {
        (configuration.workflowTestTypes ? TestWorkflows.definitions : []) + scriptRegistry.definitions
    }

    /// One durable run per event matching a serving script's `on` topics (and `match`): one
    /// subscription for every script, taking only the topics the serving scripts listen to.
    package var subscriptions: [EventSubscription] {
        let registry = scriptRegistry
        let catalog = self.catalog
        return [LuaWorkflows.subscription(current: { registry.current }, database: database, functions: { catalog.scriptFunctions }, logger: logger)]
    }

    package var services: [any Service] {
        let reloader = LuaScriptReloader(registry: scriptRegistry, intervalMilliseconds: configuration.scriptsReloadPollMilliseconds)
        guard configuration.workflowWorker else { return [reloader] }
        return [
            reloader, WorkflowWorker(engine: engine, pollIntervalMilliseconds: configuration.workflowPollIntervalMilliseconds),
            WorkflowSchedulerService(engine: engine, pollIntervalMilliseconds: 1_000),
        ]
    }

    package func addRoutes(to routes: HostRoutes) {
        WorkflowRoutes(engine: engine).add(to: routes)
        let registry = scriptRegistry
        routes.get("/workflow-scripts", .area(.workflows)) { _, _ -> Response in
            JSONResponse.raw(.ok, try JSONCoding.text(registry.status))
        }
    }
}

/// `/workflows` and `/workflow-schedules`: the operators' verbs over HTTP, JSON in and out.
struct WorkflowRoutes {
    let engine: WorkflowEngine

    static func bodyObject(_ request: Request) async throws -> [String: Any] {
        var request = request
        let buffer = try await request.collectBody(atMost: WorkflowLimits.maxPayloadBytes + 4096)
        let data = Data(buffer.readableBytesView)
        guard let object = try? JSONSerialization.jsonObject(with: data) as? [String: Any] else {
            throw HostError(.badRequest, "the body must be one JSON object")
        }
        return object
    }

    static func bodyJSON(_ request: Request) async throws -> [UInt8] {
        var request = request
        let buffer = try await request.collectBody(atMost: WorkflowLimits.maxPayloadBytes)
        let text = String(decoding: buffer.readableBytesView, as: UTF8.self)
        return try WorkflowJSON.validate(text.isEmpty ? "null" : text, what: "the body")
    }

    static func payload(_ object: [String: Any], _ key: String) throws -> [UInt8] {
        guard let value = object[key] else { return Array("null".utf8) }
        return Array(try JSONSerialization.data(withJSONObject: value, options: [.fragmentsAllowed, .sortedKeys, .withoutEscapingSlashes]))
    }

    static func string(_ object: [String: Any], _ key: String, required: Bool = false) throws -> String? {
        switch object[key] {
        case let value as String: return value
        case nil, is NSNull: if required { throw HostError(.badRequest, "'\(key)' is required") } else { return nil }
        default: throw HostError(.badRequest, "'\(key)' must be a string")
        }
    }

    static func id(_ context: HostRequestContext, _ name: String = "id") throws -> String {
        guard let raw = context.parameters.get(name) else { throw HostError(.badRequest, "\(name) missing") }
        return raw.removingPercentEncoding ?? raw
    }

    func add(to routes: HostRoutes) {
        addRunRoutes(to: routes)
        addScheduleRoutes(to: routes)
    }

    /// Start, list, describe, result, state, signal and cancel runs.
    func addRunRoutes(to routes: HostRoutes) {
        let engine = self.engine
        routes.post("/workflows", .area(.workflows)) { request, _ -> Response in
            let body = try await WorkflowRoutes.bodyObject(request)
            guard let type = try WorkflowRoutes.string(body, "type", required: true) else { throw HostError(.badRequest, "'type' is required") }
            var timeout: Duration?
            if let text = try WorkflowRoutes.string(body, "timeout") {
                guard let parsed = WorkflowDurations.parse(text) else {
                    throw HostError(.badRequest, "bad timeout '\(text)' (e.g. 90s, 15m, 2h, 3d)")
                }
                timeout = parsed
            }
            let started = try await engine.start(
                type: type, input: try WorkflowRoutes.payload(body, "input"),
                id: try WorkflowRoutes.string(body, "id"),
                taskQueue: try WorkflowRoutes.string(body, "task_queue"), timeout: timeout)
            var object = WorkflowViews.run(started.run)
            object["created"] = started.created
            return JSONResponse.make(started.created ? .created : .ok, object)
        }
        routes.get("/workflows", .area(.workflows)) { request, _ -> Response in
            let query = request.uri.queryParameters
            var status: WorkflowStatus?
            if let text = query.get("status") {
                guard let parsed = WorkflowStatus(rawValue: text) else {
                    throw HostError(.badRequest, "status must be one of \(WorkflowStatus.allCases.map(\.rawValue).joined(separator: ", "))")
                }
                status = parsed
            }
            let limit = query.get("limit").flatMap { Int($0) } ?? WorkflowLimits.defaultListRuns
            let runs = try await engine.list(type: query.get("type"), status: status, limit: limit)
            return JSONResponse.raw(.ok, WorkflowViews.text(runs.map { WorkflowViews.run($0) }))
        }
        routes.get("/workflows/:id", .area(.workflows)) { _, context -> Response in
            JSONResponse.raw(.ok, WorkflowViews.text(WorkflowViews.description(try await engine.describe(id: try WorkflowRoutes.id(context)))))
        }
        routes.get("/workflows/:id/result", .area(.workflows)) { _, context -> Response in
            JSONResponse.raw(.ok, WorkflowViews.text(WorkflowViews.result(try await engine.run(id: try WorkflowRoutes.id(context)))))
        }
        routes.get("/workflows/:id/state", .area(.workflows)) { _, context -> Response in
            let description = try await engine.describe(id: try WorkflowRoutes.id(context))
            var state: [String: Any] = [:]
            for (key, value) in description.state { state[key] = WorkflowViews.json(value) }
            return JSONResponse.raw(.ok, WorkflowViews.text(["id": description.run.id, "status": description.run.status.rawValue, "state": state]))
        }
        routes.post("/workflows/:id/signals/:name", .area(.workflows)) { request, context -> Response in
            let id = try WorkflowRoutes.id(context)
            let name = try WorkflowRoutes.id(context, "name")
            try await engine.signal(id: id, name: name, payload: try await WorkflowRoutes.bodyJSON(request))
            return JSONResponse.make(.accepted, ["id": id, "signal": name, "status": "sent"])
        }
        routes.post("/workflows/:id/cancel", .area(.workflows)) { _, context -> Response in
            let id = try WorkflowRoutes.id(context)
            let cancelled = try await engine.cancel(id: id)
            return JSONResponse.make(.ok, ["id": id, "cancelled": cancelled])
        }
    }

    /// List, create and delete cron schedules.
    func addScheduleRoutes(to routes: HostRoutes) {
        let engine = self.engine
        routes.get("/workflow-schedules", .area(.workflows)) { _, _ -> Response in
            JSONResponse.raw(.ok, WorkflowViews.text(try await engine.schedules().map(WorkflowViews.schedule)))
        }
        routes.post("/workflow-schedules", .area(.workflows)) { request, _ -> Response in
            let body = try await WorkflowRoutes.bodyObject(request)
            let schedule = try await engine.createSchedule(
                name: try WorkflowRoutes.string(body, "name", required: true)!, cron: try WorkflowRoutes.string(body, "cron", required: true)!,
                type: try WorkflowRoutes.string(body, "type", required: true)!, input: try WorkflowRoutes.payload(body, "input"),
                taskQueue: try WorkflowRoutes.string(body, "task_queue"))
            return JSONResponse.make(.created, WorkflowViews.schedule(schedule))
        }
        routes.delete("/workflow-schedules/:name", .area(.workflows)) { _, context -> Response in
            let name = try WorkflowRoutes.id(context, "name")
            try await engine.deleteSchedule(name: name)
            return JSONResponse.make(.ok, ["name": name, "status": "deleted"])
        }
    }
}
