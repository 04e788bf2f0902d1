import Foundation
import Host
import SQL

/// One `workflow_job` attempt, keyed `installation/job/attempt`.
package struct RunnerJob: Sendable, Codable, Equatable {
    package var installationID: Int64
    package var jobID: Int64
    package var runAttempt: Int64
    package var workspaceID: String
    package var repository: String
    package var name: String
    package var labels: [String]
    package var status: JobStatus
    package var blockReason: String?
    package var sku: String?
    package var arch: String?
    package var priority: Int64
    package var slotLimit: Int64?
    /// Order of arrival (the inbox event id of its first event).
    package var enqueueSequence: Int64
    package var startedAt: String?
    package var completedAt: String?
    package var conclusion: String?
    package var runnerName: String?
    package var providerHandle: String?
    package var chargeStatus: ChargeStatus
    /// The commit the job runs for (check runs are attached to it).
    package var headSha: String?
    /// Blocked, then sent back to admission: GitHub is asked whether it still waits.
    package var releasedFromBlock: Bool = false
    /// When GitHub queued it (the job's `created_at`).
    package var queuedAt: String?
    /// When its first delivery reached us (ms since the epoch).
    package var receivedAt: Int64?
    /// When a runner was first asked for it (ms since the epoch).
    package var provisionRequestedAt: Int64?

    package var key: String { "\(installationID)/\(jobID)/\(runAttempt)" }
    /// The key as the parameters $1, $2, $3 of a statement on `runner_jobs`.
    var keyValues: [SQLValue] { [.integer(installationID), .integer(jobID), .integer(runAttempt)] }

    package init(
        installationID: Int64, jobID: Int64, runAttempt: Int64, workspaceID: String, repository: String, name: String,
        labels: [String], status: JobStatus, blockReason: String? = nil, sku: String? = nil, arch: String? = nil,
        priority: Int64 = 0, slotLimit: Int64? = nil, enqueueSequence: Int64 = 0, startedAt: String? = nil,
        completedAt: String? = nil, conclusion: String? = nil, runnerName: String? = nil, providerHandle: String? = nil,
        chargeStatus: ChargeStatus = .notBillable, headSha: String? = nil, releasedFromBlock: Bool = false, queuedAt: String? = nil,
        receivedAt: Int64? = nil, provisionRequestedAt: Int64? = nil
    ) {
        self.installationID = installationID
        self.jobID = jobID
        self.runAttempt = runAttempt
        self.workspaceID = workspaceID
        self.repository = repository
        self.name = name
        self.labels = labels
        self.status = status
        self.blockReason = blockReason
        self.sku = sku
        self.arch = arch
        self.priority = priority
        self.slotLimit = slotLimit
        self.enqueueSequence = enqueueSequence
        self.startedAt = startedAt
        self.completedAt = completedAt
        self.conclusion = conclusion
        self.runnerName = runnerName
        self.providerHandle = providerHandle
        self.chargeStatus = chargeStatus
        self.headSha = headSha
        self.releasedFromBlock = releasedFromBlock
        self.queuedAt = queuedAt
        self.receivedAt = receivedAt
        self.provisionRequestedAt = provisionRequestedAt
    }

    enum CodingKeys: String, CodingKey {
        case installationID = "installation_id", jobID = "job_id", runAttempt = "run_attempt", workspaceID = "workspace_id"
        case repository, name, labels, status, blockReason = "block_reason", sku, arch, priority, slotLimit = "slot_limit"
        case enqueueSequence = "enqueue_sequence", startedAt = "started_at", completedAt = "completed_at", conclusion
        case runnerName = "runner_name", providerHandle = "provider_handle", chargeStatus = "charge_status", headSha = "head_sha"
        case releasedFromBlock = "released_from_block", queuedAt = "queued_at", receivedAt = "received_at"
        case provisionRequestedAt = "provision_requested_at"
    }
}

/// A workspace as the runner sees it: who it is and the state admission and pricing read.
package struct RunnerWorkspace: Sendable, Codable, Equatable {
    package var id: String
    package var slug: String
    package var hasPaymentMethod: Bool
    package var suspended: Bool
    /// Suspended for non-payment by billing (never set or lifted by an ops suspension).
    package var paymentOverdue: Bool
    package var abuseAction: String?
    package var addons: [String]
    package var extraSlotsX64: Int64
    package var extraSlotsMacOS: Int64
    package var contract: String?
    /// Whether the signup free minutes have been granted in the ledger.
    package var credited: Bool
    /// The payment provider's reference for the workspace's payment method.
    package var paymentMethodRef: String?

    enum CodingKeys: String, CodingKey {
        case id, slug, hasPaymentMethod = "has_payment_method", suspended, paymentOverdue = "payment_overdue", abuseAction = "abuse_action", addons
        case extraSlotsX64 = "extra_slots_x64", extraSlotsMacOS = "extra_slots_macos", contract, credited
        case paymentMethodRef = "payment_method_ref"
    }

    /// `trial` until a payment method is saved, then `payg` (pay as you go).
    package var plan: String { hasPaymentMethod ? "payg" : "trial" }

    enum DerivedKeys: String, CodingKey { case plan }

    /// The stored fields, and the plan they imply.
    package func encode(to encoder: any Encoder) throws {
        var c = encoder.container(keyedBy: CodingKeys.self)
        try c.encode(id, forKey: .id)
        try c.encode(slug, forKey: .slug)
        try c.encode(hasPaymentMethod, forKey: .hasPaymentMethod)
        try c.encode(suspended, forKey: .suspended)
        try c.encode(paymentOverdue, forKey: .paymentOverdue)
        try c.encodeIfPresent(abuseAction, forKey: .abuseAction)
        try c.encode(addons, forKey: .addons)
        try c.encode(extraSlotsX64, forKey: .extraSlotsX64)
        try c.encode(extraSlotsMacOS, forKey: .extraSlotsMacOS)
        try c.encodeIfPresent(contract, forKey: .contract)
        try c.encode(credited, forKey: .credited)
        try c.encodeIfPresent(paymentMethodRef, forKey: .paymentMethodRef)
        var derived = encoder.container(keyedBy: DerivedKeys.self)
        try derived.encode(plan, forKey: .plan)
    }
}

/// The runner plugin's tables: workspaces, installations, repositories and usage records, and
/// the reads of jobs (`JobStore` is the one writer of `runner_jobs`). Every write here is one
/// transaction and idempotent, so redelivered events change nothing.
package struct RunnerStore: Sendable {
    package let database: any Database

    package init(database: any Database) { self.database = database }

    /// The writer of `runner_jobs` on the same database.
    var jobStore: JobStore { JobStore(database: database) }

    static let migrations: [Migration] = [
        Migration(
            1, "runner workspaces, installations, repositories, jobs, usage",
            sql: """
                CREATE TABLE runner_workspaces (
                    id TEXT PRIMARY KEY,
                    slug TEXT NOT NULL UNIQUE,
                    github_account_id BIGINT,
                    has_payment_method INTEGER NOT NULL DEFAULT 0,
                    suspended INTEGER NOT NULL DEFAULT 0,
                    abuse_action TEXT,
                    addons TEXT NOT NULL DEFAULT '[]',
                    extra_slots_x64 BIGINT NOT NULL DEFAULT 0,
                    extra_slots_macos BIGINT NOT NULL DEFAULT 0,
                    contract TEXT,
                    credited INTEGER NOT NULL DEFAULT 0,
                    created_at BIGINT NOT NULL
                );
                CREATE TABLE runner_installations (
                    id BIGINT PRIMARY KEY,
                    workspace_id TEXT NOT NULL REFERENCES runner_workspaces(id),
                    account_login TEXT NOT NULL,
                    account_type TEXT,
                    status TEXT NOT NULL,
                    updated_at BIGINT NOT NULL
                );
                CREATE TABLE runner_repositories (
                    installation_id BIGINT NOT NULL,
                    repository_id BIGINT NOT NULL,
                    full_name TEXT NOT NULL,
                    PRIMARY KEY (installation_id, repository_id)
                );
                CREATE TABLE runner_jobs (
                    installation_id BIGINT NOT NULL,
                    job_id BIGINT NOT NULL,
                    run_attempt BIGINT NOT NULL,
                    workspace_id TEXT NOT NULL,
                    repository TEXT NOT NULL,
                    name TEXT NOT NULL,
                    labels TEXT NOT NULL,
                    status TEXT NOT NULL,
                    block_reason TEXT,
                    sku TEXT,
                    arch TEXT,
                    priority BIGINT NOT NULL DEFAULT 0,
                    slot_limit BIGINT,
                    enqueue_sequence BIGINT NOT NULL,
                    started_at TEXT,
                    completed_at TEXT,
                    conclusion TEXT,
                    runner_name TEXT,
                    provider_handle TEXT,
                    lease_until BIGINT,
                    released INTEGER NOT NULL DEFAULT 0,
                    charge_status TEXT NOT NULL DEFAULT 'none',
                    updated_at BIGINT NOT NULL,
                    PRIMARY KEY (installation_id, job_id, run_attempt)
                );
                CREATE INDEX runner_jobs_by_status ON runner_jobs (status, workspace_id, priority, enqueue_sequence);
                CREATE TABLE runner_usage (
                    usage_key TEXT PRIMARY KEY,
                    workspace_id TEXT NOT NULL,
                    sku TEXT,
                    billable_minutes BIGINT NOT NULL,
                    free_minutes_consumed BIGINT NOT NULL,
                    amount_micros BIGINT NOT NULL,
                    policy_version TEXT NOT NULL,
                    decision TEXT NOT NULL,
                    posted INTEGER NOT NULL DEFAULT 0,
                    created_at BIGINT NOT NULL
                );
                """),
        Migration(2, "the commit of a job", sql: "ALTER TABLE runner_jobs ADD COLUMN head_sha TEXT"),
        Migration(3, "jobs released from a block", sql: "ALTER TABLE runner_jobs ADD COLUMN released_from_block INTEGER NOT NULL DEFAULT 0"),
        Migration(
            4, "job timings and payment method references",
            sql: """
                ALTER TABLE runner_jobs ADD COLUMN queued_at TEXT;
                ALTER TABLE runner_jobs ADD COLUMN received_at BIGINT;
                ALTER TABLE runner_jobs ADD COLUMN provision_requested_at BIGINT;
                ALTER TABLE runner_workspaces ADD COLUMN payment_method_ref TEXT;
                """),
        Migration(5, "slots in use counted from an index", sql: "CREATE INDEX runner_jobs_slots ON runner_jobs (workspace_id, status, arch)"),
        Migration(
            6, "usage records know their job's completion and reversal",
            sql: RunnerStore.usageCompletionMigration("CAST(strftime('%s', j.completed_at) AS BIGINT)"),
            postgres: RunnerStore.usageCompletionMigration("EXTRACT(EPOCH FROM j.completed_at::timestamptz)::BIGINT")),
        Migration(
            7, "suspension for non-payment, apart from an ops suspension",
            sql: "ALTER TABLE runner_workspaces ADD COLUMN payment_overdue INTEGER NOT NULL DEFAULT 0"),
    ]

    /// Billing reads usage by the month of its job's completion (Unix seconds), and a reversed
    /// record stays with its reversal's time; older records learn the completion from their job.
    static func usageCompletionMigration(_ epochOfCompletion: String) -> String {
        """
        ALTER TABLE runner_usage ADD COLUMN completed_at BIGINT;
        ALTER TABLE runner_usage ADD COLUMN reversed_at BIGINT;
        UPDATE runner_usage SET completed_at = (
            SELECT \(epochOfCompletion) FROM runner_jobs j
            WHERE j.installation_id || '/' || j.job_id || '/' || j.run_attempt = runner_usage.usage_key AND j.completed_at IS NOT NULL);
        UPDATE runner_usage SET completed_at = created_at / 1000 WHERE completed_at IS NULL;
        CREATE INDEX runner_usage_by_completion ON runner_usage (workspace_id, completed_at);
        """
    }

    static func nowMilliseconds() -> Int64 { Int64(Date().timeIntervalSince1970 * 1000) }

    /// A stored JSON array of strings (labels, add-ons); every row read decodes one, so this
    /// skips the Decodable machinery.
    static func strings(_ json: String) -> [String] {
        ((try? JSONSerialization.jsonObject(with: Data(json.utf8))) as? [String]) ?? []
    }

    // MARK: workspaces and installations

    /// The workspace of a GitHub account, created on first sight (slug = lower-cased login).
    @discardableResult
    static func ensureWorkspace(_ db: any SQLConnection, accountID: Int64, login: String) throws -> String {
        if let row = try db.queryOne("SELECT id FROM runner_workspaces WHERE github_account_id = $1", [.integer(accountID)]) {
            return try row.string("id")
        }
        let id = "ws-\(accountID)"
        var slug = login.lowercased()
        if try db.queryOne("SELECT id FROM runner_workspaces WHERE slug = $1", [.text(slug)]) != nil { slug += "-\(accountID)" }
        _ = try db.execute(
            """
            INSERT INTO runner_workspaces (id, slug, github_account_id, created_at) VALUES ($1, $2, $3, $4)
            ON CONFLICT (id) DO NOTHING
            """, [.text(id), .text(slug), .integer(accountID), .integer(nowMilliseconds())])
        return id
    }

    static func upsertInstallation(_ db: any SQLConnection, id: Int64, workspaceID: String, login: String, type: String?, status: String) throws {
        _ = try db.execute(
            """
            INSERT INTO runner_installations (id, workspace_id, account_login, account_type, status, updated_at)
            VALUES ($1, $2, $3, $4, $5, $6)
            ON CONFLICT (id) DO UPDATE SET status = excluded.status, updated_at = excluded.updated_at
            """, [.integer(id), .text(workspaceID), .text(login), SQLValue(type), .text(status), .integer(nowMilliseconds())])
    }

    static func setRepositories(_ db: any SQLConnection, installationID: Int64, added: [(Int64, String)], removed: [Int64]) throws {
        for (id, name) in added {
            _ = try db.execute(
                """
                INSERT INTO runner_repositories (installation_id, repository_id, full_name) VALUES ($1, $2, $3)
                ON CONFLICT (installation_id, repository_id) DO UPDATE SET full_name = excluded.full_name
                """, [.integer(installationID), .integer(id), .text(name)])
        }
        for id in removed {
            _ = try db.execute(
                "DELETE FROM runner_repositories WHERE installation_id = $1 AND repository_id = $2",
                [.integer(installationID), .integer(id)])
        }
    }

    /// Which of these installations are known and not active (suspended or uninstalled).
    func inactiveInstallations(_ ids: [Int64]) async throws -> Set<Int64> {
        guard !ids.isEmpty else { return [] }
        return Set(
            try await database.query(
                "SELECT id FROM runner_installations WHERE id IN (\(placeholders(ids.count))) AND status <> 'active'",
                ids.map { .integer($0) }
            ).map { try $0.int("id") })
    }

    static func installationStatus(_ id: Int64, _ db: any SQLConnection) throws -> String? {
        try db.queryOne("SELECT status FROM runner_installations WHERE id = $1", [.integer(id)]).map { try $0.string("status") }
    }

    /// The workspace an installation belongs to, if the installation is known.
    static func workspace(ofInstallation id: Int64, _ db: any SQLConnection) throws -> String? {
        try db.queryOne("SELECT workspace_id FROM runner_installations WHERE id = $1", [.integer(id)]).map { try $0.string("workspace_id") }
    }

    package func workspace(_ idOrSlug: String) async throws -> RunnerWorkspace? {
        try await database.read { db in
            try db.queryOne("SELECT * FROM runner_workspaces WHERE id = $1 OR slug = $1", [.text(idOrSlug)]).map(RunnerStore.workspace(from:))
        }
    }

    /// The id of the workspace `name` names (id or slug); nil for no name, an error for an unknown one.
    package func workspaceID(named name: String?) async throws -> String? {
        guard let name else { return nil }
        guard let workspace = try await workspace(name) else { throw HostError(.notFound, "no workspace '\(name)'") }
        return workspace.id
    }

    package func workspaces() async throws -> [RunnerWorkspace] {
        try await database.read { db in try db.query("SELECT * FROM runner_workspaces ORDER BY id").map(RunnerStore.workspace(from:)) }
    }

    static func workspace(from row: SQLRow) throws -> RunnerWorkspace {
        RunnerWorkspace(
            id: try row.string("id"), slug: try row.string("slug"), hasPaymentMethod: try row.bool("has_payment_method"),
            suspended: try row.bool("suspended"), paymentOverdue: try row.bool("payment_overdue"),
            abuseAction: try row.optionalString("abuse_action"),
            addons: RunnerStore.strings(try row.string("addons")),
            extraSlotsX64: try row.int("extra_slots_x64"), extraSlotsMacOS: try row.int("extra_slots_macos"),
            contract: try row.optionalString("contract"), credited: try row.bool("credited"),
            paymentMethodRef: try row.optionalString("payment_method_ref"))
    }

    /// What billing and operators change about a workspace. A change sends its blocked jobs, and
    /// its jobs waiting for a slot (in their place), back to admission: a payment method, an add-on
    /// or a lifted suspension may clear a block, slots or an abuse verdict change what waits.
    package struct WorkspaceChange: Sendable {
        package var hasPaymentMethod: Bool?
        package var suspended: Bool?
        package var paymentOverdue: Bool?
        package var abuseAction: String??
        package var addons: [String]?
        package var extraSlotsX64: Int64?
        package var extraSlotsMacOS: Int64?
        package var contract: String??
        package var paymentMethodRef: String??
        package init(
            hasPaymentMethod: Bool? = nil, suspended: Bool? = nil, paymentOverdue: Bool? = nil, abuseAction: String?? = nil,
            addons: [String]? = nil,
            extraSlotsX64: Int64? = nil, extraSlotsMacOS: Int64? = nil, contract: String?? = nil, paymentMethodRef: String?? = nil
        ) {
            self.hasPaymentMethod = hasPaymentMethod
            self.suspended = suspended
            self.paymentOverdue = paymentOverdue
            self.abuseAction = abuseAction
            self.addons = addons
            self.extraSlotsX64 = extraSlotsX64
            self.extraSlotsMacOS = extraSlotsMacOS
            self.contract = contract
            self.paymentMethodRef = paymentMethodRef
        }
    }

    /// Applies `change`; returns how many jobs (blocked or waiting for a slot) went back to admission.
    @discardableResult
    package func update(workspace idOrSlug: String, _ change: WorkspaceChange) async throws -> Int {
        try await database.transaction { db in try RunnerStore.update(db, workspace: idOrSlug, change) }
    }

    /// The same inside the caller's transaction: billing locks the workspace, reads its
    /// subscriptions and projects them here in one transaction, so replicas never interleave.
    package static func update(_ db: any SQLConnection, workspace idOrSlug: String, _ change: WorkspaceChange) throws -> Int {
        guard let row = try db.queryOne("SELECT id FROM runner_workspaces WHERE id = $1 OR slug = $1", [.text(idOrSlug)]) else {
            throw HostError(.notFound, "no workspace '\(idOrSlug)'")
        }
        let id = try row.string("id")
        var sets: [String] = []
        var values: [SQLValue] = []
        func set(_ column: String, _ value: SQLValue) {
            values.append(value)
            sets.append("\(column) = $\(values.count)")
        }
        if let v = change.hasPaymentMethod { set("has_payment_method", SQLValue(v)) }
        if let v = change.suspended { set("suspended", SQLValue(v)) }
        if let v = change.paymentOverdue { set("payment_overdue", SQLValue(v)) }
        if let v = change.abuseAction { set("abuse_action", SQLValue(v)) }
        if let v = change.addons { set("addons", .text(String(decoding: try JSONEncoder().encode(v), as: UTF8.self))) }
        if let v = change.extraSlotsX64 { set("extra_slots_x64", .integer(v)) }
        if let v = change.extraSlotsMacOS { set("extra_slots_macos", .integer(v)) }
        if let v = change.contract { set("contract", SQLValue(v)) }
        if let v = change.paymentMethodRef { set("payment_method_ref", SQLValue(v)) }
        guard !sets.isEmpty else { return 0 }
        values.append(.text(id))
        _ = try db.execute("UPDATE runner_workspaces SET \(sets.joined(separator: ", ")) WHERE id = $\(values.count)", values)
        // Blocked jobs are admitted again; waiting ones keep their place but take the new limits.
        return try JobStore.returnToAdmission(db, workspaceID: id)
    }

    /// Marks a usage record reversed (billing's usage reversal; the record is kept, so the job
    /// can never be charged again and no invoice takes it), in the caller's transaction.
    package static func markUsageReversed(_ db: any SQLConnection, key: String, at seconds: Int64) throws {
        _ = try db.execute("UPDATE runner_usage SET reversed_at = $2 WHERE usage_key = $1 AND reversed_at IS NULL", [.text(key), .integer(seconds)])
    }

    static func markCredited(_ workspaceID: String, database: any Database) async throws {
        _ = try await database.execute("UPDATE runner_workspaces SET credited = 1 WHERE id = $1", [.text(workspaceID)])
    }

    // MARK: jobs

    package func jobs(status: JobStatus? = nil, workspace: String? = nil, limit: Int = HostLimits.listMaxRows) async throws -> [RunnerJob] {
        let (filter, values) = RunnerStore.jobFilter(status: status, workspace: workspace, limit: limit, table: "runner_jobs")
        return try await database.read { db in
            try db.query("SELECT * FROM runner_jobs \(filter)", values).map(RunnerStore.job(from:))
        }
    }

    /// `WHERE … ORDER BY … LIMIT …` for a job listing (oldest first), with its parameters;
    /// `table` qualifies the columns (a name or an alias).
    static func jobFilter(status: JobStatus?, workspace: String?, limit: Int, table: String) -> (String, [SQLValue]) {
        var conditions: [String] = []
        var values: [SQLValue] = []
        if let status {
            values.append(.text(status.rawValue))
            conditions.append("\(table).status = $\(values.count)")
        }
        if let workspace {
            values.append(.text(workspace))
            conditions.append("\(table).workspace_id = $\(values.count)")
        }
        values.append(.integer(Int64(limit)))
        let filter = conditions.isEmpty ? "" : "WHERE " + conditions.joined(separator: " AND ") + " "
        return (filter + "ORDER BY \(table).enqueue_sequence, \(table).job_id LIMIT $\(values.count)", values)
    }

    package func job(installationID: Int64, jobID: Int64, runAttempt: Int64) async throws -> RunnerJob? {
        try await database.read { db in
            try db.queryOne(
                "SELECT * FROM runner_jobs WHERE installation_id = $1 AND job_id = $2 AND run_attempt = $3",
                [.integer(installationID), .integer(jobID), .integer(runAttempt)]
            ).map(RunnerStore.job(from:))
        }
    }

    static func job(from row: SQLRow) throws -> RunnerJob {
        RunnerJob(
            installationID: try row.int("installation_id"), jobID: try row.int("job_id"), runAttempt: try row.int("run_attempt"),
            workspaceID: try row.string("workspace_id"), repository: try row.string("repository"), name: try row.string("name"),
            labels: RunnerStore.strings(try row.string("labels")),
            status: JobStatus(rawValue: try row.string("status")) ?? .queued, blockReason: try row.optionalString("block_reason"),
            sku: try row.optionalString("sku"), arch: try row.optionalString("arch"), priority: try row.int("priority"),
            slotLimit: try row.optionalInt("slot_limit"), enqueueSequence: try row.int("enqueue_sequence"),
            startedAt: try row.optionalString("started_at"), completedAt: try row.optionalString("completed_at"),
            conclusion: try row.optionalString("conclusion"), runnerName: try row.optionalString("runner_name"),
            providerHandle: try row.optionalString("provider_handle"),
            chargeStatus: ChargeStatus(rawValue: try row.string("charge_status")) ?? .notBillable,
            headSha: try row.optionalString("head_sha"), releasedFromBlock: (try? row.bool("released_from_block")) ?? false,
            queuedAt: try row.optionalString("queued_at"), receivedAt: try row.optionalInt("received_at"),
            provisionRequestedAt: try row.optionalInt("provision_requested_at"))
    }

    // MARK: usage

    /// A stored charge: the priced decision for one job attempt, and whether the ledger has it.
    package struct Usage: Sendable, Codable, Equatable {
        package let key: String
        package let workspaceID: String
        package let sku: String?
        package let billableMinutes: Int64
        package let freeMinutesConsumed: Int64
        package let amountMicros: Int64
        package let policyVersion: String
        /// The decision record (input, output, policy version) as JSON.
        package let decision: String
        package let posted: Bool

        enum CodingKeys: String, CodingKey {
            case key = "usage_key", workspaceID = "workspace_id", sku, billableMinutes = "billable_minutes"
            case freeMinutesConsumed = "free_minutes_consumed", amountMicros = "amount_micros", policyVersion = "policy_version"
            case decision, posted
        }
    }

    package func usage(key: String) async throws -> Usage? {
        try await database.read { db in
            try db.queryOne("SELECT * FROM runner_usage WHERE usage_key = $1", [.text(key)]).map(RunnerStore.usage(from:))
        }
    }

    package func usages(workspace: String) async throws -> [Usage] {
        try await database.read { db in
            try db.query("SELECT * FROM runner_usage WHERE workspace_id = $1 ORDER BY usage_key", [.text(workspace)]).map(RunnerStore.usage(from:))
        }
    }

    static func usage(from row: SQLRow) throws -> Usage {
        Usage(
            key: try row.string("usage_key"), workspaceID: try row.string("workspace_id"), sku: try row.optionalString("sku"),
            billableMinutes: try row.int("billable_minutes"), freeMinutesConsumed: try row.int("free_minutes_consumed"),
            amountMicros: try row.int("amount_micros"), policyVersion: try row.string("policy_version"),
            decision: try row.string("decision"), posted: try row.bool("posted"))
    }
}
