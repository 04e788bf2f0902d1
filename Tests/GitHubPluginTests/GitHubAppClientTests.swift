import Foundation
import GitHubPlugin
import Host
import PluginTestSupport
import TenkiCrypto
import TestSupport
import Testing

@Suite("GitHub App client against a fake GitHub")
struct GitHubAppClientTests {
    static let start = Date(timeIntervalSince1970: 1_800_000_000)

    static func apiError(_ body: () async throws -> Void) async -> GitHubAPIError? {
        do {
            try await body()
            return nil
        } catch {
            return error as? GitHubAPIError
        }
    }

    @Test("the App JWT carries GitHub's claims, and the fake accepts its signature")
    func appJWTAccepted() async throws {
        let fake = try FakeGitHub()
        let clock = ManualClock(Self.start)
        let client = try await fake.client(clock: clock)
        let response = try await client.appRequest(method: "GET", path: "/app")
        #expect(response.status == 200)
        #expect((response.json as? [String: Any])?["slug"] as? String == "tenki-test")

        let seen = try #require(try await fake.requests().last)
        let claims = try #require(seen["jwt_claims"] as? [String: Any], "the fake verified the JWT and recorded its claims")
        let now = Int(Self.start.timeIntervalSince1970)
        #expect(claims["iss"] as? String == FakeGitHub.appID)
        #expect(claims["iat"] as? Int == now - 60)
        #expect(claims["exp"] as? Int == now + 540)
        let headers = try #require(seen["headers"] as? [String: String])
        #expect(headers["authorization"]?.hasPrefix("Bearer ey") == true)
        #expect(headers["accept"] == "application/vnd.github+json")
        #expect(headers["x-github-api-version"] == "2022-11-28")
        #expect(headers["user-agent"]?.contains("tenki-host") == true)
    }

    @Test("a JWT signed by another key, for another App or outside its time window is refused with GitHub's message")
    func badJWTsRefused() async throws {
        let fake = try FakeGitHub()
        let directory = try TemporaryDirectory.make(prefix: "tenki-otherkey")
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let other = try RSAPrivateKey(pem: TestRSAKeyPair.make(in: directory, format: .pkcs8).privateKeyPEM)

        let wrongKey = try await fake.client(clock: ManualClock(Self.start), key: other)
        let signature = await Self.apiError { _ = try await wrongKey.appRequest(method: "GET", path: "/app") }
        #expect(signature?.status == 401)
        #expect(signature?.message.contains("could not be decoded") == true)

        let wrongApp = try await fake.client(clock: ManualClock(Self.start), appID: "999")
        let issuer = await Self.apiError { _ = try await wrongApp.installationToken(1) }
        #expect(issuer?.status == 401 && issuer?.message.contains("iss") == true)

        // Our clock 11 minutes behind GitHub's: the JWT has already expired there.
        let late = ManualClock(Self.start)
        let lateClient = try await fake.client(clock: late)
        try await fake.setClock(Self.start + 660)
        let expired = await Self.apiError { _ = try await lateClient.appRequest(method: "GET", path: "/app") }
        #expect(expired?.status == 401 && expired?.message.contains("exp") == true)
        #expect(try await fake.requests().count == 3, "each refusal came from the fake")
    }

    @Test("an installation token is cached until shortly before it expires, then replaced")
    func tokenCachedUntilExpiry() async throws {
        let fake = try FakeGitHub()
        let clock = ManualClock(Self.start)
        let client = try await fake.client(clock: clock)
        let first = try await client.installationToken(7)
        #expect(first.token.hasPrefix("ghs_"))
        #expect(first.expiresAt == Self.start + 3600)
        #expect(try await client.installationToken(7) == first)
        #expect(try await fake.tokenRequests(7) == 1)

        // 301 s before expiry it is still good (the margin is 300 s).
        clock.advance(seconds: 3600 - 301)
        try await fake.setClock(clock.now)
        #expect(try await client.installationToken(7) == first)
        #expect(try await fake.tokenRequests(7) == 1)

        // 299 s before expiry it is replaced.
        clock.advance(seconds: 2)
        try await fake.setClock(clock.now)
        let second = try await client.installationToken(7)
        #expect(second.token != first.token)
        #expect(second.expiresAt == clock.now + 3600)
        #expect(try await fake.tokenRequests(7) == 2)

        // Another installation has its own token.
        let other = try await client.installationToken(8)
        #expect(other.token != second.token)
        #expect(try await fake.tokenRequests(8) == 1)
        #expect(try await client.installationToken(7) == second)
    }

    @Test("concurrent callers share one token request")
    func concurrentCallersShareOneFetch() async throws {
        let fake = try FakeGitHub()
        // Answer slowly so later callers arrive while the first request is in flight.
        try await fake.configure(tokenDelayMilliseconds: 300)
        let client = try await fake.client()
        let tokens = try await withThrowingTaskGroup(of: String.self) { group in
            for index in 0..<24 {
                group.addTask {
                    if index.isMultiple(of: 2) { return try await client.installationToken(9).token }
                    let response = try await client.jitRunnerConfig(
                        installation: 9, scope: .organization("acme"),
                        name: "runner-\(index)", labels: ["tenki-2c-4gb"])
                    return String(response.runnerID)
                }
            }
            return try await group.reduce(into: [String]()) { $0.append($1) }
        }
        #expect(tokens.count == 24)
        #expect(Set(tokens.filter { $0.hasPrefix("ghs_") }).count == 1, "every caller got the same token")
        #expect(try await fake.tokenRequests(9) == 1)
    }

    @Test("a 401 on a cached token drops it and retries once with a new one")
    func unauthorizedRetriesOnce() async throws {
        let fake = try FakeGitHub()
        let client = try await fake.client()
        let path = "/orgs/acme/actions/runners/generate-jitconfig"
        _ = try await client.jitRunnerConfig(installation: 5, scope: .organization("acme"), name: "r1", labels: ["tenki-2c-4gb"])
        let revoked = try await client.installationToken(5)
        try await fake.revokeAllTokens()

        let config = try await client.jitRunnerConfig(installation: 5, scope: .organization("acme"), name: "r2", labels: ["tenki-2c-4gb"])
        #expect(config.runnerName == "r2")
        #expect(try await fake.tokenRequests(5) == 2)
        let calls = FakeGitHub.apiRequests(try await fake.requests(), path: path)
        #expect(calls.count == 3, "r1, r2 refused with the revoked token, r2 again")
        let authorizations = calls.compactMap { ($0["headers"] as? [String: String])?["authorization"] }
        #expect(authorizations[1] == "token " + revoked.token)
        #expect(authorizations[2] != authorizations[1] && authorizations[2].hasPrefix("token ghs_"))
        #expect(try await client.installationToken(5) != revoked, "the new token replaced the revoked one in the cache")
    }

    @Test("a 401 on a token just fetched is an error, not a retry loop")
    func unauthorizedFreshTokenFails() async throws {
        let fake = try FakeGitHub()
        try await fake.configure(tokenTTLSeconds: 0)  // every token is born expired
        let client = try await fake.client()
        let error = await Self.apiError {
            _ = try await client.jitRunnerConfig(installation: 6, scope: .organization("acme"), name: "r", labels: ["x"])
        }
        #expect(error?.kind == .status && error?.status == 401 && error?.message == "Bad credentials")
        #expect(try await fake.tokenRequests(6) == 1)
    }

    @Test("jitconfig for an organisation sends GitHub's documented request")
    func jitConfigOrganization() async throws {
        let fake = try FakeGitHub()
        let client = try await fake.client()
        let config = try await client.jitRunnerConfig(
            installation: 11, scope: .organization("acme"), name: "tenki-job-1",
            labels: ["self-hosted", "tenki-4c-8gb"])
        #expect(config.runnerID >= 1000 && config.runnerName == "tenki-job-1")
        let decoded = try #require(Data(base64Encoded: config.encodedJITConfig))
        let inner = try JSONSerialization.jsonObject(with: decoded) as? [String: Any]
        #expect(inner?["scope"] as? String == "org:acme")
        #expect(inner?["runner_id"] as? Int == Int(config.runnerID))

        let call = try #require(FakeGitHub.apiRequests(try await fake.requests(), path: "/orgs/acme/actions/runners/generate-jitconfig").first)
        #expect(call["method"] as? String == "POST")
        let body = try #require(call["body"] as? [String: Any])
        #expect(body["name"] as? String == "tenki-job-1")
        #expect(body["runner_group_id"] as? Int == 1)
        #expect(body["labels"] as? [String] == ["self-hosted", "tenki-4c-8gb"])
        #expect(body["work_folder"] as? String == "_work")
        #expect(Set(body.keys) == ["name", "runner_group_id", "labels", "work_folder"])
        let headers = try #require(call["headers"] as? [String: String])
        #expect(headers["authorization"]?.hasPrefix("token ghs_") == true)
        #expect(headers["content-type"] == "application/json")
        #expect(headers["x-github-api-version"] == "2022-11-28")
    }

    @Test("jitconfig for a repository goes to the repository's endpoint with the given group and folder")
    func jitConfigRepository() async throws {
        let fake = try FakeGitHub()
        let client = try await fake.client()
        let config = try await client.jitRunnerConfig(
            installation: 12, org: nil, repo: "acme/widgets", name: "tenki-job-2",
            labels: ["tenki-2c-4gb"], runnerGroupID: 3, workFolder: "work")
        let inner = try JSONSerialization.jsonObject(with: try #require(Data(base64Encoded: config.encodedJITConfig))) as? [String: Any]
        #expect(inner?["scope"] as? String == "repo:acme/widgets")
        let call = try #require(
            FakeGitHub.apiRequests(try await fake.requests(), path: "/repos/acme/widgets/actions/runners/generate-jitconfig").first)
        let body = try #require(call["body"] as? [String: Any])
        #expect(body["runner_group_id"] as? Int == 3 && body["work_folder"] as? String == "work")
        #expect(body["labels"] as? [String] == ["tenki-2c-4gb"])
        #expect(try GitHubRunnerScope(org: "acme", repo: "widgets") == .repository(owner: "acme", name: "widgets"))
        #expect(try GitHubRunnerScope(org: "acme", repo: nil) == .organization("acme"))
        #expect(throws: GitHubAPIError.self) { try GitHubRunnerScope(org: "other", repo: "acme/widgets") }
    }

    @Test("GitHub's errors surface with their status and message; a malformed call is refused before sending")
    func errorsSurface() async throws {
        let fake = try FakeGitHub(owners: ["acme": 21])
        let client = try await fake.client()
        _ = try await client.jitRunnerConfig(installation: 21, scope: .organization("acme"), name: "dup", labels: ["x"])
        let duplicate = await Self.apiError {
            _ = try await client.jitRunnerConfig(installation: 21, scope: .organization("acme"), name: "dup", labels: ["x"])
        }
        #expect(duplicate?.kind == .status && duplicate?.status == 409)
        #expect(duplicate?.message == "Already exists - A runner with the name dup already exists.")
        #expect(duplicate?.path == "/orgs/acme/actions/runners/generate-jitconfig" && duplicate?.method == "POST")
        #expect(duplicate?.documentationURL == "https://docs.github.com/rest")

        let foreign = await Self.apiError {
            _ = try await client.jitRunnerConfig(installation: 22, scope: .organization("acme"), name: "r", labels: ["x"])
        }
        #expect(foreign?.status == 403 && foreign?.message == "Resource not accessible by integration")

        let missing = await Self.apiError { _ = try await client.installationToken(404) }
        #expect(missing?.status == 404 && missing?.path == "/app/installations/404/access_tokens")

        let before = try await fake.requests().count
        let noLabels = await Self.apiError {
            _ = try await client.jitRunnerConfig(installation: 21, scope: .organization("acme"), name: "r", labels: [])
        }
        #expect(noLabels?.kind == .invalidArgument)
        let badOrg = await Self.apiError {
            _ = try await client.jitRunnerConfig(installation: 21, scope: .organization("acme/../x"), name: "r", labels: ["x"])
        }
        #expect(badOrg?.kind == .invalidArgument)
        #expect(try await fake.requests().count == before, "nothing was sent for a malformed call")
    }

    @Test("the App is configured from github_app_id and github_app_private_key_file, and a bad key fails clearly")
    func configuration() throws {
        var host = HostConfiguration()
        #expect(try GitHubAppConfiguration.from(host) == nil)
        host.githubAppID = "123"
        #expect(throws: HostError.self) { try GitHubAppConfiguration.from(host) }

        let directory = try TemporaryDirectory.make(prefix: "tenki-appcfg")
        defer { try? FileManager.default.removeItem(atPath: directory) }
        host.githubAppPrivateKeyFile = directory + "/missing.pem"
        do {
            _ = try GitHubAppConfiguration.from(host)
            Issue.record("a missing key file must fail")
        } catch let error as HostError {
            #expect(error.code == .badConfiguration && error.message.contains("missing.pem"))
        }
        try "-----BEGIN RSA PRIVATE KEY-----\ngarbage\n-----END RSA PRIVATE KEY-----\n"
            .write(toFile: directory + "/bad.pem", atomically: true, encoding: .utf8)
        host.githubAppPrivateKeyFile = directory + "/bad.pem"
        do {
            _ = try GitHubAppConfiguration.from(host)
            Issue.record("a bad key file must fail")
        } catch let error as HostError {
            #expect(error.message.contains("bad.pem") && error.message.contains("bad_key"))
        }

        host.githubAppPrivateKeyFile = try TestRSAKeyPair.shared.get().privateKeyPath
        host.githubAPIURL = "https://github.example.com/api/v3"
        let app = try #require(try GitHubAppConfiguration.from(host))
        #expect(app.appID == "123" && app.apiBaseURL == "https://github.example.com/api/v3" && app.privateKey.bits == 2048)
    }
}
