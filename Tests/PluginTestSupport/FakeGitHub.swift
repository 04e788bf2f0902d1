import Foundation
import GitHubPlugin
import HTTPClient
import TenkiCrypto
import TestSupport

/// A wall clock the test moves by hand.
/// Unchecked Sendable: `current` is touched only under `lock`.
package final class ManualClock: @unchecked Sendable {
    private let lock = NSLock()
    private var current: Date

    package init(_ start: Date) { current = start }

    package var now: Date { lock.withLock { current } }

    package func advance(seconds: Double) { lock.withLock { current += seconds } }
}

/// `Tests/TestSupport/peers/fake_github.py` started for one test, with the App's key pair.
package struct FakeGitHub {
    package static let appID = "424242"
    package let peer: PeerServer
    package let keys: TestRSAKeyPair
    package let http = HTTPClient()

    package init(owners: [String: Int64] = [:]) throws {
        keys = try TestRSAKeyPair.shared.get()
        var arguments = ["--app-id", Self.appID, "--public-key", keys.publicKeyPath]
        for (owner, installation) in owners { arguments += ["--owner", "\(owner)=\(installation)"] }
        peer = try PeerServer.start(script: "fake_github.py", arguments: arguments)
    }

    /// A client of the fake's App whose clock is `clock` (the fake's clock is set to match).
    package func client(clock: ManualClock? = nil, appID: String = FakeGitHub.appID, key: RSAPrivateKey? = nil) async throws -> GitHubAppClient {
        let key = try key ?? RSAPrivateKey(pem: keys.privateKeyPEM)
        let configuration = GitHubAppConfiguration(appID: appID, privateKey: key, apiBaseURL: peer.baseURL + "/")
        if let clock {
            try await setClock(clock.now)
            return GitHubAppClient(configuration: configuration, now: { clock.now })
        }
        return GitHubAppClient(configuration: configuration)
    }

    package func setClock(_ date: Date) async throws {
        try await control("POST", "/_fake/clock", ["now": Int(date.timeIntervalSince1970)])
    }

    package func configure(tokenTTLSeconds: Int? = nil, tokenDelayMilliseconds: Int? = nil) async throws {
        var body: [String: Any] = [:]
        if let tokenTTLSeconds { body["token_ttl_seconds"] = tokenTTLSeconds }
        if let tokenDelayMilliseconds { body["token_delay_ms"] = tokenDelayMilliseconds }
        try await control("POST", "/_fake/config", body)
    }

    /// What `GET /repos/{repository}/actions/jobs/{id}` answers (unset jobs are 404).
    package func setJob(_ repository: String, _ id: Int64, status: String, conclusion: String? = nil) async throws {
        var body: [String: Any] = ["status": status]
        if let conclusion { body["conclusion"] = conclusion }
        try await control("POST", "/_fake/jobs/\(repository)/\(id)", body)
    }

    /// Seeds a job with the REST API's fields (`status`, `run_id`, `labels`, `started_at`, ...),
    /// merged over what was set before; its run is listed by `GET .../actions/runs`.
    package func seedJob(_ repository: String, _ id: Int64, _ fields: [String: Any]) async throws {
        try await control("POST", "/_fake/jobs/\(repository)/\(id)", fields)
    }

    /// Adds attempts to `GET /app/hook/deliveries`; returns their ids.
    @discardableResult
    package func addDeliveries(_ deliveries: [[String: Any]]) async throws -> [Int] {
        let response = try await control("POST", "/_fake/deliveries", ["deliveries": deliveries])
        return (try JSONSerialization.jsonObject(with: Data(response.body)) as? [String: Any])?["ids"] as? [Int] ?? []
    }

    /// Smaller pages of deliveries, so a few of them already paginate.
    package func configure(deliveriesPageMax: Int) async throws {
        try await control("POST", "/_fake/config", ["deliveries_page_max": deliveriesPageMax])
    }

    package func revokeAllTokens() async throws { try await control("POST", "/_fake/revoke", [:]) }

    /// The requests among `requests` to exactly `path`.
    package static func apiRequests(_ requests: [[String: Any]], path: String) -> [[String: Any]] {
        requests.filter { ($0["path"] as? String) == path }
    }

    /// Every API request the fake saw, oldest first.
    package func requests() async throws -> [[String: Any]] {
        let response = try await http.get(peer.baseURL + "/_fake/requests")
        return try JSONSerialization.jsonObject(with: Data(response.body)) as? [[String: Any]] ?? []
    }

    /// How many installation tokens were asked for, per installation.
    package func tokenRequests(_ installation: Int64) async throws -> Int {
        let response = try await http.get(peer.baseURL + "/_fake/stats")
        let stats = try JSONSerialization.jsonObject(with: Data(response.body)) as? [String: Any]
        return (stats?["token_requests"] as? [String: Any])?[String(installation)] as? Int ?? 0
    }

    @discardableResult
    private func control(_ method: String, _ path: String, _ body: [String: Any]) async throws -> OutboundResponse {
        let response = try await http.send(
            OutboundRequest(
                method: method, url: peer.baseURL + path,
                body: Array(try JSONSerialization.data(withJSONObject: body))))
        guard response.status == 200 else { throw MissingDependency(description: "fake GitHub \(path): \(response.status) \(response.bodyText)") }
        return response
    }
}
