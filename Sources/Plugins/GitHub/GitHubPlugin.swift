import ArgumentParser
import Foundation
import Host
import Hummingbird
import Lua
import SQL
import TenkiCrypto

/// GitHub: webhook ingress (`POST /webhooks/github`), the store of deliveries, and their
/// dispatch as typed events (`ping`, `installation`, `installation_repositories`,
/// `workflow_job`, `workflow_run`, `push`) on the event bus; and, when `github_app_id` is set,
/// the App client that mints installation tokens and registers just-in-time runners.
package struct GitHubPlugin: Plugin {
    package static let name = "github"
    /// The `source` of every bus event this plugin publishes.
    package static let eventSource = "github"
    package static var migrations: [Migration] { DeliveryStore.migrations }
    package static var commands: [any ParsableCommand.Type] { [WebhooksCommand.self] }

    let context: HostContext
    let ingress: WebhookIngress
    /// The configured GitHub App, or nil; a bad key fails the start, not the first job.
    package let app: GitHubAppClient?

    package init(context: HostContext) async throws {
        self.context = context
        let secret = try HostSecrets.githubWebhookSecret(context.configuration)
        ingress = WebhookIngress(
            secret: Array(secret.utf8), database: context.database, events: context.events,
            maxBodyBytes: min(context.configuration.webhookMaxBodyBytes, HostLimits.webhookMaxBodyBytes))
        app = try GitHubAppClient.configured(context.configuration)
        context.events.registerPayloadLoader(source: GitHubPlugin.eventSource) { db, deliveryID in
            try DeliveryStore.body(db, deliveryID: deliveryID)
        }
    }

    /// Takes a delivery exactly as `POST /webhooks/github` does after reading the request
    /// (signature, size and JSON checks, stored with its inbox event); returns the HTTP status
    /// the route would answer. For in-process load generators and replays.
    package func receive(headers: [String: String], body: [UInt8]) async throws -> Int {
        do {
            switch try await ingress.receive(headers: headers, body: body, now: Date()) {
            case .accepted: return 202
            case .duplicate: return 200
            }
        } catch let error as HostError {
            return Int(error.status.code)
        }
    }

    package func addRoutes(to routes: HostRoutes) {
        let ingress = self.ingress
        let logger = context.logger
        routes.post("/webhooks/github", .open) { request, _ -> Response in
            var request = request
            let buffer = try await request.collectBody(atMost: ingress.maxBodyBytes)
            var headers: [String: String] = [:]
            for field in request.headers { headers[field.name.canonicalName] = field.value }
            // A delivery not stored is not acknowledged (the host's error answer), so the sender retries.
            do {
                switch try await ingress.receive(headers: headers, body: Array(buffer.readableBytesView), now: Date()) {
                case .accepted(let id):
                    return JSONResponse.raw(.accepted, "{\"delivery_id\":\(JSONScanner.quote(id)),\"status\":\"accepted\"}")
                case .duplicate(let id):
                    return JSONResponse.raw(.ok, "{\"delivery_id\":\(JSONScanner.quote(id)),\"status\":\"duplicate\"}")
                }
            } catch let error as HostError {
                logger.notice(
                    "webhook rejected", metadata: ["code": .string(error.reason), "delivery": .string(headers["x-github-delivery"] ?? "-")])
                throw error
            }
        }
    }

    package var subscriptions: [EventSubscription] {
        [
            // Records each dispatch on the delivery, exactly once per dispatch. Consumers decode
            // the typed event (`GitHubEvent.decode`) themselves; this one needs no payload.
            EventSubscription(
                name: "github.delivery-log", source: GitHubPlugin.eventSource, topics: ["*"], needsPayload: false,
                handler: .transactional { event, db in
                    try DeliveryStore.recordHandled(db, deliveryID: event.sourceID, nowMs: Timestamp.ms(Date()))
                })
        ]
    }

    package var luaFunctions: [LuaHostFunction] {
        let app = self.app
        return [
            // github.request(installation, method, path[, body]) -> { status = 201, body = {...} } as the
            // installation (scripts only): e.g. a check run explaining why a job is blocked.
            LuaHostFunction.waiting(module: "github", name: "request") { arguments in
                guard arguments.count >= 3, let installation = arguments[0].integerValue, let method = arguments[1].stringValue,
                    let path = arguments[2].stringValue
                else {
                    throw LuaError(kind: .runtime, message: "github.request(installation, method, path[, body]) expects an integer and two strings")
                }
                guard let app else { throw LuaError(kind: .runtime, message: "github.request: no GitHub App is configured (github_app_id)") }
                let body = arguments.count > 3 && !arguments[3].isNil ? Array(LuaJSON.text(arguments[3]).utf8) : nil
                let response: GitHubAPIResponse
                do {
                    response = try await app.request(installation: installation, method: method.uppercased(), path: path, body: body)
                } catch let error as GitHubAPIError where error.kind == .status {
                    return [.table(LuaTable(fields: ["status": .integer(Int64(error.status)), "error": .string(error.message)]))]
                }
                let decoded =
                    response.body.isEmpty ? LuaValue.nil : ((try? LuaJSON.value(fromJSON: String(decoding: response.body, as: UTF8.self))) ?? .nil)
                return [.table(LuaTable(fields: ["status": .integer(Int64(response.status)), "body": decoded]))]
            },
            // github.signature(secret, body) -> "sha256=..." as GitHub would sign `body`.
            LuaHostFunction(module: "github", name: "signature", readOnly: true) { arguments in
                guard arguments.count == 2, let secret = arguments[0].stringValue, let body = arguments[1].stringValue else {
                    throw LuaError(kind: .runtime, message: "github.signature(secret, body) expects two strings")
                }
                return [.string(WebhookSignature.gitHubHeader(secret: Array(secret.utf8), body: Array(body.utf8)))]
            },
        ]
    }
}

/// Reading and replaying stored deliveries, for the CLI and tests.
package enum GitHubDeliveries {
    package static func list(_ host: TenkiHost, event: String? = nil, limit: Int) async throws -> [StoredDelivery] {
        let limit = max(1, min(limit, HostLimits.listMaxRows))
        var deliveries = try await host.database.read { try DeliveryStore.list($0, event: event, limit: limit) }
        try await fillStatus(&deliveries, host)
        return deliveries
    }

    package static func find(_ host: TenkiHost, deliveryID: String) async throws -> StoredDelivery? {
        guard let found = try await host.database.read({ try DeliveryStore.find($0, deliveryID: deliveryID) }) else { return nil }
        var one = [found]
        try await fillStatus(&one, host)
        return one[0]
    }

    package static func body(_ host: TenkiHost, deliveryID: String) async throws -> [UInt8]? {
        try await host.database.read { try DeliveryStore.body($0, deliveryID: deliveryID) }
    }

    package static func headers(_ host: TenkiHost, deliveryID: String) async throws -> [String: String]? {
        try await host.database.read { try DeliveryStore.headers($0, deliveryID: deliveryID) }
    }

    package struct Stats: Codable, Sendable {
        package let deliveries: Int
        /// Inbox events of every source by status (pending, done, dead).
        package let inbox: [String: Int]
    }

    package static func stats(_ host: TenkiHost) async throws -> Stats {
        try await host.database.read { db in
            Stats(deliveries: try DeliveryStore.count(db), inbox: try EventInbox.counts(db))
        }
    }

    /// Dispatches a stored delivery again; returns the new inbox event id.
    package static func redeliver(_ host: TenkiHost, deliveryID: String) async throws -> Int64? {
        let id = try await host.database.transaction { try DeliveryStore.redeliver($0, deliveryID: deliveryID, now: Date()) }
        host.events.ring()
        return id
    }

    /// The delivery's status from its latest inbox event.
    static func fillStatus(_ deliveries: inout [StoredDelivery], _ host: TenkiHost) async throws {
        let records = try await host.events.latestRecords(source: GitHubPlugin.eventSource, sourceIDs: deliveries.map(\.deliveryID))
        for index in deliveries.indices {
            guard let record = records[deliveries[index].deliveryID] else {
                deliveries[index].status = "received"
                continue
            }
            deliveries[index].eventID = record.id
            switch record.status {
            case "done": deliveries[index].status = "dispatched"
            case "dead": deliveries[index].status = "dead"
            default: deliveries[index].status = record.attempts > 0 ? "retrying" : "received"
            }
        }
    }
}
