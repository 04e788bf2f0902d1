import Foundation
import Host
import LedgerPlugin
import SQL

/// The billing plugin's tables and the one writer of invoices. Usage comes from the runner's
/// `runner_usage` (read only: posted, not reversed records, by their job's completion); each
/// record is taken by exactly one invoice (`billing_invoice_usage`), so a job charged after its
/// month was invoiced lands on the next one and nothing is counted twice.
package struct InvoiceStore: Sendable {
    package let database: any Database

    package init(database: any Database) { self.database = database }

    static let migrations: [Migration] = [
        Migration(
            2, "invoices, storage snapshots, subscriptions and promotional credits",
            sql: """
                CREATE TABLE billing_invoices (
                    id TEXT PRIMARY KEY,
                    workspace_id TEXT NOT NULL,
                    period TEXT NOT NULL,
                    number TEXT UNIQUE,
                    status TEXT NOT NULL,
                    lines TEXT NOT NULL,
                    total_micros BIGINT NOT NULL,
                    amount_due_cents BIGINT NOT NULL,
                    promo_applied_micros BIGINT NOT NULL,
                    monthly_credit_micros BIGINT NOT NULL,
                    created_at BIGINT NOT NULL,
                    issued_at BIGINT,
                    paid_at BIGINT,
                    closed_at BIGINT,
                    UNIQUE (workspace_id, period)
                );
                CREATE TABLE billing_invoice_usage (
                    usage_key TEXT PRIMARY KEY,
                    invoice_id TEXT NOT NULL
                );
                CREATE TABLE billing_invoice_numbers (
                    year BIGINT PRIMARY KEY,
                    last_number BIGINT NOT NULL
                );
                CREATE TABLE billing_invoice_history (
                    id INTEGER PRIMARY KEY AUTOINCREMENT,
                    invoice_id TEXT NOT NULL,
                    at BIGINT NOT NULL,
                    event TEXT NOT NULL,
                    detail TEXT NOT NULL
                );
                CREATE INDEX billing_invoice_history_by_invoice ON billing_invoice_history (invoice_id, id);
                CREATE TABLE billing_storage_snapshots (
                    workspace_id TEXT NOT NULL,
                    day TEXT NOT NULL,
                    billable_bytes BIGINT NOT NULL,
                    cache_bytes BIGINT NOT NULL,
                    recorded_at BIGINT NOT NULL,
                    PRIMARY KEY (workspace_id, day)
                );
                CREATE TABLE billing_subscriptions (
                    id TEXT PRIMARY KEY,
                    workspace_id TEXT NOT NULL,
                    item TEXT NOT NULL,
                    addon TEXT,
                    arch TEXT,
                    count BIGINT NOT NULL,
                    term TEXT NOT NULL,
                    started_at BIGINT NOT NULL,
                    cancelled_at BIGINT,
                    ends_at BIGINT,
                    created_by TEXT NOT NULL,
                    created_at BIGINT NOT NULL
                );
                CREATE INDEX billing_subscriptions_by_workspace ON billing_subscriptions (workspace_id, started_at);
                CREATE TABLE billing_promo_credits (
                    id TEXT PRIMARY KEY,
                    workspace_id TEXT NOT NULL,
                    kind TEXT NOT NULL,
                    amount_micros BIGINT NOT NULL,
                    reason TEXT NOT NULL,
                    initiated_by TEXT NOT NULL,
                    created_at BIGINT NOT NULL
                );
                CREATE INDEX billing_promo_credits_by_workspace ON billing_promo_credits (workspace_id);
                """)
    ]

    /// The invoice id of a workspace's period: derived, so every replica and retry names the same one.
    package static func invoiceID(workspace: String, period: BillingPeriod) -> String {
        "inv_" + String(ChartOfAccounts.derivedID("tenki-invoice:\(workspace):\(period)").description.prefix(24))
    }

    // MARK: inputs

    /// Everything an invoice of `workspace` for `period` is computed from, as of now.
    static func inputs(_ db: any SQLConnection, workspace: String, period: BillingPeriod) throws -> InvoiceInputs {
        guard let row = try db.queryOne("SELECT contract FROM runner_workspaces WHERE id = $1", [.text(workspace)]) else {
            throw HostError(.notFound, "no workspace '\(workspace)'")
        }
        let (addons, slots) = try subscriptions(db, workspace: workspace, period: period)
        return InvoiceInputs(
            workspaceID: workspace, period: period, usage: try uninvoicedUsage(db, workspace: workspace, before: period.end),
            addons: addons, slots: slots, dailyStorageBytes: try StorageSnapshots.dailyBytes(db, workspace: workspace, period: period),
            contract: try row.optionalString("contract"), promoAvailableMicros: try PromoCredits.available(db, workspace: workspace))
    }

    /// Posted, unreversed usage not on any invoice whose job completed before `before`.
    static func uninvoicedUsage(_ db: any SQLConnection, workspace: String, before: Int64) throws -> [BilledUsage] {
        let rows = try db.query(
            """
            SELECT u.usage_key, u.sku, u.completed_at, u.amount_micros, u.policy_version, u.decision FROM runner_usage u
            LEFT JOIN billing_invoice_usage b ON b.usage_key = u.usage_key
            WHERE u.workspace_id = $1 AND u.completed_at < $2 AND u.posted = 1 AND u.reversed_at IS NULL AND b.usage_key IS NULL
            ORDER BY u.completed_at, u.usage_key
            """, [.text(workspace), .integer(before)])
        var reader = UsageDecisionReader()
        return try rows.map { row in
            let key = try row.string("usage_key")
            return BilledUsage(
                key: key, sku: try row.optionalString("sku"), completedAt: try row.int("completed_at"), amountMicros: try row.int("amount_micros"),
                policyVersion: try row.string("policy_version"), lines: try reader.lines(decision: try row.string("decision"), usageKey: key))
        }
    }

    static func subscriptions(
        _ db: any SQLConnection, workspace: String, period: BillingPeriod
    ) throws -> (
        [MonthlyLinesInput.Addon], [MonthlyLinesInput.Slots]
    ) {
        let rows = try db.query(
            """
            SELECT * FROM billing_subscriptions WHERE workspace_id = $1 AND started_at < $2 AND (cancelled_at IS NULL OR cancelled_at >= $3)
            ORDER BY started_at, id
            """, [.text(workspace), .integer(period.end), .integer(period.start)])
        var addons: [MonthlyLinesInput.Addon] = []
        var slots: [MonthlyLinesInput.Slots] = []
        for row in rows {
            let started = BillingPeriod.iso(try row.int("started_at"))
            let cancelled = try row.optionalInt("cancelled_at").map(BillingPeriod.iso)
            if try row.string("item") == "addon" {
                addons.append(.init(id: try row.string("addon"), term: try row.string("term"), startedAt: started, cancelledAt: cancelled))
            } else {
                slots.append(.init(arch: try row.string("arch"), count: try row.int("count"), startedAt: started, cancelledAt: cancelled))
            }
        }
        return (addons, slots)
    }

    // MARK: drafting and issuing

    /// What the invoice of `workspace` for `period` is (stored) or would be now (a preview).
    package func preview(workspace: String, period: BillingPeriod, policies: PolicyEngine) async throws -> Invoice {
        if let stored = try await invoice(workspace: workspace, period: period) { return stored }
        return try await database.read { db in
            let computed = try InvoiceBuilder.compute(try InvoiceStore.inputs(db, workspace: workspace, period: period), policies: policies)
            return Invoice(
                id: nil, number: nil, workspaceID: workspace, period: period.description, status: .preview, lines: computed.lines,
                totalMicros: computed.totalMicros, amountDueCents: computed.amountDueCents)
        }
    }

    /// Closes the period for the workspace: computes the invoice and stores it as a draft with
    /// the usage it takes, once. Returns the stored invoice (an existing one unchanged).
    package func draft(workspace: String, period: BillingPeriod, policies: PolicyEngine, now: Int64) async throws -> Invoice {
        let id = InvoiceStore.invoiceID(workspace: workspace, period: period)
        return try await database.transaction { db in
            if let existing = try InvoiceStore.invoice(db, id: id) { return existing }
            let computed = try InvoiceBuilder.compute(try InvoiceStore.inputs(db, workspace: workspace, period: period), policies: policies)
            guard !computed.lines.isEmpty else {
                // Nothing to bill: no invoice (a preview says so).
                return Invoice(
                    id: nil, number: nil, workspaceID: workspace, period: period.description, status: .preview, lines: [], totalMicros: 0,
                    amountDueCents: 0)
            }
            let inserted = try db.execute(
                """
                INSERT INTO billing_invoices (id, workspace_id, period, status, lines, total_micros, amount_due_cents, promo_applied_micros,
                    monthly_credit_micros, created_at)
                VALUES ($1, $2, $3, 'draft', $4, $5, $6, $7, $8, $9) ON CONFLICT (workspace_id, period) DO NOTHING
                """,
                [
                    .text(id), .text(workspace), .text(period.description), .text(try JSONCoding.text(computed.lines, pretty: false)),
                    .integer(computed.totalMicros), .integer(computed.amountDueCents), .integer(computed.promoAppliedMicros),
                    .integer(computed.monthlyCreditMicros), .integer(now),
                ])
            if inserted == 0, let existing = try InvoiceStore.invoice(db, id: id) { return existing }
            try InvoiceStore.take(db, usageKeys: computed.usageKeys, invoice: id)
            try InvoiceStore.history(
                db, invoice: id, at: now, event: "drafted",
                detail:
                    "\(computed.lines.count) lines, \(computed.usageKeys.count) usage records, total \(ExactMoney.decimal(computed.totalMicros)) USD")
            // What was just stored, without reading it back (and decoding its lines) on the writer.
            return Invoice(
                id: id, number: nil, workspaceID: workspace, period: period.description, status: .draft, lines: computed.lines,
                totalMicros: computed.totalMicros, amountDueCents: computed.amountDueCents)
        }
    }

    /// Records that `invoice` takes the usage records `keys`, in multi-row inserts.
    static func take(_ db: any SQLConnection, usageKeys keys: [String], invoice: String) throws {
        for first in stride(from: 0, to: keys.count, by: BillingLimits.invoiceUsageRowsPerInsert) {
            let chunk = keys[first..<min(keys.count, first + BillingLimits.invoiceUsageRowsPerInsert)]
            _ = try db.execute(
                "INSERT INTO billing_invoice_usage (usage_key, invoice_id) VALUES "
                    + (2..<chunk.count + 2).map { "($\($0), $1)" }.joined(separator: ", "),
                [.text(invoice)] + chunk.map { .text($0) })
        }
    }

    /// Issues a draft: the next gap-free number of the issuing year (`TNK-2026-000123`). An
    /// issued invoice is returned unchanged.
    package func issue(id: String, now: Int64) async throws -> Invoice {
        try await database.transaction { db in
            // Two issuers of one draft (replicas, a rerun) take its row in turn: one number only.
            let lock = db.dialect == .postgres ? " FOR UPDATE" : ""
            guard let invoice = try db.queryOne("SELECT * FROM billing_invoices WHERE id = $1" + lock, [.text(id)]).map(InvoiceStore.invoice(from:))
            else { throw HostError(.notFound, "no invoice '\(id)'") }
            guard invoice.status == .draft else { return invoice }
            let year = Int64(BillingPeriod(containing: now / 1000).year)
            let next = try db.queryOne(
                """
                INSERT INTO billing_invoice_numbers (year, last_number) VALUES ($1, 1)
                ON CONFLICT (year) DO UPDATE SET last_number = billing_invoice_numbers.last_number + 1 RETURNING last_number
                """, [.integer(year)])!.int("last_number")
            let number = "TNK-" + Timestamp.padded(year, 4) + "-" + Timestamp.padded(next, 6)
            _ = try db.execute(
                "UPDATE billing_invoices SET status = 'issued', number = $2, issued_at = $3 WHERE id = $1", [.text(id), .text(number), .integer(now)])
            try InvoiceStore.history(db, invoice: id, at: now, event: "issued", detail: "\(number), amount due \(invoice.amountDueCents) cents")
            try Payments.publish(
                db, "invoice.issued", id: id,
                [
                    "invoice_id": id, "number": number, "workspace_id": invoice.workspaceID, "period": invoice.period,
                    "amount_due_cents": invoice.amountDueCents,
                ])
            return Invoice(
                id: id, number: number, workspaceID: invoice.workspaceID, period: invoice.period, status: .issued, lines: invoice.lines,
                totalMicros: invoice.totalMicros, amountDueCents: invoice.amountDueCents, issuedAt: Timestamp.iso(ms: now), paidAt: nil)
        }
    }

    /// Moves an issued invoice to `status` (paid, void, uncollectible) with a history entry;
    /// false when it was not issued (already settled: nothing changes).
    package func settle(id: String, status: Invoice.Status, now: Int64, detail: String) async throws -> Bool {
        precondition([.paid, .void, .uncollectible].contains(status))
        return try await database.transaction { db in
            let column = status == .paid ? "paid_at" : "closed_at"
            let changed = try db.execute(
                "UPDATE billing_invoices SET status = $2, \(column) = $3 WHERE id = $1 AND status IN ('issued', 'uncollectible')",
                [.text(id), .text(status.rawValue), .integer(now)])
            if changed > 0 { try InvoiceStore.history(db, invoice: id, at: now, event: status.rawValue, detail: detail) }
            return changed > 0
        }
    }

    static func history(_ db: any SQLConnection, invoice: String, at: Int64, event: String, detail: String) throws {
        _ = try db.execute(
            "INSERT INTO billing_invoice_history (invoice_id, at, event, detail) VALUES ($1, $2, $3, $4)",
            [.text(invoice), .integer(at), .text(event), .text(detail)])
    }

    // MARK: reads

    package func invoice(workspace: String, period: BillingPeriod) async throws -> Invoice? {
        let id = InvoiceStore.invoiceID(workspace: workspace, period: period)
        return try await database.read { db in try InvoiceStore.invoice(db, id: id) }
    }

    /// An invoice by id or number.
    package func invoice(_ idOrNumber: String) async throws -> Invoice? {
        try await database.read { db in
            try db.queryOne("SELECT * FROM billing_invoices WHERE id = $1 OR number = $1", [.text(idOrNumber)]).map(InvoiceStore.invoice(from:))
        }
    }

    package func invoices(workspace: String, limit: Int = HostLimits.listMaxRows) async throws -> [Invoice] {
        try await database.read { db in
            try db.query(
                "SELECT * FROM billing_invoices WHERE workspace_id = $1 ORDER BY period DESC LIMIT $2", [.text(workspace), .integer(Int64(limit))]
            ).map(InvoiceStore.invoice(from:))
        }
    }

    package struct HistoryEntry: Sendable, Codable, Equatable {
        package let at: String
        package let event: String
        package let detail: String
    }

    package func history(invoice id: String) async throws -> [HistoryEntry] {
        try await database.read { db in
            try db.query("SELECT at, event, detail FROM billing_invoice_history WHERE invoice_id = $1 ORDER BY id", [.text(id)]).map {
                HistoryEntry(at: Timestamp.iso(ms: try $0.int("at")), event: try $0.string("event"), detail: try $0.string("detail"))
            }
        }
    }

    static func invoice(_ db: any SQLConnection, id: String) throws -> Invoice? {
        try db.queryOne("SELECT * FROM billing_invoices WHERE id = $1", [.text(id)]).map(invoice(from:))
    }

    static func invoice(from row: SQLRow) throws -> Invoice {
        guard let status = Invoice.Status(rawValue: try row.string("status")) else { throw HostError(.internal, "bad invoice status") }
        return Invoice(
            id: try row.string("id"), number: try row.optionalString("number"), workspaceID: try row.string("workspace_id"),
            period: try row.string("period"), status: status,
            lines: try JSONDecoder().decode([InvoiceLine].self, from: Data(try row.string("lines").utf8)),
            totalMicros: try row.int("total_micros"), amountDueCents: try row.int("amount_due_cents"),
            issuedAt: try row.optionalInt("issued_at").map { Timestamp.iso(ms: $0) },
            paidAt: try row.optionalInt("paid_at").map { Timestamp.iso(ms: $0) })
    }
}
