import Foundation
import Host
import TenkiCrypto

/// Limits and timings of the GitHub App client, each with its unit in its name.
package enum GitHubAppLimits {
    /// Bytes of an unexpected response body quoted in an error.
    package static let errorBodyExcerptBytes = 200
    /// GitHub refuses an App JWT whose `exp` is more than 10 minutes after `iat`'s "now".
    package static let jwtMaxLifetimeSeconds: Int64 = 600
    /// `iat` is backdated against clock drift between us and GitHub, as GitHub recommends.
    package static let jwtBackdateSeconds: Int64 = 60
    /// `exp` after now: under the 10 minutes, with room for drift the other way.
    package static let jwtLifetimeSeconds: Int64 = 540
    /// A cached installation token is replaced this long before its `expires_at` (tokens live 1 hour),
    /// so a token handed out still has time to be used.
    package static let installationTokenRefreshMarginSeconds: Double = 300
    /// GitHub's limits on a just-in-time runner: 1 to 100 labels, names up to 64 characters.
    package static let jitMaxLabels = 100
    package static let runnerNameMaxCharacters = 64
    /// Longest GitHub login, organisation or repository name (repositories: 100).
    package static let nameMaxCharacters = 100
    /// Whole-request timeout of one API call.
    package static let requestTimeoutMilliseconds = 30_000
    /// Largest response body read from the API.
    package static let responseMaxBytes = 8 << 20
    /// API calls in flight at once per client.
    package static let maxConcurrentRequests = 16

    static func assertRelations() {
        assert(jwtLifetimeSeconds + jwtBackdateSeconds <= jwtMaxLifetimeSeconds, "exp - iat must stay within GitHub's 10 minutes")
    }
}

/// Who the App is and where its API lives.
package struct GitHubAppConfiguration: Sendable {
    /// The App's numeric id or client id: the JWT's `iss`.
    package var appID: String
    package var privateKey: RSAPrivateKey
    /// API root without a trailing slash: `https://api.github.com`, GHES's `https://HOST/api/v3`, or a test peer.
    package var apiBaseURL: String
    /// PEM CA bundle for `apiBaseURL`; nil trusts the system's.
    package var caBundlePath: String?

    package init(appID: String, privateKey: RSAPrivateKey, apiBaseURL: String = "https://api.github.com", caBundlePath: String? = nil) {
        precondition(!appID.isEmpty, "a GitHub App id is required")
        var base = apiBaseURL
        while base.hasSuffix("/") { base.removeLast() }
        self.appID = appID
        self.privateKey = privateKey
        self.apiBaseURL = base
        self.caBundlePath = caBundlePath
    }

    /// Reads the private key from `privateKeyFile`; a missing, unreadable or bad key is a
    /// configuration error naming the file.
    package init(appID: String, privateKeyFile: String, apiBaseURL: String = "https://api.github.com", caBundlePath: String? = nil) throws {
        guard let pem = try? String(contentsOfFile: privateKeyFile, encoding: .utf8) else {
            throw HostError(.badConfiguration, "github_app_private_key_file: cannot read '\(privateKeyFile)'")
        }
        let key: RSAPrivateKey
        do {
            key = try RSAPrivateKey(pem: pem)
        } catch {
            throw HostError(.badConfiguration, "github_app_private_key_file '\(privateKeyFile)': \(error)")
        }
        self.init(appID: appID, privateKey: key, apiBaseURL: apiBaseURL, caBundlePath: caBundlePath)
    }

    /// The App configured in the host's configuration, or nil when `github_app_id` is unset.
    package static func from(_ configuration: HostConfiguration) throws -> GitHubAppConfiguration? {
        guard let appID = configuration.githubAppID else { return nil }
        guard let file = configuration.githubAppPrivateKeyFile else {
            throw HostError(.badConfiguration, "github_app_id is set but github_app_private_key_file is not")
        }
        return try GitHubAppConfiguration(
            appID: appID, privateKeyFile: file, apiBaseURL: configuration.githubAPIURL,
            caBundlePath: configuration.githubAPICAFile)
    }
}

/// An installation access token and when GitHub says it expires. Its description hides the token.
package struct GitHubInstallationToken: Sendable, Equatable, CustomStringConvertible {
    package let installationID: Int64
    package let token: String
    package let expiresAt: Date

    package init(installationID: Int64, token: String, expiresAt: Date) {
        self.installationID = installationID
        self.token = token
        self.expiresAt = expiresAt
    }

    package var description: String { "installation \(installationID) token (expires \(expiresAt))" }
}

/// Where a just-in-time runner registers: an organisation, or one repository.
package enum GitHubRunnerScope: Sendable, Equatable {
    case organization(String)
    case repository(owner: String, name: String)

    /// `org` alone, or `repo` as `owner/name` (with `org` nil or the same owner).
    package init(org: String?, repo: String?) throws {
        switch (org, repo) {
        case (let org?, nil):
            self = .organization(org)
        case (let org, let repo?):
            let parts = repo.split(separator: "/", omittingEmptySubsequences: false)
            if parts.count == 2, org == nil || org == String(parts[0]) {
                self = .repository(owner: String(parts[0]), name: String(parts[1]))
            } else if parts.count == 1, let org {
                self = .repository(owner: org, name: repo)
            } else {
                throw GitHubAPIError.invalidArgument("repo must be 'owner/name' (or a name with org as its owner); got '\(repo)'")
            }
        case (nil, nil):
            throw GitHubAPIError.invalidArgument("a runner needs an org or a repo")
        }
    }

    /// `/orgs/{org}` or `/repos/{owner}/{repo}`, each name checked against GitHub's characters.
    func pathPrefix() throws -> String {
        switch self {
        case .organization(let org):
            return "/orgs/" + (try GitHubAppClient.pathSegment(org, "org"))
        case .repository(let owner, let name):
            return "/repos/" + (try GitHubAppClient.pathSegment(owner, "owner")) + "/" + (try GitHubAppClient.pathSegment(name, "repo"))
        }
    }
}

/// What `generate-jitconfig` returns: the registered runner and its one-time configuration,
/// which the runner takes as `--jitconfig` (or `ACTIONS_RUNNER_INPUT_JITCONFIG`).
package struct GitHubJITRunnerConfig: Sendable, Equatable, CustomStringConvertible {
    package let runnerID: Int64
    package let runnerName: String
    package let encodedJITConfig: String

    package var description: String { "runner \(runnerID) '\(runnerName)' (jit config \(encodedJITConfig.utf8.count) bytes)" }
}

/// A GitHub API answer: its status and JSON body.
package struct GitHubAPIResponse: Sendable {
    package let status: Int
    package let headers: [(name: String, value: String)]
    package let body: [UInt8]

    /// The body decoded as `T`; a mismatch is an `unexpectedResponse` error.
    package func decode<T: Decodable>(_ type: T.Type, method: String, path: String) throws -> T {
        do {
            return try JSONDecoder().decode(type, from: Data(body))
        } catch {
            throw GitHubAPIError(
                kind: .unexpectedResponse, status: status, message: "cannot decode \(type): \(error)",
                method: method, path: path)
        }
    }

    /// The body as Foundation JSON (`[String: Any]`, `[Any]`, ...), nil when it is not JSON.
    package var json: Any? { body.isEmpty ? nil : try? JSONSerialization.jsonObject(with: Data(body), options: [.fragmentsAllowed]) }
}

/// A GitHub API call that did not succeed: GitHub's status and message, or what was wrong
/// with the call before it was sent or with the answer.
package struct GitHubAPIError: Error, CustomStringConvertible, Sendable {
    package enum Kind: String, Sendable {
        /// GitHub answered with a status outside 2xx.
        case status
        /// A 2xx answer whose body is not what the endpoint documents.
        case unexpectedResponse = "unexpected_response"
        /// The call itself was malformed (bad name, too many labels); nothing was sent.
        case invalidArgument = "invalid_argument"
    }

    package let kind: Kind
    /// GitHub's HTTP status; 0 when nothing was answered.
    package let status: Int
    /// GitHub's `message` (e.g. "Bad credentials"), or our own account of what went wrong.
    package let message: String
    package let documentationURL: String?
    package let method: String
    package let path: String

    package init(kind: Kind, status: Int, message: String, documentationURL: String? = nil, method: String, path: String) {
        self.kind = kind
        self.status = status
        self.message = message
        self.documentationURL = documentationURL
        self.method = method
        self.path = path
    }

    static func invalidArgument(_ message: String) -> GitHubAPIError {
        GitHubAPIError(kind: .invalidArgument, status: 0, message: message, method: "", path: "")
    }

    package var description: String {
        switch kind {
        case .status: return "GitHub \(method) \(path): \(status) \(message)"
        case .unexpectedResponse: return "GitHub \(method) \(path): unexpected \(status) response: \(message)"
        case .invalidArgument: return "GitHub API call refused before sending: \(message)"
        }
    }
}
