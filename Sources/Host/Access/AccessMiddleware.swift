import Foundation
import Hummingbird
import Logging

/// Runs after the router found the route (so the endpoint and its parameters are known), before
/// the handler: open routes pass; every other route needs `Authorization: Bearer tk_…` of a live
/// key (401 otherwise, one answer for missing, malformed, unknown, expired and revoked), whose
/// role the route's area and the method's action are granted to (403), and a member key only
/// reaches its own workspace: any other workspace's path answers 404, as one that does not exist.
/// A route added without a rule answers 403 to every key but an ops key (fails closed). Each
/// key has a token bucket (`api_rate_per_second`, `api_rate_burst`): over it, 429 and `Retry-After`.
struct AccessMiddleware: RouterMiddleware {
    typealias Context = HostRequestContext
    let table: RouteAccessTable
    let keys: APIKeyStore
    let workspaces: WorkspaceDirectory
    let limiter: KeyRateLimiter
    let logger: Logger

    static let unauthorized = HostError(.unauthorized, "a valid API key is required (Authorization: Bearer tk_…)")

    func handle(_ request: Request, context: Context, next: (Request, Context) async throws -> Response) async throws -> Response {
        guard let endpoint = context.endpointPath, endpoint != "NotFound" else { return try await next(request, context) }
        let rule = table.rule(request.method, endpoint)
        if let rule, rule.area == nil { return try await next(request, context) }
        if let rule, rule.loopbackWithoutKey, request.headers[.authorization] == nil, context.isLoopback { return try await next(request, context) }
        guard let token = Self.bearer(request.headers[.authorization]) else { throw Self.unauthorized }
        let now = Timestamp.ms(Date())
        guard let key = try await keys.authenticate(token, nowMs: now) else { throw Self.unauthorized }
        if let wait = limiter.take(key.id) {
            var error = HostError(.tooManyRequests, "this key is over \(limiter.perSecond) requests a second (bursts of \(limiter.burst))")
            error.retryAfterSeconds = wait
            throw error
        }
        try await authorize(key, rule, request, context)
        if key.useIsDue(at: now) {
            let keys = self.keys
            let logger = self.logger
            Task {
                do { try await keys.touch(key, nowMs: now) } catch {
                    logger.warning("could not record a key's use", metadata: ["key": .string(key.id)])
                }
            }
        }
        return try await RequestIdentity.$key.withValue(key) { try await next(request, context) }
    }

    func authorize(_ key: APIKey, _ rule: RouteAccess?, _ request: Request, _ context: Context) async throws {
        guard let rule, let area = rule.area else {
            if key.role == .ops { return }
            throw HostError(.forbidden, "this route has no access rule; only an ops key may use it")
        }
        let action = AccessAction(request.method)
        guard AccessRules.allows(key.role, area, action) else {
            throw HostError(.forbidden, "a \(key.role.rawValue) key may not \(action.rawValue) \(area.rawValue)")
        }
        guard key.role == .member, let own = key.workspaceID else { return }
        let named: String?
        switch rule.scope {
        case .none: throw HostError(.forbidden, "a member key may only use its own workspace's routes")
        case .path(let name): named = context.parameters.get(name)
        case .query(let name): named = request.uri.queryParameters.get(name).map { String($0) }
        case .own: return
        }
        guard let named else { throw HostError(.badRequest, "name your workspace (a member key reaches only \(own))") }
        // Another workspace is answered as one that does not exist: ids cannot be probed.
        guard try await workspaces.resolve(named) == own else { throw HostError(.notFound, "no workspace '\(named)'") }
    }

    /// The token of `Authorization: Bearer <token>` (the scheme in any case), nil otherwise.
    static func bearer(_ header: String?) -> String? {
        guard let header else { return nil }
        let parts = header.split(separator: " ", maxSplits: 1, omittingEmptySubsequences: true)
        guard parts.count == 2, parts[0].lowercased() == "bearer" else { return nil }
        let token = parts[1].trimmingCharacters(in: .whitespaces)
        return token.isEmpty ? nil : token
    }
}
