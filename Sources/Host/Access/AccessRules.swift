import Foundation
import Hummingbird

/// What a route is about, for the roles' grants.
package enum AccessArea: String, Sendable, CaseIterable {
    /// Workspaces and their settings as read (the runner's list, one workspace).
    case workspaces
    /// Jobs and the runner's metrics.
    case jobs
    /// Usage: each charge with its policy version and inputs.
    case usage
    /// Balances, transfers and history.
    case ledger
    /// Invoices and storage reports.
    case invoices
    /// Promotional credits.
    case credits
    /// Add-ons, extra slots and contracts.
    case subscriptions
    /// Usage and payment reversals.
    case reversals
    /// Policy status, versions and evaluation.
    case policies
    /// Workflow runs, schedules and scripts.
    case workflows
    /// Webhook deliveries and redelivery.
    case webhooks
    /// API keys.
    case keys
    /// The host's Prometheus metrics.
    case metrics
}

/// Read (GET, HEAD) or write (every other method).
package enum AccessAction: String, Sendable {
    case read, write

    init(_ method: HTTPRequest.Method) { self = method == .get || method == .head ? .read : .write }
}

/// What a route asks of a request's key.
package struct RouteAccess: Sendable {
    /// Where a request names its workspace: a member key is confined to its own.
    package enum Scope: Sendable, Equatable {
        /// The route is not about one workspace: a member key may not use it.
        case none
        /// This path parameter (an id or a slug).
        case path(String)
        /// This query parameter, which a member key must give.
        case query(String)
        /// The handler itself confines a member key to its workspace (it reads `RequestIdentity.key`).
        case own
    }

    /// Nil for an open route (health, readiness, the signed webhooks).
    package let area: AccessArea?
    package let scope: Scope
    /// A request from this machine without a key is let in (a local Prometheus scraping `/metrics`).
    package var loopbackWithoutKey = false

    /// No key: health, readiness and the webhooks, which carry their own signatures.
    package static let open = RouteAccess(area: nil, scope: .none)

    package static func area(_ area: AccessArea, workspace scope: Scope = .none) -> RouteAccess { RouteAccess(area: area, scope: scope) }

    /// The area's key, or none from loopback.
    package static func scrape(_ area: AccessArea) -> RouteAccess {
        var rule = RouteAccess(area: area, scope: .none)
        rule.loopbackWithoutKey = true
        return rule
    }
}

/// The roles' grants: one table, also printed in the README.
package enum AccessRules {
    package static let grants: [APIRole: [AccessArea: Set<AccessAction>]] = [
        .ops: Dictionary(uniqueKeysWithValues: AccessArea.allCases.map { ($0, [.read, .write]) }),
        .sales: [.workspaces: [.read], .jobs: [.read], .usage: [.read], .subscriptions: [.read, .write], .policies: [.read, .write]],
        .finance: [
            .workspaces: [.read], .usage: [.read], .ledger: [.read], .invoices: [.read], .credits: [.read, .write],
            .reversals: [.read, .write],
        ],
        .member: [.workspaces: [.read], .jobs: [.read], .usage: [.read], .ledger: [.read], .invoices: [.read], .keys: [.read, .write]],
    ]

    package static func allows(_ role: APIRole, _ area: AccessArea, _ action: AccessAction) -> Bool {
        grants[role]?[area]?.contains(action) ?? false
    }
}

/// Every route's `RouteAccess`, by method and path as the router reports its endpoint.
/// Unchecked Sendable: `rules` is touched only under `lock`.
package final class RouteAccessTable: @unchecked Sendable {
    private let lock = NSLock()
    private var rules: [String: RouteAccess] = [:]

    package init() {}

    static func key(_ method: HTTPRequest.Method, _ path: String) -> String { method.rawValue + " " + path }

    func add(_ method: HTTPRequest.Method, _ path: RouterPath, _ access: RouteAccess) {
        lock.withLock { rules[Self.key(method, path.description)] = access }
    }

    package func rule(_ method: HTTPRequest.Method, _ endpointPath: String) -> RouteAccess? {
        lock.withLock { rules[Self.key(method, endpointPath)] }
    }

    /// Every route with its access, `METHOD /path` → rule (for the docs and the tests).
    package var all: [String: RouteAccess] { lock.withLock { rules } }
}

/// The router as plugins add routes to it: every route names its `RouteAccess`.
package struct HostRoutes {
    package let router: HostRouter
    package let access: RouteAccessTable
    /// The path every route of this group starts with ("" for the root).
    let prefix: String

    package init(router: HostRouter, access: RouteAccessTable) {
        self.init(router: router, access: access, prefix: "")
    }

    init(router: HostRouter, access: RouteAccessTable, prefix: String) {
        self.router = router
        self.access = access
        self.prefix = prefix
    }

    /// Routes under `path` (e.g. `/billing/workspaces/:workspace`).
    package func group(_ path: RouterPath) -> HostRoutes {
        HostRoutes(router: router, access: access, prefix: full(path).description)
    }

    private func full(_ path: RouterPath) -> RouterPath {
        if prefix.isEmpty { return path }
        let tail = path.description
        return RouterPath(prefix + (tail == "/" ? "" : tail))
    }

    @discardableResult
    package func on<Output: ResponseGenerator>(
        _ path: RouterPath, method: HTTPRequest.Method, _ rule: RouteAccess,
        use handler: @escaping @Sendable (Request, HostRequestContext) async throws -> Output
    ) -> HostRoutes {
        let path = full(path)
        access.add(method, path, rule)
        router.on(path, method: method, use: handler)
        return self
    }

    @discardableResult
    package func get<Output: ResponseGenerator>(
        _ path: RouterPath, _ rule: RouteAccess, use handler: @escaping @Sendable (Request, HostRequestContext) async throws -> Output
    ) -> HostRoutes { on(path, method: .get, rule, use: handler) }

    @discardableResult
    package func post<Output: ResponseGenerator>(
        _ path: RouterPath, _ rule: RouteAccess, use handler: @escaping @Sendable (Request, HostRequestContext) async throws -> Output
    ) -> HostRoutes { on(path, method: .post, rule, use: handler) }

    @discardableResult
    package func delete<Output: ResponseGenerator>(
        _ path: RouterPath, _ rule: RouteAccess, use handler: @escaping @Sendable (Request, HostRequestContext) async throws -> Output
    ) -> HostRoutes { on(path, method: .delete, rule, use: handler) }
}
