import ArgumentParser
import Foundation
import Host

/// `tenki jobs list | metrics`: the jobs of the marketplace, as operators and tools read them.
struct JobsCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "jobs", abstract: "Workflow jobs: their state, why they wait, what they cost; queue and run metrics.",
        subcommands: [List.self, Metrics.self])

    struct List: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "List jobs, oldest first.")
        @OptionGroup var options: HostOptions
        @Option(help: "Only jobs in this inner status (queued, blocked, waiting, provisioning, provisioned, running, completed, foreign).")
        var status: String?
        @Option(help: "Only this workspace (id or slug).") var workspace: String?
        @Option(help: "At most this many.") var limit = 100
        @Flag(help: "Print JSON.") var json = false

        func run() async throws {
            guard status == nil || JobStatus(rawValue: status!) != nil else { throw HostError(.badRequest, "unknown status '\(status!)'") }
            let (_, store) = try await RunnerCommand.store(options)
            let id = try await store.workspaceID(named: workspace)
            let jobs = try await store.jobViews(status: status.flatMap(JobStatus.init(rawValue:)), workspace: id, limit: limit)
            if json {
                print(try RunnerCommand.json(jobs))
                return
            }
            for view in jobs {
                let job = view.job
                print(
                    "\(job.key)  \(view.state)\(view.reason.map { " (\($0))" } ?? "")  \(job.workspaceID)  \(job.repository)  "
                        + "\(job.sku ?? job.labels.joined(separator: ","))  \(view.billableMinutes) min  "
                        + "\(MoneyText.usd(view.amountMicros, decimals: 4))"
                )
            }
        }
    }

    struct Metrics: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Queue time and duration p50/p90 and failure rate per workspace and offering; the queue right now.")
        @OptionGroup var options: HostOptions
        @Option(help: "Only this workspace (id or slug).") var workspace: String?
        @Option(help: "Jobs finished within this many hours.") var hours: Int64 = 24
        @Flag(help: "Print JSON.") var json = false

        func run() async throws {
            let (_, store) = try await RunnerCommand.store(options)
            let id = try await store.workspaceID(named: workspace)
            let metrics = try await store.jobMetrics(workspace: id, windowSeconds: hours * 3600)
            let queue = try await store.queueDepths().filter { id == nil || $0.workspaceID == id }
            if json {
                print(try RunnerCommand.json(RunnerMetricsReport(jobs: metrics, queue: queue)))
                return
            }
            func s(_ value: Int64?) -> String { value.map { "\($0)s" } ?? "-" }
            for m in metrics {
                print(
                    "\(m.workspaceID)  \(m.sku)  jobs=\(m.jobs) failed=\(m.failed)  queue p50 \(s(m.queueSecondsP50)) p90 \(s(m.queueSecondsP90))"
                        + "  duration p50 \(s(m.durationSecondsP50)) p90 \(s(m.durationSecondsP90))")
            }
            for q in queue {
                print("\(q.workspaceID)  \(q.sku)  queued=\(q.queued) blocked=\(q.blocked) oldest=\(q.oldestQueuedAgeSeconds)s")
            }
        }
    }
}

/// What `tenki jobs metrics --json` and GET /runner/metrics answer.
struct RunnerMetricsReport: Codable {
    var jobs: [JobMetrics]
    var queue: [QueueDepth]
}

/// `tenki workspaces list | set | set-payment-method`.
struct WorkspacesCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "workspaces", abstract: "Workspaces (one per GitHub account) and the state admission reads.",
        subcommands: [List.self, Set.self, SetPaymentMethod.self])

    struct List: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "List workspaces.")
        @OptionGroup var options: HostOptions
        @Flag(help: "Print JSON.") var json = false

        func run() async throws {
            let (_, store) = try await RunnerCommand.store(options)
            let workspaces = try await store.workspaces()
            if json {
                print(try RunnerCommand.json(workspaces))
                return
            }
            for w in workspaces {
                print(
                    "\(w.id)  \(w.slug)  payment_method=\(w.hasPaymentMethod) suspended=\(w.suspended) addons=\(w.addons.joined(separator: ",")) "
                        + "extra_slots=\(w.extraSlotsX64)/\(w.extraSlotsMacOS)"
                )
            }
        }
    }

    struct Set: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Change a workspace's state; its blocked and waiting jobs go back to admission.")
        @OptionGroup var options: HostOptions
        @Argument(help: "Workspace id or slug.") var workspace: String
        @Option(help: "true or false.") var paymentMethod: Bool?
        @Option(help: "true or false.") var suspended: Bool?
        @Option(help: "Comma-separated add-on ids (empty for none).") var addons: String?
        @Option(help: "Extra x64 slots.") var extraSlotsX64: Int64?
        @Option(help: "Extra macOS slots.") var extraSlotsMacos: Int64?
        @Option(help: "Contract name under policies/contracts (empty for none).") var contract: String?

        func run() async throws {
            let (_, store) = try await RunnerCommand.store(options)
            let change = RunnerStore.WorkspaceChange(
                hasPaymentMethod: paymentMethod, suspended: suspended,
                addons: addons.map { $0.split(separator: ",").map { String($0).trimmingCharacters(in: .whitespaces) } },
                extraSlotsX64: extraSlotsX64, extraSlotsMacOS: extraSlotsMacos,
                contract: contract.map { $0.isEmpty ? nil : $0 })
            let requeued = try await store.update(workspace: workspace, change)
            print("updated \(workspace); \(requeued) job(s) back to admission")
        }
    }

    struct SetPaymentMethod: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "set-payment-method",
            abstract:
                "Record a payment method (the provider's reference): the workspace pays as it goes; blocked and waiting jobs go back to admission.")
        @OptionGroup var options: HostOptions
        @Argument(help: "Workspace id or slug.") var workspace: String
        @Option(help: "The payment provider's reference for the method (e.g. pm_...).") var providerRef: String

        func run() async throws {
            guard !providerRef.isEmpty else { throw HostError(.badRequest, "--provider-ref must not be empty") }
            let (_, store) = try await RunnerCommand.store(options)
            let requeued = try await store.update(workspace: workspace, .init(hasPaymentMethod: true, paymentMethodRef: .some(providerRef)))
            print("payment method \(providerRef) recorded on \(workspace); \(requeued) job(s) back to admission")
        }
    }
}
