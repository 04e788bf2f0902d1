import Foundation
import Hummingbird

/// API keys over HTTP (area `keys`: ops for every key; a member key for its own workspace's):
/// - `GET /keys[?workspace=W]` lists keys, never a secret;
/// - `POST /keys` `{"role", "workspace", "name", "expires_in_days"}` makes one and answers 201
///   with it and its `key`, shown this once (a member key makes member keys of its workspace only);
/// - `DELETE /keys/{id}` revokes one (another workspace's key is 404 to a member key).
struct KeyRoutes {
    let keys: APIKeyStore
    let workspaces: WorkspaceDirectory

    struct Body: Decodable {
        let role: String?
        let workspace: String?
        let name: String?
        let expiresInDays: Int?

        enum CodingKeys: String, CodingKey { case role, workspace, name, expiresInDays = "expires_in_days" }
    }

    static let bodyMaxBytes = 4 << 10

    func add(to routes: HostRoutes) {
        let keys = self.keys
        let workspaces = self.workspaces
        routes.get("/keys", .area(.keys, workspace: .own)) { request, _ -> Response in
            let caller = try KeyRoutes.caller()
            var workspace: String?
            if let named = request.uri.queryParameters.get("workspace") { workspace = try await workspaces.resolve(String(named)) }
            if caller.role == .member { workspace = caller.workspaceID }
            return JSONResponse.raw(.ok, try JSONCoding.text(try await keys.list(workspaceID: workspace), pretty: false))
        }
        routes.post("/keys", .area(.keys, workspace: .own)) { request, _ -> Response in
            let caller = try KeyRoutes.caller()
            var request = request
            let buffer = try await request.collectBody(atMost: KeyRoutes.bodyMaxBytes)
            let body: Body
            do { body = try JSONDecoder().decode(Body.self, from: Data(buffer.readableBytesView)) } catch {
                throw HostError(
                    .badRequest, "the body must be {\"role\": \"member\", \"workspace\": \"...\", \"name\": \"...\", \"expires_in_days\": 90}")
            }
            guard let role = APIRole(rawValue: body.role ?? "") else {
                throw HostError(.badRequest, "role is one of \(APIRole.allCases.map(\.rawValue).joined(separator: ", "))")
            }
            var workspaceID: String?
            if let named = body.workspace {
                guard let id = try await workspaces.lookup(named) else { throw HostError(.notFound, "no workspace '\(named)'") }
                workspaceID = id
            }
            if caller.role == .member {
                guard role == .member else { throw HostError(.forbidden, "a member key makes member keys only") }
                guard workspaceID == nil || workspaceID == caller.workspaceID else {
                    throw HostError(.notFound, "no workspace '\(body.workspace ?? "")'")
                }
                workspaceID = caller.workspaceID
            }
            guard (body.expiresInDays ?? 1) > 0 else { throw HostError(.badRequest, "expires_in_days must be positive") }
            let now = Timestamp.ms(Date())
            let made = try await keys.create(
                name: body.name ?? "\(role.rawValue)-key", role: role, workspaceID: workspaceID,
                expiresAt: body.expiresInDays.map { now + Int64($0) * 86_400_000 }, nowMs: now)
            return JSONResponse.make(.created, try made.shown())
        }
        routes.delete("/keys/:id", .area(.keys, workspace: .own)) { _, context -> Response in
            let caller = try KeyRoutes.caller()
            let id = context.parameters.get("id") ?? ""
            guard let key = try await keys.key(id: id), caller.role != .member || key.workspaceID == caller.workspaceID else {
                throw HostError(.notFound, "no key '\(id)'")
            }
            let revoked = try await keys.revoke(id: key.id, nowMs: Timestamp.ms(Date())) ?? key
            return JSONResponse.raw(.ok, try JSONCoding.text(revoked, pretty: false))
        }
    }

    /// The request's key (the access middleware let it in).
    static func caller() throws -> APIKey {
        guard let key = RequestIdentity.key else { throw HostError(.unauthorized, "a valid API key is required") }
        return key
    }
}
