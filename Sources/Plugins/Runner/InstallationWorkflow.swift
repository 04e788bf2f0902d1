import Foundation
import GitHubPlugin
import Host
import SQL

/// The long-running workflow of one GitHub App installation (docs/RUNNER.md),
/// id `installation:<id>`: it takes the signals the `installation` and
/// `installation_repositories` webhooks send, in the order they came, and applies each in one
/// transaction (exactly once) with the same writes as before. `Uninstall` ends it (the workspace
/// stays); it continues as new every `signalsPerRun` signals, so an installation that lives for
/// years keeps a short history. The state `installation` shows where it stands.
package enum InstallationWorkflow {
    package static let type = "runner.installation"
    /// Signals one run takes before it continues as new (each adds 3 records to its history).
    package static let signalsPerRun = 100

    /// A signal's writes are retried (a transient database error must not lose it): 1 s doubling
    /// to 5 min, 30 attempts (about 2 h) before the run fails.
    static let applyRetry = WorkflowRetryPolicy(
        initialInterval: .seconds(1), backoffCoefficient: 2, maximumInterval: .seconds(300),
        maximumAttempts: 30)

    package static func id(_ installationID: Int64) -> String { "installation:\(installationID)" }

    /// `installation.created` (and `new_permissions_accepted`) → Install, `deleted` → Uninstall,
    /// `suspend` → Suspend, `unsuspend` → Unsuspend (back to active; added to the first
    /// four), `installation_repositories.added` → AddRepositories, `removed` → RemoveRepositories.
    package enum Signal: String, CaseIterable, Sendable {
        case install = "Install", uninstall = "Uninstall", suspend = "Suspend", unsuspend = "Unsuspend"
        case addRepositories = "AddRepositories", removeRepositories = "RemoveRepositories"

        /// The installation's status once the signal is applied (nil: unchanged).
        var status: String? {
            switch self {
            case .install, .unsuspend: return "active"
            case .uninstall: return "deleted"
            case .suspend: return "suspended"
            case .addRepositories, .removeRepositories: return nil
            }
        }
    }

    /// What a signal carries: the webhook's facts.
    package struct Change: Codable, Sendable, Equatable {
        package var account: GitHubEvent.Account?
        package var added: [Repository]
        package var removed: [Int64]
    }

    package struct Repository: Codable, Sendable, Equatable {
        package let id: Int64
        package let fullName: String
    }

    /// A run's input: what the previous run handed over.
    package struct Input: Codable, Sendable, Equatable {
        package var installationID: Int64
        package var status: String?
        /// Signals applied by every run so far.
        package var signalsApplied: Int

        package init(installationID: Int64, status: String?, signalsApplied: Int) {
            self.installationID = installationID
            self.status = status
            self.signalsApplied = signalsApplied
        }
    }

    /// The signal one webhook sends: to which installation, which signal, with what.
    package struct Delivery: Sendable, Equatable {
        package let installationID: Int64
        package let signal: Signal
        package let change: Change
    }

    static func delivery(_ event: GitHubEvent) throws -> Delivery? {
        switch event {
        case .installation(let payload):
            let installation = payload.installation
            guard let account = installation.account else { throw HostError(.internal, "installation \(installation.id) without an account") }
            let signal: Signal
            switch payload.action {
            case "deleted": signal = .uninstall
            case "suspend": signal = .suspend
            case "unsuspend": signal = .unsuspend
            default: signal = .install
            }
            let repositories = payload.action == "created" ? (payload.repositories ?? []).map { Repository(id: $0.id, fullName: $0.fullName) } : []
            return Delivery(installationID: installation.id, signal: signal, change: Change(account: account, added: repositories, removed: []))
        case .installationRepositories(let payload):
            let change = Change(
                account: payload.installation.account,
                added: payload.repositoriesAdded.map { Repository(id: $0.id, fullName: $0.fullName) },
                removed: payload.repositoriesRemoved.map(\.id))
            return Delivery(
                installationID: payload.installation.id, signal: payload.action == "removed" ? .removeRepositories : .addRepositories,
                change: change)
        default:
            return nil
        }
    }

    /// Signal-with-start in the subscriber's transaction; the webhook's delivery id is the
    /// request id, so a redelivered webhook applies nothing twice. Once an uninstall has been
    /// applied, only a new install starts a run again: a late event of the uninstalled
    /// installation (GitHub does not order deliveries) is dropped instead of starting a fresh
    /// run that would wait for signals forever. Returns whether a signal was sent.
    @discardableResult
    static func send(_ delivery: Delivery, requestID: String, client: any WorkflowClient, _ db: any SQLConnection) throws -> Bool {
        if delivery.signal != .install, try RunnerStore.installationStatus(delivery.installationID, db) == Signal.uninstall.status {
            return false
        }
        _ = try client.signalWithStart(
            in: db, type: type, id: id(delivery.installationID),
            input: try WorkflowJSON.encode(Input(installationID: delivery.installationID, status: nil, signalsApplied: 0)),
            signal: delivery.signal.rawValue, payload: try WorkflowJSON.encode(delivery.change), requestID: requestID)
        return true
    }

    /// The workflow; `applied` is called after each signal's writes commit (to wake the scheduler).
    static func definition(signalsPerRun: Int = signalsPerRun, applied: @escaping @Sendable () -> Void) -> WorkflowDefinition {
        precondition(signalsPerRun >= 1 && signalsPerRun * 3 < WorkflowLimits.maxStepsPerRun, "bad signalsPerRun")
        return WorkflowDefinition(type: type, input: Input.self) { ctx, input async throws -> Input in
            var state = input
            for _ in 0..<signalsPerRun {
                guard let taken = try await ctx.signal(anyOf: Signal.allCases.map(\.rawValue), as: Change.self),
                    let signal = Signal(rawValue: taken.name)
                else { continue }
                let installationID = state.installationID
                let change = taken.value
                let status = try await ctx.transaction(signal.rawValue, retry: applyRetry) { db -> String? in
                    try apply(signal, change, installationID: installationID, db)
                }
                applied()
                state.status = status ?? state.status
                state.signalsApplied += 1
                try await ctx.setState("installation", state)
                if signal == .uninstall { return state }
            }
            try await ctx.continueAsNew(state)
        }
    }

    /// The writes of one signal (those the subscriber used to make itself); returns the
    /// installation's status after them.
    static func apply(_ signal: Signal, _ change: Change, installationID: Int64, _ db: any SQLConnection) throws -> String? {
        let repositories = change.added.map { ($0.id, $0.fullName) }
        if let status = signal.status, let account = change.account {
            let before = try RunnerStore.installationStatus(installationID, db)
            let workspace = try RunnerStore.ensureWorkspace(db, accountID: account.id, login: account.login)
            try RunnerStore.upsertInstallation(
                db, id: installationID, workspaceID: workspace, login: account.login, type: account.type, status: status)
            if status == "active" && before != nil && before != "active" { try JobStore.releaseBlocked(db, installationID: installationID) }
        } else if try RunnerStore.workspace(ofInstallation: installationID, db) == nil {
            _ = try RunnerPlugin.implicitWorkspace(db, installationID: installationID, account: change.account)
        }
        try RunnerStore.setRepositories(db, installationID: installationID, added: repositories, removed: change.removed)
        return try RunnerStore.installationStatus(installationID, db)
    }
}
