import Foundation
import Host
import Logging
import SQL

/// One attempt GitHub made to deliver a webhook of the App, as `GET /app/hook/deliveries`
/// lists it. Redeliveries are attempts of their own, with the `guid` (our delivery id) of the
/// original and `redelivery` true.
package struct GitHubHookDelivery: Decodable, Sendable, Equatable {
    package let id: Int64
    /// The `X-GitHub-Delivery` header of the attempt: the same for a delivery and its redeliveries.
    package let guid: String
    package let deliveredAt: String?
    package let redelivery: Bool
    /// Our answer's HTTP status; 0 when nothing answered (timeout, connection refused).
    package let statusCode: Int
    package let event: String
    package let action: String?
    package let installationID: Int64?
    package let repositoryID: Int64?

    package var succeeded: Bool { (200..<300).contains(statusCode) }

    package init(
        id: Int64, guid: String, deliveredAt: String? = nil, redelivery: Bool = false, statusCode: Int, event: String,
        action: String? = nil, installationID: Int64? = nil, repositoryID: Int64? = nil
    ) {
        self.id = id
        self.guid = guid
        self.deliveredAt = deliveredAt
        self.redelivery = redelivery
        self.statusCode = statusCode
        self.event = event
        self.action = action
        self.installationID = installationID
        self.repositoryID = repositoryID
    }

    enum CodingKeys: String, CodingKey {
        case id, guid, deliveredAt = "delivered_at", redelivery, statusCode = "status_code", event, action
        case installationID = "installation_id", repositoryID = "repository_id"
    }

    package init(from decoder: any Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        self.init(
            id: try c.decode(Int64.self, forKey: .id), guid: try c.decode(String.self, forKey: .guid),
            deliveredAt: try c.decodeIfPresent(String.self, forKey: .deliveredAt),
            redelivery: try c.decodeIfPresent(Bool.self, forKey: .redelivery) ?? false,
            statusCode: try c.decodeIfPresent(Int.self, forKey: .statusCode) ?? 0, event: try c.decode(String.self, forKey: .event),
            action: try c.decodeIfPresent(String.self, forKey: .action),
            installationID: try c.decodeIfPresent(Int64.self, forKey: .installationID),
            repositoryID: try c.decodeIfPresent(Int64.self, forKey: .repositoryID))
    }
}

/// Limits of recovering failed deliveries, each with its unit in its name.
package enum HookDeliveryLimits {
    /// GitHub's largest page of `GET /app/hook/deliveries`.
    package static let pageMaxItems = 100
    /// Pages read per sweep, newest first (GitHub keeps about 3 days of deliveries).
    package static let sweepMaxPages = 10
    /// Redeliveries asked for per sweep.
    package static let sweepMaxRedeliveries = 100
}

extension GitHubAppClient {
    /// The App's webhook deliveries, newest first, following the `Link: rel="next"` cursor for
    /// at most `maxPages` pages. Authenticated as the App (JWT), as GitHub requires.
    package func hookDeliveries(maxPages: Int = HookDeliveryLimits.sweepMaxPages) async throws -> [GitHubHookDelivery] {
        var path = "/app/hook/deliveries?per_page=\(HookDeliveryLimits.pageMaxItems)"
        var deliveries: [GitHubHookDelivery] = []
        for _ in 0..<max(1, maxPages) {
            let response = try await appRequest(method: "GET", path: path)
            deliveries += try response.decode([GitHubHookDelivery].self, method: "GET", path: path)
            guard let query = GitHubAppClient.nextPageQuery(response.headers) else { break }
            path = "/app/hook/deliveries?" + query
        }
        return deliveries
    }

    /// Asks GitHub to deliver an attempt's payload again (`POST /app/hook/deliveries/{id}/attempts`, 202).
    package func redeliverHookDelivery(_ id: Int64) async throws {
        _ = try await appRequest(method: "POST", path: "/app/hook/deliveries/\(id)/attempts")
    }

    /// The query of the `rel="next"` URL of a `Link` header; nil on the last page. Only the query
    /// is kept, so the next call goes to the configured API root whatever host the link names.
    static func nextPageQuery(_ headers: [(name: String, value: String)]) -> String? {
        guard let link = headers.first(where: { $0.name.lowercased() == "link" })?.value else { return nil }
        for part in link.split(separator: ",") {
            let fields = part.split(separator: ";").map { $0.trimmingCharacters(in: .whitespaces) }
            guard fields.count >= 2, fields.dropFirst().contains(where: { $0 == "rel=\"next\"" }),
                fields[0].hasPrefix("<"), fields[0].hasSuffix(">")
            else { continue }
            let url = fields[0].dropFirst().dropLast()
            guard let question = url.firstIndex(of: "?") else { return nil }
            let query = String(url[url.index(after: question)...])
            let allowed = query.allSatisfy { $0.isASCII && ($0.isLetter || $0.isNumber || "-_.~%=&+".contains($0)) }
            return allowed && !query.isEmpty ? query : nil
        }
        return nil
    }
}

/// GitHub does not resend a failed delivery by itself: this asks for each one once. A failed
/// delivery is redelivered unless an attempt with its guid succeeded, one of its attempts is
/// already a redelivery (asked for once, by us or by hand), or we have stored its guid.
package struct FailedDeliveryRecovery: Sendable {
    package let client: GitHubAppClient
    package let database: any Database
    package let logger: Logger

    package init(client: GitHubAppClient, database: any Database, logger: Logger) {
        self.client = client
        self.database = database
        self.logger = logger
    }

    /// What one pass found and did.
    package struct Outcome: Codable, Sendable, Equatable {
        /// Attempts listed by GitHub.
        package var listed = 0
        /// Guids none of whose attempts succeeded.
        package var failed = 0
        /// Failed guids we have stored anyway (the failure came after we committed it).
        package var alreadyStored = 0
        package var redelivered = 0
        package var failures = 0

        package init() {}

        enum CodingKeys: String, CodingKey {
            case listed, failed, alreadyStored = "already_stored", redelivered, failures
        }
    }

    /// Lists the App's deliveries and asks for the redelivery of every one that needs it.
    package func run() async throws -> Outcome {
        var outcome = Outcome()
        let deliveries = try await client.hookDeliveries()
        outcome.listed = deliveries.count
        let failedGuids = Set(deliveries.map(\.guid)).subtracting(deliveries.filter(\.succeeded).map(\.guid))
        outcome.failed = failedGuids.count
        let stored = try await storedGuids(failedGuids)
        outcome.alreadyStored = stored.count
        for delivery in FailedDeliveryRecovery.toRedeliver(deliveries, stored: stored).prefix(HookDeliveryLimits.sweepMaxRedeliveries) {
            do {
                try await client.redeliverHookDelivery(delivery.id)
                outcome.redelivered += 1
                logger.notice(
                    "asked GitHub to redeliver a failed delivery",
                    metadata: [
                        "delivery": "\(delivery.guid)", "attempt": "\(delivery.id)", "event": "\(delivery.event)",
                        "status_code": "\(delivery.statusCode)",
                    ])
            } catch {
                outcome.failures += 1
                logger.error("redelivery request failed", metadata: ["delivery": "\(delivery.guid)", "error": "\(error)"])
            }
        }
        return outcome
    }

    /// The latest failed attempt of every guid that needs a redelivery, oldest first.
    package static func toRedeliver(_ deliveries: [GitHubHookDelivery], stored: Set<String>) -> [GitHubHookDelivery] {
        var attempts: [String: [GitHubHookDelivery]] = [:]
        for delivery in deliveries { attempts[delivery.guid, default: []].append(delivery) }
        return attempts.compactMap { guid, attempts -> GitHubHookDelivery? in
            guard !stored.contains(guid), !attempts.contains(where: { $0.succeeded || $0.redelivery }) else { return nil }
            return attempts.max { $0.id < $1.id }
        }.sorted { $0.id < $1.id }
    }

    private func storedGuids(_ guids: Set<String>) async throws -> Set<String> {
        var found: Set<String> = []
        let all = Array(guids)
        for start in stride(from: 0, to: all.count, by: 100) {
            let batch = all[start..<min(start + 100, all.count)]
            let list = placeholders(batch.count)
            let rows = try await database.query(
                "SELECT delivery_id FROM github_deliveries WHERE delivery_id IN (\(list))",
                batch.map { .text($0) })
            for row in rows { found.insert(try row.string("delivery_id")) }
        }
        return found
    }
}
