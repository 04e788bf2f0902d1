import ArgumentParser
import Foundation
import Host
import LedgerPlugin
import SQL
import WorkflowPlugin

/// `tenki billing`: the billing cycle's operator tools that are not about one invoice.
struct BillingCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "billing", abstract: "The monthly billing cycle as a whole.", subcommands: [BillingBenchCommand.self])
}

/// `tenki billing bench`: the monthly cycle for many workspaces, timed. Seeds a fresh database
/// (timed apart), then runs `BillingCycleScheduleWorkflow` for the period to its result on real
/// workflow workers (`WorkflowWorker`, the configured `workflow_concurrency`), paying through an
/// in-process provider that succeeds at once (the network is not measured). Checks that every
/// workspace got one invoice and one payment (a wrong count fails the bench) and prints JSON.
/// Not a test. `cpu_seconds` is this process's CPU over the cycle (PostgreSQL's own is not in it).
struct BillingBenchCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(commandName: "bench", abstract: "Monthly billing cycle throughput (JSON).")
    @OptionGroup var options: HostOptions
    @Option(help: "Workspaces to bill (each with a saved card).") var workspaces = 10_000
    @Option(help: "Usage records spread over them and over the period (at least one per workspace).") var usage = 1_000_000
    @Option(help: "Cycle children the schedule keeps unfinished at once (at most \(BillingLimits.cycleFanOut)).") var fanOut: Int?
    @Flag(help: "Seed the database and stop (copy its files to time the cycle again and again with --seeded).") var seedOnly = false
    @Flag(help: "Skip the seed: the database holds one made with --seed-only and the same counts, not yet billed.") var seeded = false
    @Flag(help: "Print JSON (the only format).") var json = false

    static let period = try! BillingPeriod("2026-11")
    static let scheduleID = "billing-bench-2026-11"
    /// Longest the cycle may take before the bench gives up.
    static let cycleTimeoutSeconds = 3_600.0

    func run() async throws {
        guard workspaces > 0, usage >= workspaces else { throw HostError(.badRequest, "--workspaces must be positive and --usage at least as many") }
        if let fanOut, !(1...BillingLimits.cycleFanOut).contains(fanOut) {
            throw HostError(.badRequest, "--fan-out is 1...\(BillingLimits.cycleFanOut)")
        }
        let configuration = try options.configuration(extra: ["log_level": "error"])
        HostLogHandler.bootstrap(configuration)
        let host = try await TenkiHost.open(configuration)
        let machine = try MachineFacts.measure(directory: configuration.dataDir)
        guard let billing = host.plugin(BillingPlugin.self) else { throw HostError(.internal, "the billing plugin is not loaded") }
        let database = host.database
        let seedStart = DispatchTime.now().uptimeNanoseconds
        let usageMicros = try await seed(database, billing: billing, policies: host.policies)
        // The seed's write-back is the seed's cost, not the cycle's: settle the database first.
        if let sqlite = database as? SQLiteDatabase { try await sqlite.checkpointAll() } else { _ = try? await database.execute("CHECKPOINT") }
        let seedSeconds = Double(DispatchTime.now().uptimeNanoseconds - seedStart) / 1e9
        if seedOnly {
            print(
                String(
                    decoding: try JSONSerialization.data(withJSONObject: ["seed_seconds": BillingBenchCommand.rounded(seedSeconds)]), as: UTF8.self))
            Foundation.exit(0)
        }

        var services = billing.operations.paying(through: InstantPaymentProvider())
        services.cycleFanOut = fanOut ?? BillingLimits.cycleFanOut
        let catalog = WorkflowCatalog()
        BillingWorkflows.definitions(services).forEach(catalog.register)
        catalog.register(WorkflowTaskQueue(BillingWorkflows.taskQueue, maxConcurrentRuns: BillingLimits.billingQueueConcurrentRuns))
        let engine = WorkflowEngine(database: database, catalog: catalog, concurrency: configuration.workflowConcurrency)
        let worker = Task {
            try await WorkflowWorker(engine: engine, pollIntervalMilliseconds: configuration.workflowPollIntervalMilliseconds).run()
        }

        let cpuStart = MachineFacts.processCPUSeconds()
        let start = DispatchTime.now().uptimeNanoseconds
        let result = try await BillingBenchCommand.cycle(engine)
        let cycleSeconds = Double(DispatchTime.now().uptimeNanoseconds - start) / 1e9
        let cpuSeconds = MachineFacts.processCPUSeconds() - cpuStart

        let counts = try await BillingBenchCommand.counts(database)
        var report: [String: Any] = [
            "benchmark": "billing-cycle", "machine": machine.object, "database": database.dialect.rawValue, "workspaces": workspaces,
            "usage_records": usage, "period": BillingBenchCommand.period.description, "fan_out": services.cycleFanOut,
            "workflow_concurrency": configuration.workflowConcurrency, "seed_seconds": BillingBenchCommand.rounded(seedSeconds),
            "cycle_seconds": BillingBenchCommand.rounded(cycleSeconds), "cpu_seconds": BillingBenchCommand.rounded(cpuSeconds),
            "invoices_per_second": (Double(counts.invoices) / cycleSeconds).rounded(),
            "usage_records_per_second": (Double(usage) / cycleSeconds).rounded(),
            "invoices_per_cpu_second": (Double(counts.invoices) / max(cpuSeconds, 1e-6)).rounded(),
            "usage_records_per_cpu_second": (Double(usage) / max(cpuSeconds, 1e-6)).rounded(),
            "usage_micros": usageMicros, "amount_due_cents": result.amountDueCents,
        ]
        report.merge(counts.object) { $1 }
        print(String(decoding: try JSONSerialization.data(withJSONObject: report, options: [.sortedKeys]), as: UTF8.self))
        let problems = counts.problems(expected: workspaces, usage: usage, result: result)
        for problem in problems { FileHandle.standardError.write(Data("billing bench: \(problem)\n".utf8)) }
        worker.cancel()
        // The bench's data is throwaway: stop here rather than wait for the worker to wind down.
        Foundation.exit(problems.isEmpty ? 0 : 1)
    }

    /// Seeds a fresh database, or (`--seeded`) checks the one given was seeded and not billed;
    /// returns the usage's total.
    func seed(_ database: any Database, billing: BillingPlugin, policies: PolicyEngine) async throws -> Int64 {
        let counts = try await database.read { db in
            (
                workspaces: try db.queryOne("SELECT COUNT(*) AS n FROM runner_workspaces")?.int("n") ?? 0,
                usage: try db.queryOne("SELECT COUNT(*) AS n FROM runner_usage")?.int("n") ?? 0,
                usageMicros: try db.queryOne("SELECT CAST(COALESCE(SUM(amount_micros), 0) AS BIGINT) AS n FROM runner_usage")?.int("n") ?? 0,
                invoices: try db.queryOne("SELECT COUNT(*) AS n FROM billing_invoices")?.int("n") ?? 0
            )
        }
        if seeded {
            guard counts.workspaces == workspaces, counts.usage == usage, counts.invoices == 0 else {
                throw HostError(
                    .badRequest,
                    "--seeded needs a database seeded with --seed-only --workspaces \(workspaces) --usage \(usage) and not billed: "
                        + "\(database.displayName) has \(counts.workspaces) workspaces, \(counts.usage) usage records, \(counts.invoices) invoices")
            }
            return counts.usageMicros
        }
        guard counts.workspaces == 0 else {
            throw HostError(.badRequest, "the bench needs a fresh database: \(database.displayName) has workspaces")
        }
        return try await BillingBenchSeed(
            database: database, ledger: billing.operations.ledger, policies: policies, workspaces: workspaces, usage: usage,
            period: BillingBenchCommand.period
        ).run()
    }

    static func rounded(_ seconds: Double) -> Double { (seconds * 1_000).rounded() / 1_000 }

    /// Starts the schedule for the period and waits for its result (through its continue-as-new runs).
    static func cycle(_ engine: WorkflowEngine) async throws -> ScheduleResult {
        let input = try WorkflowJSON.encode(ScheduleInput(billingPeriod: period.description))
        _ = try await engine.start(type: BillingWorkflows.scheduleType, input: input, id: scheduleID, taskQueue: BillingWorkflows.taskQueue)
        let deadline = DispatchTime.now().uptimeNanoseconds + UInt64(cycleTimeoutSeconds * 1e9)
        while DispatchTime.now().uptimeNanoseconds < deadline {
            let run = try await engine.run(id: scheduleID)
            switch run.status {
            case .completed:
                return try WorkflowJSON.decode(ScheduleResult.self, from: run.output ?? [], what: scheduleID)
            case .failed, .cancelled:
                throw HostError(.internal, "the schedule \(run.status): \(run.error ?? "")")
            default:
                try await Task.sleep(nanoseconds: 10_000_000)
            }
        }
        throw HostError(.unavailable, "the cycle did not finish within \(Int(cycleTimeoutSeconds)) s")
    }

    /// What the cycle left in the database.
    struct Counts {
        let invoices: Int
        let invoicedWorkspaces: Int
        let paidInvoices: Int
        let payments: Int
        let invoicedUsage: Int
        let totalCents: Int64
        /// Executions of the schedule's runs and of the cycles (a run executes again after each wait).
        let scheduleExecutions: Int64
        let cycleExecutions: Int64

        var object: [String: Any] {
            [
                "invoices": invoices, "invoiced_workspaces": invoicedWorkspaces, "paid_invoices": paidInvoices, "payments": payments,
                "invoiced_usage_records": invoicedUsage, "invoiced_total_cents": totalCents, "schedule_executions": scheduleExecutions,
                "cycle_executions": cycleExecutions,
            ]
        }

        /// Why the cycle's result is wrong, if it is: one invoice and one succeeded payment per workspace.
        func problems(expected: Int, usage: Int, result: ScheduleResult) -> [String] {
            var problems = invoicedUsage == usage ? [] : ["invoiced usage records: \(invoicedUsage), expected \(usage)"]
            for (name, count) in [
                ("invoices", invoices), ("invoiced workspaces", invoicedWorkspaces), ("paid invoices", paidInvoices),
                ("payments", payments), ("schedule invoices", result.invoices), ("schedule paid", result.paid),
            ] where count != expected {
                problems.append("\(name): \(count), expected \(expected)")
            }
            if !result.failed.isEmpty { problems.append("failed cycles: \(result.failed.prefix(5))") }
            return problems
        }
    }

    static func counts(_ database: any Database) async throws -> Counts {
        try await database.read { db in
            func count(_ sql: String) throws -> Int64 { try db.queryOne(sql, [.text(period.description)])?.int("n") ?? 0 }
            func executions(_ type: String) throws -> Int64 {
                try db.queryOne("SELECT CAST(COALESCE(SUM(executions), 0) AS BIGINT) AS n FROM workflow_runs WHERE type = $1", [.text(type)])?.int(
                    "n") ?? 0
            }
            return Counts(
                invoices: Int(try count("SELECT COUNT(*) AS n FROM billing_invoices WHERE period = $1")),
                invoicedWorkspaces: Int(try count("SELECT COUNT(DISTINCT workspace_id) AS n FROM billing_invoices WHERE period = $1")),
                paidInvoices: Int(try count("SELECT COUNT(*) AS n FROM billing_invoices WHERE period = $1 AND status = 'paid'")),
                payments: Int(
                    try count(
                        """
                        SELECT COUNT(*) AS n FROM billing_payments p JOIN billing_invoices i ON i.id = p.invoice_id
                        WHERE i.period = $1 AND p.status = 'succeeded'
                        """)),
                invoicedUsage: Int(
                    try count(
                        "SELECT COUNT(*) AS n FROM billing_invoice_usage u JOIN billing_invoices i ON i.id = u.invoice_id WHERE i.period = $1")),
                totalCents: try count("SELECT CAST(COALESCE(SUM(amount_due_cents), 0) AS BIGINT) AS n FROM billing_invoices WHERE period = $1"),
                scheduleExecutions: try executions(BillingWorkflows.scheduleType), cycleExecutions: try executions(BillingWorkflows.cycleType))
        }
    }
}
