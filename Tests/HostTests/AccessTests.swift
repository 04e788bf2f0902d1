import Foundation
import HTTPTypes
import Host
import Hummingbird
import HummingbirdTesting
import TestSupport
import Testing

/// API keys and the roles' access rules, on the kernel's router with test routes.
@Suite("API keys and access")
struct AccessTests {
    static let now = Timestamp.ms(Date())

    static func bearer(_ token: String) -> HTTPFields { [.authorization: "Bearer \(token)"] }

    /// The kernel's router (no default key) plus routes of each kind of rule.
    static func router(_ host: TenkiHost, limiter: KeyRateLimiter? = nil) -> HostRouter {
        host.makeRouter(limiter: limiter) { routes in
            routes.get("/test/ws/:workspace/money", .area(.ledger, workspace: .path("workspace"))) { _, context in
                "money of \(context.parameters.get("workspace") ?? "")"
            }
            routes.post("/test/ws/:workspace/credits", .area(.credits, workspace: .path("workspace"))) { _, _ in "credited" }
            routes.get("/test/jobs", .area(.jobs, workspace: .query("workspace"))) { _, _ in "jobs" }
            routes.post("/test/workflows", .area(.workflows)) { _, _ in "started" }
            routes.router.get("/test/unruled") { _, _ in "no rule" }
        }
    }

    @Test("a key is tk_<id>_<secret>, shown once and stored as a hash; list and revoke", arguments: DriverKind.allCases)
    func keyStore(_ kind: DriverKind) async throws {
        let test = try TestDatabase.make(kind)
        let host = try await TestHosts.open(test, plugins: [])
        defer { withExtendedLifetime(host) {} }
        let made = try await host.apiKeys.create(name: "ci", role: .finance, workspaceID: nil, expiresAt: nil, nowMs: Self.now)
        #expect(made.token.hasPrefix("tk_\(made.key.id)_") && made.token.count == 3 + 12 + 1 + 32)
        let stored = try await host.database.query("SELECT * FROM api_keys")
        #expect(stored.count == 1)
        let row = try #require(stored.first)
        #expect(try row.string("secret_sha256").count == 64)
        #expect(!row.columns.contains { (try? row.string($0))?.contains(made.token.suffix(32)) == true })
        #expect(try await host.apiKeys.authenticate(made.token, nowMs: Self.now)?.role == .finance)
        // One wrong character, another id, a malformed token: nothing.
        var wrong = Array(made.token)
        wrong[wrong.count - 1] = wrong.last == "a" ? "b" : "a"
        for token in [String(wrong), "tk_aaaaaaaaaaaa_" + made.token.suffix(32), "tk_" + made.key.id, "", "Bearer " + made.token] {
            #expect(try await host.apiKeys.authenticate(token, nowMs: Self.now) == nil, "\(token)")
        }
        #expect(try await host.apiKeys.list().map(\.id) == [made.key.id])
        #expect(try await host.apiKeys.revoke(id: made.key.id, nowMs: Self.now + 1)?.revokedAt == Self.now + 1)
        #expect(try await host.apiKeys.authenticate(made.token, nowMs: Self.now + 2) == nil)

        let expiring = try await host.apiKeys.create(name: "short", role: .ops, workspaceID: nil, expiresAt: Self.now + 1_000, nowMs: Self.now)
        #expect(try await host.apiKeys.authenticate(expiring.token, nowMs: Self.now + 999) != nil)
        #expect(try await host.apiKeys.authenticate(expiring.token, nowMs: Self.now + 1_000) == nil)
        await #expect(throws: HostError.self) {
            try await host.apiKeys.create(name: "m", role: .member, workspaceID: nil, expiresAt: nil, nowMs: Self.now)
        }
        await #expect(throws: HostError.self) {
            try await host.apiKeys.create(name: "o", role: .ops, workspaceID: "ws-a", expiresAt: nil, nowMs: Self.now)
        }
        await host.database.close()
    }

    @Test("no key, a malformed, unknown, revoked or expired key: one 401 answer, the same for all")
    func unauthorized() async throws {
        let test = try TestDatabase.make(.sqlite)
        let host = try await TestHosts.open(test, plugins: [])
        let revoked = try await host.apiKeys.create(name: "r", role: .ops, workspaceID: nil, expiresAt: nil, nowMs: Self.now)
        try await host.apiKeys.revoke(id: revoked.key.id, nowMs: Self.now)
        let expired = try await host.apiKeys.create(name: "e", role: .ops, workspaceID: nil, expiresAt: Self.now + 1, nowMs: Self.now)
        try await Task.sleep(for: .milliseconds(5))
        try await Application(router: Self.router(host)).test(.router) { client in
            var answers: Set<String> = []
            let headers: [HTTPFields] = [
                [:], [.authorization: "Basic dXNlcjpwYXNz"], [.authorization: "Bearer"], Self.bearer("tk_nope"),
                Self.bearer("tk_aaaaaaaaaaaa_aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"), Self.bearer(revoked.token), Self.bearer(expired.token),
            ]
            for header in headers {
                try await client.execute(uri: "/test/ws/a/money", method: .get, headers: header) { response in
                    answers.insert(RouteAnswers.expectError(response, .unauthorized, "unauthorized"))
                }
            }
            #expect(answers.count == 1)
            // Open routes need nothing; /metrics needs a key unless the peer is this machine (not
            // known in-process, so a key is needed here).
            try await client.execute(uri: "/healthz", method: .get) { #expect($0.status == .ok) }
            try await client.execute(uri: "/metrics", method: .get) { RouteAnswers.expectError($0, .unauthorized, "unauthorized") }
        }
        await host.database.close()
    }

    @Test("roles: each reads and writes what its grants say; a route without a rule is ops-only")
    func roles() async throws {
        let test = try TestDatabase.make(.sqlite)
        let host = try await TestHosts.open(test, plugins: [])
        var tokens: [APIRole: String] = [:]
        for role in [APIRole.ops, .sales, .finance] {
            tokens[role] = try await host.apiKeys.create(name: role.rawValue, role: role, workspaceID: nil, expiresAt: nil, nowMs: Self.now).token
        }
        let cases: [(APIRole, String, HTTPRequest.Method, HTTPResponse.Status)] = [
            (.ops, "/test/ws/a/money", .get, .ok), (.ops, "/test/workflows", .post, .ok), (.ops, "/test/unruled", .get, .ok),
            (.finance, "/test/ws/a/money", .get, .ok), (.finance, "/test/ws/a/credits", .post, .ok), (.finance, "/test/workflows", .post, .forbidden),
            (.finance, "/test/jobs", .get, .forbidden), (.finance, "/test/unruled", .get, .forbidden),
            (.sales, "/test/ws/a/money", .get, .forbidden), (.sales, "/test/ws/a/credits", .post, .forbidden), (.sales, "/test/jobs", .get, .ok),
            (.sales, "/policies/status", .get, .ok), (.sales, "/metrics", .get, .forbidden), (.finance, "/metrics", .get, .forbidden),
        ]
        let keys = tokens
        try await Application(router: Self.router(host)).test(.router) { client in
            for (role, uri, method, status) in cases {
                try await client.execute(uri: uri, method: method, headers: Self.bearer(keys[role]!)) { response in
                    if status == .ok {
                        #expect(response.status == .ok, "\(role) \(method) \(uri): \(RouteAnswers.text(response))")
                    } else {
                        RouteAnswers.expectError(response, status, "forbidden")
                    }
                }
            }
        }
        await host.database.close()
    }

    @Test("a member key reaches its own workspace only: another's path or query answers 404, as a workspace that does not exist")
    func memberIsolation() async throws {
        let test = try TestDatabase.make(.sqlite)
        let host = try await TestHosts.open(test, plugins: [])
        let member = try await host.apiKeys.create(name: "a", role: .member, workspaceID: "ws-a", expiresAt: nil, nowMs: Self.now)
        try await Application(router: Self.router(host)).test(.router) { client in
            let auth = Self.bearer(member.token)
            try await client.execute(uri: "/test/ws/ws-a/money", method: .get, headers: auth) { response in
                #expect(RouteAnswers.text(response) == "money of ws-a")
            }
            try await client.execute(uri: "/test/jobs?workspace=ws-a", method: .get, headers: auth) { #expect($0.status == .ok) }
            for uri in ["/test/ws/ws-b/money", "/test/jobs?workspace=ws-b"] {
                try await client.execute(uri: uri, method: .get, headers: auth) { response in
                    #expect(RouteAnswers.expectError(response, .notFound, "not_found").contains("ws-b"))
                }
            }
            // What its role may not do at all is 403 in its own workspace too; a route about no workspace is 403.
            try await client.execute(uri: "/test/ws/ws-a/credits", method: .post, headers: auth) {
                RouteAnswers.expectError($0, .forbidden, "forbidden")
            }
            try await client.execute(uri: "/test/unruled", method: .get, headers: auth) { RouteAnswers.expectError($0, .forbidden, "forbidden") }
            try await client.execute(uri: "/test/jobs", method: .get, headers: auth) { RouteAnswers.expectError($0, .badRequest, "bad_request") }
        }
        // Its use is recorded (at most once a minute).
        try await Task.sleep(for: .milliseconds(200))
        #expect(try await host.apiKeys.key(id: member.key.id)?.lastUsedAt != nil)
        await host.database.close()
    }

    @Test("a key's token bucket: a burst, then one request per refill; the wait is rounded up to whole seconds")
    func bucket() {
        let limiter = KeyRateLimiter(perSecond: 2, burst: 3)
        let start: UInt64 = 1_000_000_000
        #expect((0..<3).map { _ in limiter.take("a", nowNanoseconds: start) } == [nil, nil, nil])
        #expect(limiter.take("a", nowNanoseconds: start) == 1)
        #expect(limiter.take("b", nowNanoseconds: start) == nil)  // another key, another bucket
        #expect(limiter.take("a", nowNanoseconds: start + 499_000_000) == 1)  // 0.998 of a token
        #expect(limiter.take("a", nowNanoseconds: start + 500_000_000) == nil)
        #expect(limiter.take("a", nowNanoseconds: start + 10_000_000_000) == nil)  // refilled to the burst, no more
        #expect((0..<2).map { _ in limiter.take("a", nowNanoseconds: start + 10_000_000_000) } == [nil, nil])
        #expect(limiter.take("a", nowNanoseconds: start + 10_000_000_000) == 1)
        let slow = KeyRateLimiter(perSecond: 1, burst: 1)
        #expect(slow.take("s", nowNanoseconds: start) == nil && slow.take("s", nowNanoseconds: start) == 1)
    }

    @Test("over its rate a key gets 429 with Retry-After, in the one error shape; other keys go on")
    func rateLimited() async throws {
        let test = try TestDatabase.make(.sqlite)
        let host = try await TestHosts.open(test, plugins: [])
        // A stopped clock: the bucket does not refill however slowly the requests come.
        let limiter = KeyRateLimiter(perSecond: 1, burst: 2) { 1_000_000_000 }
        let a = try await host.apiKeys.create(name: "a", role: .ops, workspaceID: nil, expiresAt: nil, nowMs: Self.now)
        let b = try await host.apiKeys.create(name: "b", role: .ops, workspaceID: nil, expiresAt: nil, nowMs: Self.now)
        try await Application(router: Self.router(host, limiter: limiter)).test(.router) { client in
            for _ in 0..<2 {
                try await client.execute(uri: "/test/jobs", method: .get, headers: Self.bearer(a.token)) { #expect($0.status == .ok) }
            }
            try await client.execute(uri: "/test/jobs", method: .get, headers: Self.bearer(a.token)) { response in
                RouteAnswers.expectError(response, .tooManyRequests, "rate_limited")
                #expect(response.headers[.retryAfter] == "1")
            }
            try await client.execute(uri: "/test/jobs", method: .get, headers: Self.bearer(b.token)) { #expect($0.status == .ok) }
        }
        await host.database.close()
    }

    @Test("CORS is off by default; on, an allowed origin's preflight is answered without a key and its answers carry the header")
    func cors() async throws {
        let off = try await TestHosts.open(try TestDatabase.make(.sqlite), plugins: [])
        let preflight: HTTPFields = [.origin: "https://app.example", .accessControlRequestMethod: "GET"]
        try await Application(router: Self.router(off)).test(.router) { client in
            try await client.execute(uri: "/test/jobs", method: .options, headers: preflight) { response in
                #expect(response.headers[.accessControlAllowOrigin] == nil && response.status != .noContent)
            }
        }
        await off.database.close()
        let host = try await TestHosts.open(try TestDatabase.make(.sqlite), plugins: []) { $0.corsAllowedOrigins = ["https://app.example"] }
        let key = try await host.apiKeys.create(name: "web", role: .ops, workspaceID: nil, expiresAt: nil, nowMs: Self.now)
        try await Application(router: Self.router(host)).test(.router) { client in
            try await client.execute(uri: "/test/jobs", method: .options, headers: preflight) { response in
                #expect(response.status == .noContent)
                #expect(response.headers[.accessControlAllowOrigin] == "https://app.example")
                #expect(response.headers[.accessControlAllowHeaders]?.contains("Authorization") == true)
            }
            var headers = Self.bearer(key.token)
            headers[.origin] = "https://app.example"
            try await client.execute(uri: "/test/jobs", method: .get, headers: headers) { response in
                #expect(response.status == .ok && response.headers[.accessControlAllowOrigin] == "https://app.example")
            }
            // An error answer carries it too (the page can read the 401); another origin gets none.
            try await client.execute(uri: "/test/jobs", method: .get, headers: [.origin: "https://app.example"]) { response in
                #expect(response.status == .unauthorized && response.headers[.accessControlAllowOrigin] == "https://app.example")
            }
            let evil: HTTPFields = [.origin: "https://evil.example", .accessControlRequestMethod: "GET"]
            try await client.execute(uri: "/test/jobs", method: .options, headers: evil) { #expect($0.headers[.accessControlAllowOrigin] == nil) }
        }
        await host.database.close()
    }

    @Test("keys over HTTP: ops makes a member key; the member lists and revokes its own workspace's keys only", arguments: DriverKind.allCases)
    func keyRoutes(_ kind: DriverKind) async throws {
        let test = try TestDatabase.make(kind)
        let host = try await TestHosts.open(test, plugins: [])
        let ops = try await host.apiKeys.create(name: "ops", role: .ops, workspaceID: nil, expiresAt: nil, nowMs: Self.now)
        let other = try await host.apiKeys.create(name: "b", role: .member, workspaceID: "ws-b", expiresAt: nil, nowMs: Self.now)
        host.workspaces.register { $0.hasPrefix("ws-") ? $0 : nil }  // as the runner plugin would: ws-* exist
        @Sendable func json(_ response: TestResponse) -> [String: Any] { RouteAnswers.json(response) as? [String: Any] ?? [:] }
        try await Application(router: Self.router(host)).test(.router) { client in
            let body = ByteBuffer(string: #"{"role":"member","workspace":"ws-a","name":"ci","expires_in_days":30}"#)
            var member = ""
            try await client.execute(uri: "/keys", method: .post, headers: Self.bearer(ops.token), body: body) { response in
                #expect(response.status == .created, "\(RouteAnswers.text(response))")
                member = json(response)["key"] as? String ?? ""
                #expect(json(response)["workspace_id"] as? String == "ws-a" && json(response)["expires_at"] is Int)
            }
            let auth = Self.bearer(member)
            // The member makes a second key of its own workspace, whatever workspace it names, and no other role.
            var second = ""
            try await client.execute(uri: "/keys", method: .post, headers: auth, body: ByteBuffer(string: #"{"role":"member","name":"laptop"}"#)) {
                #expect($0.status == .created)
                second = json($0)["id"] as? String ?? ""
            }
            try await client.execute(uri: "/keys", method: .post, headers: auth, body: ByteBuffer(string: #"{"role":"ops"}"#)) {
                RouteAnswers.expectError($0, .forbidden, "forbidden")
            }
            try await client.execute(uri: "/keys", method: .post, headers: auth, body: ByteBuffer(string: #"{"role":"member","workspace":"ws-b"}"#)) {
                RouteAnswers.expectError($0, .notFound, "not_found")
            }
            try await client.execute(uri: "/keys?workspace=ws-b", method: .get, headers: auth) { response in
                let listed = RouteAnswers.json(response) as? [[String: Any]] ?? []
                #expect(listed.count == 2 && listed.allSatisfy { $0["workspace_id"] as? String == "ws-a" && $0["key"] == nil })
            }
            try await client.execute(uri: "/keys/\(other.key.id)", method: .delete, headers: auth) {
                RouteAnswers.expectError($0, .notFound, "not_found")
            }
            try await client.execute(uri: "/keys/\(second)", method: .delete, headers: auth) { #expect(json($0)["revoked_at"] is Int) }
            try await client.execute(uri: "/keys", method: .get, headers: Self.bearer(ops.token)) {
                #expect((RouteAnswers.json($0) as? [[String: Any]])?.count == 4)
            }
        }
        #expect(try await host.apiKeys.key(id: other.key.id)?.revokedAt == nil)
        await host.database.close()
    }
}
