import Foundation
import HTTPClient
import Host
import TenkiCrypto

/// A GitHub App's client over libcurl: the App JWT (RS256), installation access tokens cached
/// until shortly before they expire, calls as an installation, and just-in-time runner
/// configurations.
///
/// Guarantees: at most one token request per installation is in flight (concurrent callers
/// share it); a cached token is never handed out within
/// `GitHubAppLimits.installationTokenRefreshMarginSeconds` of its expiry by `now`; a 401 on a
/// cached token drops it and retries once with a fresh one. Every HTTP exchange runs on the
/// HTTP client's own threads, so callers only suspend.
package final class GitHubAppClient: Sendable {
    package let configuration: GitHubAppConfiguration
    /// `User-Agent` of every call (GitHub refuses calls without one).
    package let userAgent: String
    private let http: HTTPClient
    private let now: @Sendable () -> Date
    private let tokens = InstallationTokenCache()

    /// `now` is the wall clock, injectable so tests move time instead of sleeping.
    package init(configuration: GitHubAppConfiguration, http: HTTPClient? = nil, now: @escaping @Sendable () -> Date = { Date() }) {
        GitHubAppLimits.assertRelations()
        self.configuration = configuration
        self.userAgent = "tenki-host (GitHub App \(configuration.appID))"
        self.http =
            http
            ?? HTTPClient(
                maxConcurrentRequests: GitHubAppLimits.maxConcurrentRequests,
                maxResponseBytes: GitHubAppLimits.responseMaxBytes, userAgent: "tenki-host")
        self.now = now
    }

    /// The client for the host's configured App, or nil when `github_app_id` is unset.
    package static func configured(_ configuration: HostConfiguration, http: HTTPClient? = nil) throws -> GitHubAppClient? {
        try GitHubAppConfiguration.from(configuration).map { GitHubAppClient(configuration: $0, http: http) }
    }

    // MARK: App authentication

    /// A JWT that authenticates as the App: `iat` = now − 60 s, `exp` = now + 9 min, `iss` = the App id.
    package func appJWT() throws -> String {
        let seconds = Int64(now().timeIntervalSince1970.rounded(.down))
        return try JWT.rs256(
            claims: [
                "iat": .integer(seconds - GitHubAppLimits.jwtBackdateSeconds),
                "exp": .integer(seconds + GitHubAppLimits.jwtLifetimeSeconds),
                "iss": .string(configuration.appID),
            ], key: configuration.privateKey)
    }

    /// A call authenticated as the App itself (`Authorization: Bearer <JWT>`), e.g. `GET /app`
    /// or `GET /repos/{owner}/{repo}/installation`. Non-2xx answers throw `GitHubAPIError`.
    package func appRequest(method: String, path: String, body: [UInt8]? = nil) async throws -> GitHubAPIResponse {
        let response = try await send(method: method, path: path, authorization: "Bearer " + appJWT(), body: body)
        try Self.check(response, method: method, path: path)
        return response
    }

    // MARK: Installation tokens

    /// A token for `installationID`: the cached one while it has more than the refresh margin
    /// left, otherwise a new one from `POST /app/installations/{id}/access_tokens`.
    package func installationToken(_ installationID: Int64) async throws -> GitHubInstallationToken {
        try await installationTokenAndFreshness(installationID).token
    }

    private func installationTokenAndFreshness(_ installationID: Int64) async throws -> (token: GitHubInstallationToken, fetched: Bool) {
        try await tokens.token(installationID, now: now, margin: GitHubAppLimits.installationTokenRefreshMarginSeconds) {
            try await self.fetchInstallationToken(installationID)
        }
    }

    private struct AccessTokenAnswer: Decodable {
        let token: String
        let expires_at: String
    }

    private func fetchInstallationToken(_ installationID: Int64) async throws -> GitHubInstallationToken {
        let path = "/app/installations/\(installationID)/access_tokens"
        let response = try await appRequest(method: "POST", path: path)
        let answer = try response.decode(AccessTokenAnswer.self, method: "POST", path: path)
        guard let expiresAt = try? Date.ISO8601FormatStyle().parse(answer.expires_at), !answer.token.isEmpty else {
            throw GitHubAPIError(
                kind: .unexpectedResponse, status: response.status,
                message: "token without a usable expires_at ('\(answer.expires_at)')", method: "POST", path: path)
        }
        return GitHubInstallationToken(installationID: installationID, token: answer.token, expiresAt: expiresAt)
    }

    // MARK: Calls as an installation

    /// A call as the installation (`Authorization: token <installation token>`). `body` is JSON.
    /// A 401 with a cached token drops it and retries once with a new one; any other non-2xx
    /// answer (or a second 401) throws `GitHubAPIError` with GitHub's status and message.
    package func request(
        installation installationID: Int64, method: String, path: String, body: [UInt8]? = nil
    ) async throws
        -> GitHubAPIResponse
    {
        let (token, fetched) = try await installationTokenAndFreshness(installationID)
        var response = try await send(method: method, path: path, authorization: "token " + token.token, body: body)
        if response.status == 401 && !fetched {
            // Revoked or expired early (e.g. the installation's permissions changed): one more try, fresh.
            await tokens.invalidate(installationID, token: token.token)
            let (fresh, _) = try await installationTokenAndFreshness(installationID)
            response = try await send(method: method, path: path, authorization: "token " + fresh.token, body: body)
        }
        try Self.check(response, method: method, path: path)
        return response
    }

    /// `request` with an `Encodable` body.
    package func request<Body: Encodable>(
        installation installationID: Int64, method: String, path: String, json: Body
    ) async throws
        -> GitHubAPIResponse
    {
        return try await request(installation: installationID, method: method, path: path, body: Array(try JSONCoding.encoder().encode(json)))
    }

    // MARK: Just-in-time runners

    private struct JITRequest: Encodable {
        let name: String
        let runner_group_id: Int64
        let labels: [String]
        let work_folder: String
    }

    private struct JITAnswer: Decodable {
        struct Runner: Decodable {
            let id: Int64
            let name: String
        }
        let runner: Runner
        let encoded_jit_config: String
    }

    /// Registers a just-in-time runner for the organisation or repository and returns its id
    /// and one-time configuration (`POST .../actions/runners/generate-jitconfig`).
    package func jitRunnerConfig(
        installation installationID: Int64, scope: GitHubRunnerScope, name: String, labels: [String],
        runnerGroupID: Int64 = 1, workFolder: String = "_work"
    ) async throws -> GitHubJITRunnerConfig {
        guard !name.isEmpty, name.count <= GitHubAppLimits.runnerNameMaxCharacters else {
            throw GitHubAPIError.invalidArgument("runner name must have 1 to \(GitHubAppLimits.runnerNameMaxCharacters) characters")
        }
        guard (1...GitHubAppLimits.jitMaxLabels).contains(labels.count), labels.allSatisfy({ !$0.isEmpty }) else {
            throw GitHubAPIError.invalidArgument("a runner needs 1 to \(GitHubAppLimits.jitMaxLabels) non-empty labels; got \(labels.count)")
        }
        guard runnerGroupID > 0 else { throw GitHubAPIError.invalidArgument("runner group id must be positive") }
        let path = try scope.pathPrefix() + "/actions/runners/generate-jitconfig"
        let response = try await request(
            installation: installationID, method: "POST", path: path,
            json: JITRequest(name: name, runner_group_id: runnerGroupID, labels: labels, work_folder: workFolder))
        let answer = try response.decode(JITAnswer.self, method: "POST", path: path)
        guard !answer.encoded_jit_config.isEmpty else {
            throw GitHubAPIError(kind: .unexpectedResponse, status: response.status, message: "empty encoded_jit_config", method: "POST", path: path)
        }
        return GitHubJITRunnerConfig(runnerID: answer.runner.id, runnerName: answer.runner.name, encodedJITConfig: answer.encoded_jit_config)
    }

    private struct RunnerList: Decodable {
        struct Runner: Decodable {
            let id: Int64
            let name: String
        }
        let runners: [Runner]
    }

    /// Unregisters the self-hosted runner `name` in `scope` (`GET …/actions/runners?name=` then
    /// `DELETE …/actions/runners/{id}`); returns whether there was one. Frees a name registered
    /// by an attempt that died before it kept the runner's configuration.
    @discardableResult
    package func removeRunner(installation installationID: Int64, scope: GitHubRunnerScope, name: String) async throws -> Bool {
        guard !name.isEmpty, name.count <= GitHubAppLimits.runnerNameMaxCharacters,
            name.allSatisfy({ $0.isASCII && ($0.isLetter || $0.isNumber || $0 == "-" || $0 == "_" || $0 == ".") })
        else {
            throw GitHubAPIError.invalidArgument("runner name '\(name)' is not a plain name")
        }
        let prefix = try scope.pathPrefix() + "/actions/runners"
        let listPath = prefix + "?name=" + name
        let list = try await request(installation: installationID, method: "GET", path: listPath)
        guard let runner = try list.decode(RunnerList.self, method: "GET", path: listPath).runners.first(where: { $0.name == name }) else {
            return false
        }
        _ = try await request(installation: installationID, method: "DELETE", path: prefix + "/\(runner.id)")
        return true
    }

    /// The brief's form: `org`, or `repo` as `owner/name`.
    package func jitRunnerConfig(
        installation installationID: Int64, org: String?, repo: String?, name: String, labels: [String],
        runnerGroupID: Int64 = 1, workFolder: String = "_work"
    ) async throws -> GitHubJITRunnerConfig {
        try await jitRunnerConfig(
            installation: installationID, scope: try GitHubRunnerScope(org: org, repo: repo), name: name,
            labels: labels, runnerGroupID: runnerGroupID, workFolder: workFolder)
    }

    // MARK: HTTP

    private func send(method: String, path: String, authorization: String, body: [UInt8]?) async throws -> GitHubAPIResponse {
        guard path.hasPrefix("/"), !path.contains("..") else { throw GitHubAPIError.invalidArgument("path must start with '/': '\(path)'") }
        var headers: [(name: String, value: String)] = [
            ("Accept", "application/vnd.github+json"),
            ("X-GitHub-Api-Version", "2022-11-28"),
            ("User-Agent", userAgent),
            ("Authorization", authorization),
        ]
        if body != nil { headers.append(("Content-Type", "application/json")) }
        let response = try await http.send(
            OutboundRequest(
                method: method, url: configuration.apiBaseURL + path, headers: headers,
                // POST with no body still sends an empty one, as GitHub expects for access_tokens.
                body: body ?? (method == "GET" || method == "DELETE" ? nil : []),
                timeoutMilliseconds: GitHubAppLimits.requestTimeoutMilliseconds, caBundlePath: configuration.caBundlePath))
        return GitHubAPIResponse(status: response.status, headers: response.headers, body: response.body)
    }

    private struct ErrorAnswer: Decodable {
        let message: String?
        let documentation_url: String?
    }

    /// Throws GitHub's own status and message for anything outside 2xx.
    static func check(_ response: GitHubAPIResponse, method: String, path: String) throws {
        guard !(200..<300).contains(response.status) else { return }
        let answer = try? JSONDecoder().decode(ErrorAnswer.self, from: Data(response.body))
        let message = answer?.message ?? String(decoding: response.body.prefix(GitHubAppLimits.errorBodyExcerptBytes), as: UTF8.self)
        throw GitHubAPIError(
            kind: .status, status: response.status, message: message, documentationURL: answer?.documentation_url,
            method: method, path: path)
    }

    /// One path segment: a GitHub login or repository name (letters, digits, `-`, `_`, `.`).
    static func pathSegment(_ name: String, _ what: String) throws -> String {
        let valid =
            (1...GitHubAppLimits.nameMaxCharacters).contains(name.count) && name != "." && name != ".."
            && name.allSatisfy { $0.isASCII && ($0.isLetter || $0.isNumber || $0 == "-" || $0 == "_" || $0 == ".") }
        guard valid else { throw GitHubAPIError.invalidArgument("\(what) '\(name)' is not a GitHub name") }
        return name
    }
}

/// Installation tokens by installation: ready ones, and fetches in flight that later callers join.
actor InstallationTokenCache {
    private enum Entry {
        case ready(GitHubInstallationToken)
        case fetching(Task<GitHubInstallationToken, any Error>)
    }

    private var entries: [Int64: Entry] = [:]

    /// The cached token while more than `margin` seconds remain by `now`; otherwise the result of
    /// the fetch in flight, or of a new one. `fetched` tells whether this call waited for a fetch.
    func token(
        _ installationID: Int64, now: @Sendable () -> Date, margin: Double,
        fetch: @escaping @Sendable () async throws -> GitHubInstallationToken
    ) async throws -> (token: GitHubInstallationToken, fetched: Bool) {
        switch entries[installationID] {
        case .ready(let token) where token.expiresAt.timeIntervalSince(now()) > margin:
            return (token, false)
        case .fetching(let task):
            return (try await task.value, true)
        case .ready, nil:
            let task = Task { try await fetch() }
            entries[installationID] = .fetching(task)
            do {
                let token = try await task.value
                if case .fetching(let current) = entries[installationID], current == task { entries[installationID] = .ready(token) }
                return (token, true)
            } catch {
                if case .fetching(let current) = entries[installationID], current == task { entries[installationID] = nil }
                throw error
            }
        }
    }

    /// Drops the cached token if it is still `token` (a newer one stays).
    func invalidate(_ installationID: Int64, token: String) {
        if case .ready(let cached) = entries[installationID], cached.token == token { entries[installationID] = nil }
    }
}
