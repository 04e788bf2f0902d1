import Foundation
import Host
import LedgerPlugin
import Logging
import SQL
import WorkflowPlugin

/// Grants and revocations as finance asks for them (`tenki credits`, `/billing/workspaces/{w}/credits`):
/// each is one signal-with-start to the workspace's `BillingPromotionalCreditsWorkflow` under a
/// new credit id (the signal's request id, so a retried submission is taken once). The desk then
/// works that workflow type itself, up to `settleWaitMilliseconds`, and answers with what the
/// workflow did: applied, refused, or still queued (another process holds the run, or this one
/// has `workflow_worker = false`: the server applies it). Working it here is safe next to a
/// running server: runs are claimed under leases, and only this one type is claimed.
package struct PromoCreditDesk: Sendable {
    /// How long a submission waits for its outcome before answering "queued".
    package static let settleWaitMilliseconds = 30_000
    /// The pause between looks while another process holds the run.
    static let settlePollMilliseconds = 50

    let database: any Database
    let ledger: LedgerStore
    /// The host's engine: submissions signal through it.
    let engine: WorkflowEngine
    /// The host's catalog (for the billing queue's declared limit).
    let catalog: WorkflowCatalog
    let definition: WorkflowDefinition
    /// false: this process executes no workflows, so it only waits for the server.
    let works: Bool
    let leaseSeconds: Int
    let logger: Logger

    init(context: HostContext, ledger: LedgerStore, engine: WorkflowEngine) {
        database = context.database
        self.ledger = ledger
        self.engine = engine
        catalog = context.workflows
        definition = BillingCredits.definition(ledger: ledger)
        works = context.configuration.workflowWorker
        leaseSeconds = context.configuration.workflowLeaseSeconds
        logger = context.logger
    }

    /// What became of a submitted credit.
    package enum Outcome: Sendable, Equatable {
        /// Stored and posted (or stored and posted by an earlier submission of the same id).
        case applied(PromoCredits.Entry, availableMicros: Int64)
        /// Refused by the workflow (a revocation above what is available): nothing stored or posted.
        case refused(BillingCredits.Action)
        /// Signalled, not applied yet: the workflow worker of a running server applies it.
        case queued(creditID: String)
    }

    /// Sends one grant (`add`) or revocation (`deduct`) and waits for what the workflow did.
    package func submit(_ signal: BillingCredits.Signal, workspace: String, _ request: BillingCredits.Request) async throws -> Outcome {
        _ = try request.validatedMicros()
        _ = try await engine.signalWithStart(
            type: BillingCredits.workflowType, input: try WorkflowJSON.encode(BillingCredits.Input(workspaceID: workspace)),
            id: BillingCredits.workflowID(workspace: workspace), signal: signal.rawValue, payload: try WorkflowJSON.encode(request),
            requestID: "credit:" + request.creditID)
        return try await settle(workspace: workspace, creditID: request.creditID)
    }

    /// Works credits workflows (this type only, one run at a time) until the credit's outcome
    /// is known or the wait is over.
    func settle(workspace: String, creditID: String) async throws -> Outcome {
        let deadline = ContinuousClock.now + .milliseconds(PromoCreditDesk.settleWaitMilliseconds)
        let worker = works ? creditsWorker() : nil
        while true {
            if let outcome = try await outcome(workspace: workspace, creditID: creditID) { return outcome }
            if ContinuousClock.now >= deadline { return .queued(creditID: creditID) }
            if let worker, try await worker.runOnce() > 0 { continue }
            try await Task.sleep(for: .milliseconds(PromoCreditDesk.settlePollMilliseconds))
        }
    }

    /// An engine that claims only credits workflows, under the billing queue's declared limit.
    func creditsWorker() -> WorkflowEngine {
        let only = WorkflowCatalog()
        only.register(definition)
        if let queue = catalog.queues.first(where: { $0.name == BillingCredits.taskQueue }) { only.register(queue) }
        return WorkflowEngine(database: database, catalog: only, leaseSeconds: leaseSeconds, concurrency: 1, logger: logger)
    }

    /// The credit's outcome once the workflow has taken its signal: its row and transfer, else
    /// its action in the workflow's state. A failed run is an error.
    func outcome(workspace: String, creditID: String) async throws -> Outcome? {
        let (entry, available) = try await database.read { db in
            (try PromoCredits.entry(db, id: creditID), try PromoCredits.available(db, workspace: workspace))
        }
        if let entry {
            guard entry.workspaceID == workspace else { throw HostError(.badRequest, "credit id \(creditID) belongs to another workspace") }
            // Applied once its transfer is posted too (the step right after the row's transaction).
            if try await !ledger.lookupTransfers([BillingCredits.transferID(creditID: creditID)]).isEmpty {
                return .applied(entry, availableMicros: available)
            }
        }
        let description = try await engine.describe(id: BillingCredits.workflowID(workspace: workspace))
        if description.run.status == .failed || description.run.status == .cancelled {
            throw HostError(.failed, "\(description.run.id) \(description.run.status.rawValue): \(description.run.error ?? "")")
        }
        guard let bytes = description.state.first(where: { $0.key == "credits" })?.value else { return nil }
        let state = try WorkflowJSON.decode(BillingCredits.Input.self, from: bytes, what: "the state of \(description.run.id)")
        guard let action = state.recent.last(where: { $0.creditID == creditID }) else { return nil }
        switch action.outcome {
        case .refused: return .refused(action)
        case .invalid: throw HostError(.badRequest, action.detail ?? "invalid credit")
        // Its row is read above (a duplicate's too): not there, or its transfer not posted yet.
        case .applied, .duplicate: return nil
        }
    }

    /// The workspace's credits, newest first, and what is available.
    package func list(workspace: String) async throws -> PromoCredits.Listing {
        try await database.read { db in
            let available = try PromoCredits.available(db, workspace: workspace)
            let rows = try db.query(
                "SELECT * FROM billing_promo_credits WHERE workspace_id = $1 ORDER BY created_at DESC, id LIMIT $2",
                [.text(workspace), .integer(Int64(HostLimits.listMaxRows))])
            return PromoCredits.Listing(
                workspaceID: workspace, availableMicros: available, available: ExactMoney.decimal(available),
                credits: try rows.map(PromoCredits.Entry.init(row:)))
        }
    }
}

extension PromoCredits {
    /// One row of `billing_promo_credits`, amounts as micro-cents and as exact dollars.
    package struct Entry: Codable, Sendable, Equatable {
        package let id: String
        package let workspaceID: String
        package let kind: String
        package let amountMicros: Int64
        package let amount: String
        package let reason: String
        package let initiatedBy: String
        package let createdAt: String

        enum CodingKeys: String, CodingKey {
            case id, workspaceID = "workspace_id", kind, amountMicros = "amount_micros", amount, reason, initiatedBy = "initiated_by"
            case createdAt = "created_at"
        }

        init(row: SQLRow) throws {
            id = try row.string("id")
            workspaceID = try row.string("workspace_id")
            kind = try row.string("kind")
            amountMicros = try row.int("amount_micros")
            amount = ExactMoney.decimal(amountMicros)
            reason = try row.string("reason")
            initiatedBy = try row.string("initiated_by")
            createdAt = Timestamp.iso(ms: try row.int("created_at"))
        }
    }

    /// A workspace's credits and what is available now.
    package struct Listing: Codable, Sendable, Equatable {
        package let workspaceID: String
        package let availableMicros: Int64
        package let available: String
        package let credits: [Entry]

        enum CodingKeys: String, CodingKey {
            case workspaceID = "workspace_id", availableMicros = "available_micros", available, credits
        }
    }

    static func entry(_ db: any SQLConnection, id: String) throws -> Entry? {
        try db.queryOne("SELECT * FROM billing_promo_credits WHERE id = $1", [.text(id)]).map(Entry.init(row:))
    }
}
