import Foundation
import Host
import LedgerPlugin
import RunnerPlugin
import SQL

/// What the billing workflows work with.
package struct BillingServices: Sendable {
    package let invoices: InvoiceStore
    package let payments: Payments
    package let runner: RunnerStore
    package let ledger: LedgerStore
    package let policies: PolicyEngine
    /// Cycle children the schedule keeps unfinished at once: `BillingLimits.cycleFanOut`, or lower.
    var cycleFanOut = BillingLimits.cycleFanOut

    package init(invoices: InvoiceStore, payments: Payments, runner: RunnerStore, ledger: LedgerStore, policies: PolicyEngine) {
        self.invoices = invoices
        self.payments = payments
        self.runner = runner
        self.ledger = ledger
        self.policies = policies
    }

    /// The same services paying through `provider`.
    package func paying(through provider: (any PaymentProvider)?) -> BillingServices {
        BillingServices(
            invoices: invoices,
            payments: Payments(
                database: payments.database, ledger: ledger, runner: runner, policies: policies, provider: provider, events: payments.events),
            runner: runner, ledger: ledger, policies: policies)
    }

    /// A workspace's id from its id or slug; unknown is a non-retryable failure of the run.
    func workspaceID(_ name: String) async throws -> String {
        guard let workspace = try await runner.workspace(name) else {
            throw WorkflowApplicationError(type: "NotFound", "no workspace '\(name)'", nonRetryable: true)
        }
        return workspace.id
    }
}

/// The runbook's input of the list-balance and cycle workflows. `workspace_id` is an id or a
/// slug; the period is `billing_period`, or else given by its bounds (the runbook's inclusive
/// `…T23:59:59.999Z` end is read as the start of the next month); bounds that disagree with the
/// period are refused.
package struct RunbookPeriodInput: Codable, Sendable, Equatable {
    package var workspaceID: String
    package var billingPeriod: String?
    package var billingPeriodStart: String?
    package var billingPeriodEnd: String?

    enum CodingKeys: String, CodingKey {
        case workspaceID = "workspace_id", billingPeriod = "billing_period", billingPeriodStart = "billing_period_start"
        case billingPeriodEnd = "billing_period_end"
    }

    package init(workspaceID: String, period: BillingPeriod) {
        self.workspaceID = workspaceID
        billingPeriod = period.description
    }

    func period() throws -> BillingPeriod {
        do {
            let period: BillingPeriod
            if let text = billingPeriod {
                period = try BillingPeriod(text)
            } else if let end = billingPeriodEnd {
                period = try BillingPeriod(endingAt: end)
            } else {
                throw HostError(.badRequest, "give billing_period (YYYY-MM) or billing_period_end")
            }
            if let start = billingPeriodStart, Timestamp.parseUTCSeconds(start) != period.start {
                throw HostError(.badRequest, "billing_period_start \(start) is not the start of \(period)")
            }
            if let end = billingPeriodEnd, try BillingPeriod(endingAt: end) != period {
                throw HostError(.badRequest, "billing_period_end \(end) is not the end of \(period)")
            }
            return period
        } catch let error as HostError {
            throw WorkflowApplicationError(type: "InvalidInput", error.message, nonRetryable: true)
        }
    }
}

/// An exact decimal amount for JSON results: written from integers, never through a float.
package enum ResultMoney {
    package static func dollars(micros: Int64) -> Decimal { Decimal(string: ExactMoney.decimal(micros))! }
    package static func dollars(cents: Int64) -> Decimal { dollars(micros: cents * ExactMoney.microsPerCent) }
}

/// The result of `BillingCycleWorkflow`.
package struct CycleResult: Codable, Sendable, Equatable {
    package var workspaceID: String
    package var billingPeriod: String
    package var invoiceID: String?
    package var invoiceNumber: String?
    /// The invoice's status, or `nothing_to_bill`.
    package var status: String
    package var totalAmount: Decimal
    package var totalAmountMicros: Int64
    package var amountDueCents: Int64
    /// `not_needed`, `succeeded`, `failed`, `no_payment_method`, `not_configured`, `already_paid`.
    package var paymentStatus: String
    package var paymentID: String?

    enum CodingKeys: String, CodingKey {
        case workspaceID = "workspace_id", billingPeriod = "billing_period", invoiceID = "invoice_id", invoiceNumber = "invoice_number", status
        case totalAmount = "total_amount", totalAmountMicros = "total_amount_micros", amountDueCents = "amount_due_cents"
        case paymentStatus = "payment_status", paymentID = "payment_id"
    }

    init(_ invoice: Invoice, period: BillingPeriod, payment: Payments.Attempt?) {
        workspaceID = invoice.workspaceID
        billingPeriod = period.description
        invoiceID = invoice.id
        invoiceNumber = invoice.number
        status = invoice.id == nil ? "nothing_to_bill" : invoice.status.rawValue
        totalAmount = ResultMoney.dollars(micros: invoice.totalMicros)
        totalAmountMicros = invoice.totalMicros
        amountDueCents = invoice.amountDueCents
        paymentStatus = payment?.status ?? "not_needed"
        paymentID = payment?.paymentID
        if payment?.status == "succeeded" { status = Invoice.Status.paid.rawValue }
    }
}

/// The runbook's five workflows, on `BILLING_TASK_QUEUE` (docs/PRODUCT.md §12).
package enum BillingWorkflows {
    package static let taskQueue = "BILLING_TASK_QUEUE"
    package static let cycleType = "BillingCycleWorkflow"
    package static let scheduleType = "BillingCycleScheduleWorkflow"
    package static let listBalanceType = "BillingListWorkspaceBalanceWorkflow"
    package static let paymentReversalType = "BillingPaymentReversalWorkflow"
    package static let usageReversalType = "BillingUsageReversalWorkflow"
    package static let dunningType = "BillingDunningWorkflow"

    /// A workspace's cycle for a period has this id, so a rerun or a second replica bills nobody twice.
    package static func cycleID(workspace: String, period: BillingPeriod) -> String { "billing-cycle:\(workspace):\(period)" }
    package static func dunningID(invoice: String) -> String { "billing-dunning:\(invoice)" }

    /// Every billing workflow type, working with `services`.
    package static func definitions(_ services: BillingServices) -> [WorkflowDefinition] {
        [cycle(services), schedule(services), listBalance(services), paymentReversal(services), usageReversal(services), dunning(services)]
    }

    static func now(_ ctx: any WorkflowContext) async throws -> Int64 { Int64((try await ctx.now().timeIntervalSince1970 * 1000).rounded(.down)) }

    /// Closes the period for one workspace: the invoice drafted and issued, its ledger transfers,
    /// the charge when something is due (a decline starts dunning). Closing is one step (each
    /// of its parts is idempotent, so a crash in the middle runs it again harmlessly): a cycle
    /// records three calls, which is what bills 10,000 workspaces in about a minute.
    static func cycle(_ services: BillingServices) -> WorkflowDefinition {
        WorkflowDefinition(type: cycleType, taskQueue: taskQueue, input: RunbookPeriodInput.self) { ctx, input -> CycleResult in
            let period = try input.period()
            let at = try await now(ctx)
            let invoice = try await ctx.step("close-and-issue") { try await closeAndIssue(services, input.workspaceID, period, at: at) }
            guard let id = invoice.id, invoice.amountDueCents > 0 else { return CycleResult(invoice, period: period, payment: nil) }
            let attempt = try await ctx.step("charge-attempt-1") { try await services.payments.collect(invoice, attempt: 1, now: at) }
            if attempt.status == "already_paid" {
                // Settled by an earlier attempt whose result was not recorded (a crash): report the invoice as it is now.
                return CycleResult(
                    try await ctx.step("read-settled-invoice") { try await services.invoices.invoice(id)! }, period: period, payment: attempt)
            }
            if attempt.status == "failed" || attempt.status == "no_payment_method" {
                let dunning = DunningInput(invoiceID: id, workspaceID: invoice.workspaceID, period: period.description, firstFailureAt: at / 1000)
                _ = try await ctx.step("start-dunning") {
                    try await ctx.client.startWorkflow(type: dunningType, input: try WorkflowJSON.encode(dunning), id: dunningID(invoice: id))
                }
            }
            return CycleResult(invoice, period: period, payment: attempt)
        }
    }

    /// The workspace named, its invoice drafted and issued, its transfers posted; an invoice with
    /// nothing due is paid at once. A workspace with nothing to bill gets no invoice (a preview).
    static func closeAndIssue(_ services: BillingServices, _ name: String, _ period: BillingPeriod, at: Int64) async throws -> Invoice {
        let workspace = try await services.workspaceID(name)
        let draft = try await services.invoices.draft(workspace: workspace, period: period, policies: services.policies, now: at)
        guard let id = draft.id else { return draft }
        let invoice = try await services.invoices.issue(id: id, now: at)
        try await BillingLedger.post(services.ledger, workspace: workspace, BillingLedger.invoiceTransfers(invoice))
        guard invoice.amountDueCents == 0 else { return invoice }
        _ = try await services.invoices.settle(id: id, status: .paid, now: at, detail: "nothing to pay")
        return try await services.invoices.invoice(id) ?? invoice
    }

    /// A preview of a workspace's invoice (stored if issued), in the runbook's shape; changes nothing.
    static func listBalance(_ services: BillingServices) -> WorkflowDefinition {
        WorkflowDefinition(type: listBalanceType, taskQueue: taskQueue, input: RunbookPeriodInput.self) { ctx, input -> BalanceResult in
            let period = try input.period()
            let workspace = try await ctx.step("resolve-workspace", retry: .none) { try await services.workspaceID(input.workspaceID) }
            let invoice = try await ctx.step("preview") {
                try await services.invoices.preview(workspace: workspace, period: period, policies: services.policies)
            }
            return BalanceResult(invoice, at: try await ctx.now())
        }
    }
}

/// The result of `BillingListWorkspaceBalanceWorkflow`: the runbook's fields, each amount with an
/// integer `*_micros` twin, and every line of the invoice (not only usage).
package struct BalanceResult: Codable, Sendable, Equatable {
    package struct Item: Codable, Sendable, Equatable {
        package let description: String
        package let kind: String
        /// The SKU of a usage line (the runbook's runner label).
        package let runnerLabel: String?
        package let quantity: Int64
        package let unitPrice: Decimal
        package let unitPriceMicros: Int64
        package let amount: Decimal
        package let amountMicros: Int64
        package let policyVersion: String
        enum CodingKeys: String, CodingKey {
            case description, kind, runnerLabel = "runner_label", quantity, unitPrice = "unit_price", unitPriceMicros = "unit_price_micros"
            case amount, amountMicros = "amount_micros", policyVersion = "policy_version"
        }
    }
    package let lineItems: [Item]
    package let totalAmount: Decimal
    package let totalAmountMicros: Int64
    package let amountDueCents: Int64
    package let status: String
    package let timestamp: String

    enum CodingKeys: String, CodingKey {
        case lineItems = "line_items", totalAmount = "total_amount", totalAmountMicros = "total_amount_micros"
        case amountDueCents = "amount_due_cents", status, timestamp
    }

    init(_ invoice: Invoice, at time: Date) {
        lineItems = invoice.lines.map {
            Item(
                description: $0.description, kind: $0.kind.rawValue, runnerLabel: $0.sku, quantity: $0.quantity,
                unitPrice: ResultMoney.dollars(micros: $0.unitPriceMicros), unitPriceMicros: $0.unitPriceMicros,
                amount: ResultMoney.dollars(micros: $0.amountMicros), amountMicros: $0.amountMicros, policyVersion: $0.policyVersion)
        }
        totalAmount = ResultMoney.dollars(micros: invoice.totalMicros)
        totalAmountMicros = invoice.totalMicros
        amountDueCents = invoice.amountDueCents
        status = invoice.status.rawValue
        timestamp = BillingPeriod.iso(Int64(time.timeIntervalSince1970))
    }
}
