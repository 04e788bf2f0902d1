import Foundation
import Host
import SQL

/// A GitHub webhook event decoded from its payload: the fields the host acts on, with the
/// whole payload still available on the bus event. Fields GitHub may omit are optional.
public enum GitHubEvent: Sendable {
    case ping(Ping)
    case installation(Installation)
    case installationRepositories(InstallationRepositories)
    case workflowJob(WorkflowJob)
    case workflowRun(WorkflowRun)
    case push(Push)
    /// An event type the host does not act on (still stored and dispatched).
    case other(type: String)

    public struct Account: Codable, Sendable, Equatable {
        public let id: Int64
        public let login: String
        public let type: String?
    }

    public struct InstallationRef: Codable, Sendable, Equatable {
        public let id: Int64
        public let account: Account?
        public let appId: Int64?
        public let targetType: String?
        public let suspendedAt: String?
    }

    public struct Repository: Codable, Sendable, Equatable {
        public let id: Int64
        public let name: String
        public let fullName: String
        public let `private`: Bool?
        public let owner: Account?
    }

    public struct Ping: Codable, Sendable {
        public let zen: String?
        public let hookId: Int64?
    }

    public struct Installation: Codable, Sendable {
        public let action: String
        public let installation: InstallationRef
        public let repositories: [RepositoryRef]?
        public let sender: Account?
    }

    public struct RepositoryRef: Codable, Sendable, Equatable {
        public let id: Int64
        public let name: String
        public let fullName: String
        public let `private`: Bool?
    }

    public struct InstallationRepositories: Codable, Sendable {
        public let action: String
        public let installation: InstallationRef
        public let repositoriesAdded: [RepositoryRef]
        public let repositoriesRemoved: [RepositoryRef]
    }

    public struct WorkflowJob: Codable, Sendable {
        public let action: String
        public let workflowJob: Job
        public let repository: Repository
        public let installation: InstallationRef?
        public let organization: Account?

        public struct Job: Codable, Sendable, Equatable {
            public let id: Int64
            public let runId: Int64
            public let runAttempt: Int?
            public let name: String
            public let workflowName: String?
            public let headBranch: String?
            public let headSha: String?
            public let status: String
            public let conclusion: String?
            public let labels: [String]
            public let createdAt: String?
            public let startedAt: String?
            public let completedAt: String?
            public let runnerName: String?
            public let runnerGroupName: String?
        }
    }

    public struct WorkflowRun: Codable, Sendable {
        public let action: String
        public let workflowRun: Run
        public let repository: Repository
        public let installation: InstallationRef?

        public struct Run: Codable, Sendable, Equatable {
            public let id: Int64
            public let name: String?
            public let status: String?
            public let conclusion: String?
            public let runAttempt: Int?
            public let headBranch: String?
            public let event: String?
        }
    }

    public struct Push: Codable, Sendable {
        public let ref: String
        public let before: String?
        public let after: String?
        public let created: Bool?
        public let deleted: Bool?
        public let repository: Repository
        public let installation: InstallationRef?
    }

    /// Decodes a GitHub event from its type (`X-GitHub-Event`) and raw payload.
    public static func decode(type: String, payload: [UInt8]) throws -> GitHubEvent {
        let decoder = JSONDecoder()
        decoder.keyDecodingStrategy = .convertFromSnakeCase
        let data = Data(payload)
        switch type {
        case "ping": return .ping(try decoder.decode(Ping.self, from: data))
        case "installation": return .installation(try decoder.decode(Installation.self, from: data))
        case "installation_repositories":
            return .installationRepositories(try decoder.decode(InstallationRepositories.self, from: data))
        case "workflow_job": return .workflowJob(try decoder.decode(WorkflowJob.self, from: data))
        case "workflow_run": return .workflowRun(try decoder.decode(WorkflowRun.self, from: data))
        case "push": return .push(try decoder.decode(Push.self, from: data))
        default: return .other(type: type)
        }
    }

    /// A subscription that hands `handler` the typed event, decoded outside any transaction,
    /// and runs the returned writes in the transaction that records the event as handled.
    public static func subscription(name: String, topics: [String], committed: (@Sendable () -> Void)? = nil,
                                    handler: @escaping @Sendable (GitHubEvent, Event) throws -> @Sendable (any SQLConnection) throws -> Void)
        -> EventSubscription
    {
        EventSubscription(name: name, source: GitHubPlugin.eventSource, topics: topics, committed: committed, handler: .prepared { event in
            try handler(try decode(event), event)
        })
    }

    /// Decodes a bus event produced by the GitHub plugin.
    public static func decode(_ event: Event) throws -> GitHubEvent {
        try decode(type: event.type, payload: event.payload)
    }
}
