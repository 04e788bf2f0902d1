import Foundation
import HTTPClient

/// Limits of the Kubernetes client, each with its unit in its name.
package enum KubernetesLimits {
    /// Bytes of an unexpected response body quoted in an error.
    package static let errorBodyExcerptBytes = 200
    /// Whole-request timeout of one API call.
    package static let requestTimeoutMilliseconds = 30_000
    /// Largest response body read (one Pod is a few KB).
    package static let responseMaxBytes = 4 << 20
    /// API calls in flight at once per client.
    package static let maxConcurrentRequests = 16
    /// Longest bearer token read from a token file.
    package static let tokenFileMaxBytes = 64 * 1024
    /// DNS-1123 names (Pods) and label values.
    package static let podNameMaxCharacters = 253
    package static let labelValueMaxCharacters = 63
}

/// Where the API server is and how to authenticate to it.
package struct KubernetesConfiguration: Sendable {
    package enum Credential: Sendable {
        case token(String)
        /// Re-read on every call: projected service-account tokens rotate underneath us.
        case tokenFile(String)
    }

    /// In-cluster service-account files.
    package static let serviceAccountDirectory = "/var/run/secrets/kubernetes.io/serviceaccount"

    /// `https://host:port`, without a trailing slash.
    package var apiServerURL: String
    package var credential: Credential
    /// PEM CA bundle of the API server; nil trusts the system's.
    package var caFile: String?
    package var namespace: String

    package init(apiServerURL: String, credential: Credential, caFile: String?, namespace: String) {
        var base = apiServerURL
        while base.hasSuffix("/") { base.removeLast() }
        self.apiServerURL = base
        self.credential = credential
        self.caFile = caFile
        self.namespace = namespace
    }

    /// From the host's keys: a missing token or CA file falls back to the in-cluster service
    /// account's, which is what a Pod running `tenki` has.
    package static func resolve(apiServerURL: String, tokenFile: String?, caFile: String?, namespace: String) -> KubernetesConfiguration {
        KubernetesConfiguration(
            apiServerURL: apiServerURL,
            credential: .tokenFile(tokenFile ?? serviceAccountDirectory + "/token"),
            caFile: caFile ?? serviceAccountDirectory + "/ca.crt", namespace: namespace)
    }
}

/// A failed Kubernetes API call: the API's status code, `reason` and `message`, or what was
/// wrong before anything was sent.
package struct KubernetesError: Error, CustomStringConvertible, Sendable {
    /// The HTTP status; 0 when nothing was answered.
    package let status: Int
    /// Kubernetes' machine reason: `AlreadyExists`, `NotFound`, `Invalid`, `Unauthorized`, `Forbidden`, ...
    /// or `BadRequest` / `BadCredential` / `UnexpectedResponse` for our own refusals.
    package let reason: String
    package let message: String
    package let operation: String

    package var description: String { "kubernetes \(operation): \(status == 0 ? "" : "\(status) ")\(reason): \(message)" }
}

/// A Pod's lifecycle phase, as `status.phase` reports it.
package enum KubernetesPodPhase: String, Sendable {
    case pending = "Pending", running = "Running", succeeded = "Succeeded", failed = "Failed", unknown = "Unknown"
}

/// The parts of a Pod the runner provider needs.
package struct KubernetesPod: Sendable, Equatable {
    package let name: String
    package let namespace: String
    package let phase: KubernetesPodPhase
    package let labels: [String: String]
    /// Set once deletion has begun.
    package let deleting: Bool
}

/// A Kubernetes REST client over libcurl, for the Pods of one namespace, authenticated with a
/// bearer token. Each call runs on the HTTP client's own threads; callers only suspend.
package final class KubernetesClient: Sendable {
    package let configuration: KubernetesConfiguration
    private let http: HTTPClient

    package init(configuration: KubernetesConfiguration, http: HTTPClient? = nil) {
        self.configuration = configuration
        self.http =
            http
            ?? HTTPClient(
                maxConcurrentRequests: KubernetesLimits.maxConcurrentRequests,
                maxResponseBytes: KubernetesLimits.responseMaxBytes, userAgent: "tenki-host")
    }

    private var podsPath: String { "/api/v1/namespaces/\(configuration.namespace)/pods" }
    private var secretsPath: String { "/api/v1/namespaces/\(configuration.namespace)/secrets" }

    /// Creates the Opaque Secret `name` with `stringData` and `labels`, or replaces it when one
    /// of that name exists (409 → PUT): afterwards it holds exactly these values.
    package func applySecret(_ name: String, stringData: [String: String], labels: [String: String] = [:]) async throws {
        let checked = try Self.checkedName(name, operation: "apply secret")
        let secret: [String: Any] = [
            "apiVersion": "v1", "kind": "Secret", "type": "Opaque",
            "metadata": ["name": checked, "labels": labels], "stringData": stringData,
        ]
        let body = Array(try JSONSerialization.data(withJSONObject: secret, options: [.sortedKeys]))
        let created = try await send("POST", secretsPath, body: body, operation: "create secret \(name)")
        if created.status == 201 || created.status == 200 || created.status == 202 { return }
        guard created.status == 409 else { throw Self.failure(created, operation: "create secret \(name)") }
        let replaced = try await send("PUT", secretsPath + "/" + checked, body: body, operation: "replace secret \(name)")
        guard replaced.status == 200 || replaced.status == 201 else { throw Self.failure(replaced, operation: "replace secret \(name)") }
    }

    /// The decoded values of the Secret `name`, or nil when there is none.
    package func secretData(_ name: String) async throws -> [String: String]? {
        let path = secretsPath + "/" + (try Self.checkedName(name, operation: "get secret"))
        let response = try await send("GET", path, body: nil, operation: "get secret \(name)")
        if response.status == 404 { return nil }
        guard response.status == 200 else { throw Self.failure(response, operation: "get secret \(name)") }
        let object = (try? JSONSerialization.jsonObject(with: Data(response.body))) as? [String: Any]
        var values: [String: String] = [:]
        for (key, value) in (object?["data"] as? [String: String]) ?? [:] {
            guard let bytes = Data(base64Encoded: value) else {
                throw KubernetesError(
                    status: 200, reason: "BadResponse", message: "secret \(name) key \(key) is not base64", operation: "get secret \(name)")
            }
            values[key] = String(decoding: bytes, as: UTF8.self)
        }
        return values
    }

    /// Deletes the Secret `name`; false when it was already gone (404).
    @discardableResult
    package func deleteSecret(_ name: String) async throws -> Bool {
        let path = secretsPath + "/" + (try Self.checkedName(name, operation: "delete secret"))
        let response = try await send("DELETE", path, body: nil, operation: "delete secret \(name)")
        if response.status == 404 { return false }
        guard response.status == 200 || response.status == 202 else { throw Self.failure(response, operation: "delete secret \(name)") }
        return true
    }

    /// Creates the Pod described by `manifest` (JSON, e.g. from `runnerPodManifest`) in the
    /// configured namespace. A name already taken throws `KubernetesError` with reason `AlreadyExists` (409).
    @discardableResult
    package func createPod(_ manifest: [UInt8]) async throws -> KubernetesPod {
        let response = try await send("POST", podsPath, body: manifest, operation: "create pod")
        guard response.status == 201 || response.status == 200 || response.status == 202 else {
            throw Self.failure(response, operation: "create pod")
        }
        return try Self.pod(from: response, operation: "create pod")
    }

    /// The Pod named `name`, or nil when there is none.
    package func getPod(_ name: String) async throws -> KubernetesPod? {
        let path = podsPath + "/" + (try Self.checkedName(name, operation: "get pod"))
        let response = try await send("GET", path, body: nil, operation: "get pod \(name)")
        if response.status == 404 { return nil }
        guard response.status == 200 else { throw Self.failure(response, operation: "get pod \(name)") }
        return try Self.pod(from: response, operation: "get pod \(name)")
    }

    /// Deletes the Pod named `name`. Returns false when it was already gone (404), which is
    /// not an error: deleting is idempotent.
    @discardableResult
    package func deletePod(_ name: String, gracePeriodSeconds: Int? = nil) async throws -> Bool {
        var path = podsPath + "/" + (try Self.checkedName(name, operation: "delete pod"))
        if let gracePeriodSeconds { path += "?gracePeriodSeconds=\(max(0, gracePeriodSeconds))" }
        let response = try await send("DELETE", path, body: nil, operation: "delete pod \(name)")
        if response.status == 404 { return false }
        guard response.status == 200 || response.status == 202 else { throw Self.failure(response, operation: "delete pod \(name)") }
        return true
    }

    // MARK: HTTP

    private func bearerToken(operation: String) throws -> String {
        switch configuration.credential {
        case .token(let token):
            return token
        case .tokenFile(let path):
            guard let handle = FileHandle(forReadingAtPath: path) else {
                throw KubernetesError(status: 0, reason: "BadCredential", message: "cannot read token file '\(path)'", operation: operation)
            }
            defer { try? handle.close() }
            let data = (try? handle.read(upToCount: KubernetesLimits.tokenFileMaxBytes + 1)) ?? Data()
            let token = String(decoding: data, as: UTF8.self).trimmingCharacters(in: .whitespacesAndNewlines)
            guard !token.isEmpty, data.count <= KubernetesLimits.tokenFileMaxBytes else {
                throw KubernetesError(
                    status: 0, reason: "BadCredential", message: "token file '\(path)' is empty or too large",
                    operation: operation)
            }
            return token
        }
    }

    private func send(_ method: String, _ path: String, body: [UInt8]?, operation: String) async throws -> OutboundResponse {
        var headers: [(name: String, value: String)] = [
            ("Authorization", "Bearer " + (try bearerToken(operation: operation))),
            ("Accept", "application/json"),
        ]
        if body != nil { headers.append(("Content-Type", "application/json")) }
        return try await http.send(
            OutboundRequest(
                method: method, url: configuration.apiServerURL + path, headers: headers, body: body,
                timeoutMilliseconds: KubernetesLimits.requestTimeoutMilliseconds,
                caBundlePath: configuration.caFile))
    }

    private struct StatusAnswer: Decodable {
        let reason: String?
        let message: String?
    }

    /// The API's `Status` object (`reason`, `message`) as an error.
    static func failure(_ response: OutboundResponse, operation: String) -> KubernetesError {
        let status = try? JSONDecoder().decode(StatusAnswer.self, from: Data(response.body))
        return KubernetesError(
            status: response.status, reason: status?.reason ?? "HTTP\(response.status)",
            message: status?.message ?? String(decoding: response.body.prefix(KubernetesLimits.errorBodyExcerptBytes), as: UTF8.self),
            operation: operation)
    }

    private struct PodAnswer: Decodable {
        struct Metadata: Decodable {
            let name: String
            let namespace: String?
            let labels: [String: String]?
            let deletionTimestamp: String?
        }
        struct Status: Decodable { let phase: String? }
        let kind: String?
        let metadata: Metadata
        let status: Status?
    }

    static func pod(from response: OutboundResponse, operation: String) throws -> KubernetesPod {
        guard let answer = try? JSONDecoder().decode(PodAnswer.self, from: Data(response.body)), answer.kind == nil || answer.kind == "Pod" else {
            throw KubernetesError(
                status: response.status, reason: "UnexpectedResponse", message: "the answer is not a Pod",
                operation: operation)
        }
        return KubernetesPod(
            name: answer.metadata.name, namespace: answer.metadata.namespace ?? "",
            phase: answer.status?.phase.flatMap(KubernetesPodPhase.init(rawValue:)) ?? .pending,
            labels: answer.metadata.labels ?? [:], deleting: answer.metadata.deletionTimestamp != nil)
    }

    /// A DNS-1123 subdomain, as Kubernetes requires of a Pod name (and as a URL path segment needs).
    static func checkedName(_ name: String, operation: String) throws -> String {
        guard isDNSSubdomain(name) else {
            throw KubernetesError(
                status: 0, reason: "BadRequest", message: "'\(name)' is not a valid Pod name (DNS-1123 subdomain)",
                operation: operation)
        }
        return name
    }

    static func isDNSSubdomain(_ name: String) -> Bool {
        guard (1...KubernetesLimits.podNameMaxCharacters).contains(name.count) else { return false }
        let alphanumeric: (Character) -> Bool = { $0.isASCII && ($0.isLowercase || $0.isNumber) }
        guard let first = name.first, let last = name.last, alphanumeric(first), alphanumeric(last) else { return false }
        return name.allSatisfy { alphanumeric($0) || $0 == "-" || $0 == "." }
    }
}
