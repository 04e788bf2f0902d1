import Foundation
import Host
import SQL

/// A GitHub webhook event decoded from its payload: the fields the host acts on, with the
/// whole payload still available on the bus event. Fields GitHub may omit are optional.
package enum GitHubEvent: Sendable {
    case ping(Ping)
    case installation(Installation)
    case installationRepositories(InstallationRepositories)
    case workflowJob(WorkflowJob)
    case workflowRun(WorkflowRun)
    case push(Push)
    /// An event type the host does not act on (still stored and dispatched).
    case other(type: String)

    package struct Account: Codable, Sendable, Equatable {
        package let id: Int64
        package let login: String
        package let type: String?
    }

    package struct InstallationRef: Codable, Sendable, Equatable {
        package let id: Int64
        package let account: Account?
        package let appId: Int64?
        package let targetType: String?
        package let suspendedAt: String?
    }

    package struct Repository: Codable, Sendable, Equatable {
        package let id: Int64
        package let name: String
        package let fullName: String
        package let `private`: Bool?
        package let owner: Account?
    }

    package struct Ping: Codable, Sendable {
        package let zen: String?
        package let hookId: Int64?
    }

    package struct Installation: Codable, Sendable {
        package let action: String
        package let installation: InstallationRef
        package let repositories: [RepositoryRef]?
        package let sender: Account?
    }

    package struct RepositoryRef: Codable, Sendable, Equatable {
        package let id: Int64
        package let name: String
        package let fullName: String
        package let `private`: Bool?
    }

    package struct InstallationRepositories: Codable, Sendable {
        package let action: String
        package let installation: InstallationRef
        package let repositoriesAdded: [RepositoryRef]
        package let repositoriesRemoved: [RepositoryRef]
    }

    package struct WorkflowJob: Codable, Sendable {
        package let action: String
        package let workflowJob: Job
        package let repository: Repository
        package let installation: InstallationRef?
        package let organization: Account?

        package struct Job: Codable, Sendable, Equatable {
            package let id: Int64
            package let runId: Int64
            package let runAttempt: Int?
            package let name: String
            package let workflowName: String?
            package let headBranch: String?
            package let headSha: String?
            package let status: String
            package let conclusion: String?
            package let labels: [String]
            package let createdAt: String?
            package let startedAt: String?
            package let completedAt: String?
            package let runnerName: String?
            package let runnerGroupName: String?
        }
    }

    package struct WorkflowRun: Codable, Sendable {
        package let action: String
        package let workflowRun: Run
        package let repository: Repository
        package let installation: InstallationRef?

        package struct Run: Codable, Sendable, Equatable {
            package let id: Int64
            package let name: String?
            package let status: String?
            package let conclusion: String?
            package let runAttempt: Int?
            package let headBranch: String?
            package let event: String?
        }
    }

    package struct Push: Codable, Sendable {
        package let ref: String
        package let before: String?
        package let after: String?
        package let created: Bool?
        package let deleted: Bool?
        package let repository: Repository
        package let installation: InstallationRef?
    }

    /// Decodes a GitHub event from its type (`X-GitHub-Event`) and raw payload.
    package static func decode(type: String, payload: [UInt8]) throws -> GitHubEvent {
        let decoder = JSONDecoder()
        decoder.keyDecodingStrategy = .convertFromSnakeCase
        let data = Data(payload)
        switch type {
        case "ping": return .ping(try decoder.decode(Ping.self, from: data))
        case "installation": return .installation(try decoder.decode(Installation.self, from: data))
        case "installation_repositories":
            return .installationRepositories(try decoder.decode(InstallationRepositories.self, from: data))
        case "workflow_job":
            // The hot path (one per job event, payloads of 8–20 KB): read the few fields from the
            // validated bytes instead of decoding the whole document.
            if let job = try? WorkflowJob.scanned(payload) { return .workflowJob(job) }
            return .workflowJob(try decoder.decode(WorkflowJob.self, from: data))
        case "workflow_run": return .workflowRun(try decoder.decode(WorkflowRun.self, from: data))
        case "push": return .push(try decoder.decode(Push.self, from: data))
        default: return .other(type: type)
        }
    }

    /// A subscription that hands `handler` the typed event, decoded outside any transaction,
    /// and runs the returned writes in the transaction that records the event as handled.
    package static func subscription(
        name: String, topics: [String], committed: (@Sendable () -> Void)? = nil,
        handler: @escaping @Sendable (GitHubEvent, Event) throws -> @Sendable (any SQLConnection) throws -> Void
    )
        -> EventSubscription
    {
        EventSubscription(
            name: name, source: GitHubPlugin.eventSource, topics: topics, committed: committed,
            handler: .prepared { event in
                try handler(try decode(event), event)
            })
    }

    /// Decodes a bus event produced by the GitHub plugin.
    package static func decode(_ event: Event) throws -> GitHubEvent {
        try decode(type: event.type, payload: event.payload)
    }
}

extension GitHubEvent.WorkflowJob {
    /// Reads a `workflow_job` payload with `JSONScanner`; nil when a required field is missing
    /// or has another type (the caller then decodes it the general way, with its error).
    package static func scanned(_ payload: [UInt8]) throws -> GitHubEvent.WorkflowJob? {
        try payload.withUnsafeBytes { bytes -> GitHubEvent.WorkflowJob? in
            let root = ScannedObject(bytes: bytes, members: try JSONScanner.objectMembers(bytes))
            guard let action = root.string("action"), let job = try root.object("workflow_job"), let repo = try root.object("repository"),
                let id = job.integer("id"), let runID = job.integer("run_id"), let name = job.string("name"),
                let status = job.string("status"), let labels = try job.strings("labels"),
                let repoID = repo.integer("id"), let repoName = repo.string("name"), let fullName = repo.string("full_name")
            else { return nil }
            func account(_ object: ScannedObject?) -> GitHubEvent.Account? {
                guard let object, let id = object.integer("id"), let login = object.string("login") else { return nil }
                return GitHubEvent.Account(id: id, login: login, type: object.string("type"))
            }
            let installation = try root.object("installation").flatMap { object -> GitHubEvent.InstallationRef? in
                guard let id = object.integer("id") else { return nil }
                return GitHubEvent.InstallationRef(
                    id: id, account: account(try object.object("account")), appId: object.integer("app_id"),
                    targetType: object.string("target_type"), suspendedAt: object.string("suspended_at"))
            }
            return GitHubEvent.WorkflowJob(
                action: action,
                workflowJob: Job(
                    id: id, runId: runID, runAttempt: job.integer("run_attempt").map(Int.init), name: name,
                    workflowName: job.string("workflow_name"), headBranch: job.string("head_branch"),
                    headSha: job.string("head_sha"), status: status, conclusion: job.string("conclusion"), labels: labels,
                    createdAt: job.string("created_at"), startedAt: job.string("started_at"),
                    completedAt: job.string("completed_at"), runnerName: job.string("runner_name"),
                    runnerGroupName: job.string("runner_group_name")),
                repository: GitHubEvent.Repository(
                    id: repoID, name: repoName, fullName: fullName, private: repo.bool("private"),
                    owner: account(try repo.object("owner"))),
                installation: installation, organization: account(try root.object("organization")))
        }
    }
}

/// An object inside a validated JSON document: typed reads of its members (a member that is
/// absent, null or of another type reads as nil).
struct ScannedObject {
    let bytes: UnsafeRawBufferPointer
    let members: [JSONScanner.Member]

    func value(_ name: String) -> Range<Int>? { JSONScanner.member(name, in: members, bytes: bytes)?.value }
    func string(_ name: String) -> String? { value(name).flatMap { JSONScanner.string(at: $0, in: bytes) } }
    func integer(_ name: String) -> Int64? {
        guard let range = value(name), let first = range.first, bytes[first] == UInt8(ascii: "-") || (48...57).contains(bytes[first]) else {
            return nil
        }
        return JSONScanner.integer(at: range, in: bytes)
    }
    func bool(_ name: String) -> Bool? {
        guard let range = value(name) else { return nil }
        switch bytes[range.lowerBound] {
        case UInt8(ascii: "t"): return true
        case UInt8(ascii: "f"): return false
        default: return nil
        }
    }
    func object(_ name: String) throws -> ScannedObject? {
        guard let range = value(name), let members = try JSONScanner.members(of: range, in: bytes) else { return nil }
        return ScannedObject(bytes: bytes, members: members)
    }
    /// An array whose elements are all strings; nil otherwise.
    func strings(_ name: String) throws -> [String]? {
        guard let range = value(name), let elements = try JSONScanner.elements(of: range, in: bytes) else { return nil }
        var out: [String] = []
        for element in elements {
            guard let text = JSONScanner.string(at: element, in: bytes) else { return nil }
            out.append(text)
        }
        return out
    }
}
