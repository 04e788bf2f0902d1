import Foundation
import Host
import LedgerPlugin
import SQL

/// The long-lived promotional-credits workflow of one workspace (docs/PRODUCT.md §13), id
/// `billing-credits:<workspace>`, type `BillingPromotionalCreditsWorkflow` on
/// `BILLING_TASK_QUEUE`. It takes `AddPromotionalCredits` and `DeductPromotionalCredits` signals
/// in the order they came and applies each exactly once: the decision and the
/// `billing_promo_credits` row in one transaction recorded with the run (a credit id already
/// stored is a duplicate and changes nothing; a deduction above what is available is refused),
/// then the ledger transfer (3003 MARKETING_EXPENSE → USER, 3004 USER → MARKETING_EXPENSE) under
/// an id derived from the credit id, so a replay posts it once. It continues as new every
/// `signalsPerRun` signals; the state `credits` shows what is available and the last actions.
package enum BillingCredits {
    package static let workflowType = "BillingPromotionalCreditsWorkflow"
    /// Shared with the other billing workflows (docs/PRODUCT.md §12).
    package static let taskQueue = BillingWorkflows.taskQueue
    /// Signals one run takes before it continues as new (each adds 4 records to its history).
    package static let signalsPerRun = 100
    /// Actions the state `credits` keeps, newest last.
    package static let recentActionsKept = 20
    package static let creditIDMaxBytes = 100
    package static let reasonMaxCharacters = 500
    package static let initiatedByMaxCharacters = 254
    /// Whole-dollar digits an amount may have (keeps its micro-cents within Int64).
    static let amountWholeDigitsMax = 10
    /// Largest single grant or revocation: $1,000,000.
    package static let amountMaxMicros: Int64 = 1_000_000 * ExactMoney.microsPerDollar

    /// A signal's writes are retried (a transient database error must not lose it): 1 s doubling
    /// to 5 min, 30 attempts (about 2 h) before the run fails.
    static let applyRetry = WorkflowRetryPolicy(
        initialInterval: .seconds(1), backoffCoefficient: 2, maximumInterval: .seconds(300), maximumAttempts: 30)

    package static func workflowID(workspace: String) -> String { "billing-credits:\(workspace)" }

    /// The ledger transfer of a credit: one per credit id, whatever its kind.
    package static func transferID(creditID: String) -> ID128 { ChartOfAccounts.derivedID("tenki-promo-credit:\(creditID)") }

    package enum Signal: String, CaseIterable, Sendable {
        case add = "AddPromotionalCredits", deduct = "DeductPromotionalCredits"

        /// The `billing_promo_credits.kind` it writes.
        package var kind: String { self == .add ? "grant" : "revoke" }
    }

    /// A signal's payload: `amount_micros`, or `amount` as exact dollars (`"25.00"`), or both if
    /// they agree.
    package struct Request: Codable, Sendable, Equatable {
        package var creditID: String
        package var amountMicros: Int64?
        package var amount: String?
        package var reason: String
        package var initiatedBy: String

        enum CodingKeys: String, CodingKey {
            case creditID = "credit_id", amountMicros = "amount_micros", amount, reason, initiatedBy = "initiated_by"
        }

        package init(creditID: String, amountMicros: Int64? = nil, amount: String? = nil, reason: String, initiatedBy: String) {
            self.creditID = creditID
            self.amountMicros = amountMicros
            self.amount = amount
            self.reason = reason
            self.initiatedBy = initiatedBy
        }

        /// The amount in micro-cents once every field is checked; a bad one is a bad request.
        package func validatedMicros() throws -> Int64 {
            guard WorkflowNames.isValid(creditID), creditID.utf8.count <= BillingCredits.creditIDMaxBytes else {
                throw HostError(.badRequest, "credit_id must be 1-\(BillingCredits.creditIDMaxBytes) bytes without spaces")
            }
            try Self.required(reason, "reason", max: BillingCredits.reasonMaxCharacters)
            try Self.required(initiatedBy, "initiated_by", max: BillingCredits.initiatedByMaxCharacters)
            let parsed = try amount.map { try PromoCredits.micros(dollars: $0) }
            guard let micros = amountMicros ?? parsed else {
                throw HostError(.badRequest, "amount is required: dollars as a string, e.g. \"25.00\"", reason: "bad_amount")
            }
            if let parsed, parsed != micros { throw HostError(.badRequest, "amount and amount_micros disagree", reason: "bad_amount") }
            guard micros > 0, micros <= BillingCredits.amountMaxMicros else {
                throw HostError(
                    .badRequest, "amount must be more than 0 and at most \(ExactMoney.decimal(BillingCredits.amountMaxMicros)) dollars",
                    reason: "bad_amount")
            }
            return micros
        }

        static func required(_ text: String, _ name: String, max: Int) throws {
            guard !text.trimmingCharacters(in: .whitespacesAndNewlines).isEmpty else { throw HostError(.badRequest, "\(name) is required") }
            guard text.count <= max else { throw HostError(.badRequest, "\(name) has at most \(max) characters") }
        }
    }

    /// What the workflow did with one signal.
    package struct Action: Codable, Sendable, Equatable {
        package enum Outcome: String, Codable, Sendable {
            /// Stored and posted to the ledger.
            case applied
            /// A deduction above what was available: nothing stored or posted.
            case refused
            /// The credit id was applied before: nothing changed.
            case duplicate
            /// The payload did not validate: nothing stored or posted.
            case invalid
        }

        package let creditID: String
        package let kind: String
        package let amountMicros: Int64
        package let outcome: Outcome
        /// Why it was refused or invalid.
        package let detail: String?
        /// Available after the action.
        package let availableMicros: Int64
        /// Milliseconds since the epoch.
        package let at: Int64

        enum CodingKeys: String, CodingKey {
            case creditID = "credit_id", kind, amountMicros = "amount_micros", outcome, detail, availableMicros = "available_micros", at
        }
    }

    /// A run's input and its state `credits`: what the previous run handed over.
    package struct Input: Codable, Sendable, Equatable {
        package var workspaceID: String
        package var availableMicros: Int64
        /// The same as exact dollars (`25.5`).
        package var available: String
        /// Signals taken by every run so far.
        package var signalsApplied: Int
        package var recent: [Action]

        enum CodingKeys: String, CodingKey {
            case workspaceID = "workspace_id", availableMicros = "available_micros", available, signalsApplied = "signals_applied", recent
        }

        package init(workspaceID: String) {
            self.workspaceID = workspaceID
            availableMicros = 0
            available = "0"
            signalsApplied = 0
            recent = []
        }

        mutating func record(_ action: Action) {
            availableMicros = action.availableMicros
            available = ExactMoney.decimal(action.availableMicros)
            signalsApplied += 1
            recent = Array((recent + [action]).suffix(BillingCredits.recentActionsKept))
        }
    }

    /// The workflow: every signal's decision and row in one recorded transaction, then its
    /// ledger transfer as a step (idempotent by id, so a replay after a crash posts it once).
    static func definition(ledger: LedgerStore, signalsPerRun: Int = signalsPerRun) -> WorkflowDefinition {
        precondition(signalsPerRun >= 1 && signalsPerRun * 4 < WorkflowLimits.maxStepsPerRun, "bad signalsPerRun")
        return WorkflowDefinition(type: workflowType, taskQueue: taskQueue, input: Input.self) { ctx, input async throws -> Input in
            var state = input
            for _ in 0..<signalsPerRun {
                // Taken as bytes: a malformed payload is recorded as invalid, it does not fail the run.
                guard let taken = try await ctx.signalJSON(anyOf: Signal.allCases.map(\.rawValue), timeout: nil),
                    let signal = Signal(rawValue: taken.name)
                else { continue }
                let workspace = state.workspaceID
                let action = try await ctx.transaction("apply", retry: applyRetry) { db in
                    try apply(signal, taken.payload, workspace: workspace, db)
                }
                if action.outcome == .applied {
                    _ = try await ctx.step("ledger", retry: applyRetry) { try await post(action, workspace: workspace, ledger: ledger) }
                }
                state.record(action)
                try await ctx.setState("credits", state)
            }
            try await ctx.continueAsNew(state)
        }
    }

    /// Decides one signal and stores its row (exactly once: this runs inside the transaction
    /// that records it, so reading the clock here is recorded too).
    static func apply(_ signal: Signal, _ payload: [UInt8], workspace: String, _ db: any SQLConnection) throws -> Action {
        let now = Timestamp.ms(Date())
        let available = try PromoCredits.available(db, workspace: workspace)
        guard let request = try? WorkflowJSON.decode(Request.self, from: payload, what: "signal \(signal.rawValue)") else {
            let detail = "the payload must be {\"credit_id\", \"amount_micros\" or \"amount\", \"reason\", \"initiated_by\"}"
            return Action(
                creditID: "", kind: signal.kind, amountMicros: 0, outcome: .invalid, detail: detail, availableMicros: available, at: now)
        }
        let micros: Int64
        do { micros = try request.validatedMicros() } catch {
            return Action(
                creditID: request.creditID, kind: signal.kind, amountMicros: request.amountMicros ?? 0, outcome: .invalid,
                detail: HostError(error).message, availableMicros: available, at: now)
        }
        let outcome = { (outcome: Action.Outcome, detail: String?, after: Int64) in
            Action(
                creditID: request.creditID, kind: signal.kind, amountMicros: micros, outcome: outcome, detail: detail, availableMicros: after,
                at: now)
        }
        if let row = try db.queryOne("SELECT workspace_id FROM billing_promo_credits WHERE id = $1", [.text(request.creditID)]) {
            let owner = try row.string("workspace_id")
            return outcome(.duplicate, owner == workspace ? nil : "credit id \(request.creditID) belongs to another workspace", available)
        }
        if signal == .deduct && micros > available {
            let detail = "cannot revoke \(ExactMoney.decimal(micros)); \(ExactMoney.decimal(available)) available"
            return outcome(.refused, detail, available)
        }
        _ = try db.execute(
            """
            INSERT INTO billing_promo_credits (id, workspace_id, kind, amount_micros, reason, initiated_by, created_at)
            VALUES ($1, $2, $3, $4, $5, $6, $7)
            """,
            [
                .text(request.creditID), .text(workspace), .text(signal.kind), .integer(micros), .text(request.reason),
                .text(request.initiatedBy), .integer(now),
            ])
        let after = signal == .add ? available + micros : available - micros
        assert(after >= 0 || signal == .add, "a revocation never takes more than is available")
        return outcome(.applied, nil, after)
    }

    /// Posts an applied action's transfer; `ok` and `exists` (posted by an earlier attempt) are
    /// both success. A refusal is retried and, once attempts run out, fails the run (visible
    /// in `tenki workflow describe`): the row is stored, so the transfer must follow.
    static func post(_ action: Action, workspace: String, ledger: LedgerStore) async throws -> String {
        precondition(action.outcome == .applied && action.amountMicros > 0, "only an applied credit moves money")
        try await ledger.ensureWorkspace(workspace, now: LedgerClock.nowNanoseconds())
        let user = ChartOfAccounts.userMoneyAccountID(workspace: workspace)
        let marketing = ChartOfAccounts.operatorAccountID(.marketingExpense)
        let grant = action.kind == Signal.add.kind
        let transfer = Transfer(
            id: transferID(creditID: action.creditID), debitAccountID: grant ? marketing : user, creditAccountID: grant ? user : marketing,
            amount: UInt64(action.amountMicros), ledger: ChartOfAccounts.moneyLedger,
            code: (grant ? ChartOfAccounts.TransferCode.promoCredit : .promoCreditReversal).rawValue)
        let results = try await ledger.createTransfers([transfer], now: LedgerClock.nowNanoseconds())
        guard let result = results.first, result == .ok || result == .exists else {
            throw HostError(.internal, "the ledger refused promo credit \(action.creditID): \(results.map(\.rawValue))")
        }
        return result.rawValue
    }
}

extension PromoCredits {
    /// Exact dollars as micro-cents: `25`, `25.00`, `0.00000001`; at most 8 decimals, no sign,
    /// exponent or grouping, never through a float.
    package static func micros(dollars text: String) throws -> Int64 {
        let bad = HostError(.badRequest, "amount must be dollars with at most 8 decimals, e.g. \"25.00\"; got '\(text)'", reason: "bad_amount")
        let parts = text.split(separator: ".", maxSplits: 1, omittingEmptySubsequences: false)
        let whole = parts[0]
        let fraction = parts.count == 2 ? parts[1] : ""
        let isDigit = { (c: Character) in ("0"..."9").contains(c) }
        guard !whole.isEmpty, whole.count <= BillingCredits.amountWholeDigitsMax, parts.count == 1 || !fraction.isEmpty, fraction.count <= 8,
            whole.allSatisfy(isDigit), fraction.allSatisfy(isDigit),
            let dollars = Int64(whole), let cents = Int64(fraction + String(repeating: "0", count: 8 - fraction.count))
        else { throw bad }
        return dollars * ExactMoney.microsPerDollar + cents
    }
}
