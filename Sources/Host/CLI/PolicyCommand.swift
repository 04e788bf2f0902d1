import ArgumentParser
import Foundation
import HTTPClient
import Logging
import Lua

/// `tenki policy check | test | eval | status`: for ops and sales changing policies.
package struct PolicyCommand: AsyncParsableCommand {
    package static let configuration = CommandConfiguration(
        commandName: "policy", abstract: "Check, test, dry-run and inspect the Lua policies.",
        subcommands: [Check.self, Test.self, Eval.self, Status.self, Versions.self])

    package init() {}

    static func files(_ path: String?, options: HostOptions) throws -> (String, [PolicyFile]) {
        let root = try path ?? options.configuration().policyRoot
        return (root, try DirectoryPolicySource(root: root).read())
    }

    struct Check: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Validate a policy directory (syntax, exports, examples) without loading it; exit 65 with file:line on failure.")
        @OptionGroup var options: HostOptions
        @Argument(help: "Policy directory (default: the configured policy_root).") var path: String?

        func run() async throws {
            let (root, files) = try PolicyCommand.files(path, options: options)
            let errors = PolicyEngine.check(files)
            if errors.isEmpty {
                print("ok: \(files.count) file(s) in \(root), version \(policyVersion(of: files))")
            } else {
                errors.forEach { FileHandle.standardError.write(Data(($0 + "\n").utf8)) }
                throw HostError(.rejected, "\(errors.count) error(s) in \(root)")
            }
        }
    }

    struct Test: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Run every policy's examples and report each.")
        @OptionGroup var options: HostOptions
        @Argument(help: "Policy directory (default: the configured policy_root).") var path: String?

        func run() async throws {
            let (_, files) = try PolicyCommand.files(path, options: options)
            let set = PolicySet(files: files, loadedAt: Date())
            let worker: PolicyWorker
            do { worker = try PolicyWorker(set: set) } catch let error as LuaError {
                throw HostError(.rejected, PolicyError(error, defaultFile: "?").description)
            }
            var failures = 0
            var passed = 0
            for path in set.policyPaths {
                let count = (try? worker.field(path, "examples").tableValue?.array.count) ?? 0
                let errors = PolicyExamples.run(worker: worker, path: path)
                failures += errors.count
                passed += max(0, count - errors.count)
                for error in errors { print("FAIL \(error)") }
                if errors.isEmpty, count > 0 { print("ok   \(path): \(count) example(s)") }
            }
            print("\(passed) passed, \(failures) failed")
            if failures > 0 { throw HostError(.rejected, "\(failures) example(s) failed") }
        }
    }

    struct Eval: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Dry-run a decision: what would this cost, and why, line by line.",
            discussion: """
                Decisions: price, consume (free minutes), admit, lines (monthly), eligible (add-on or slots), \
                abuse-signup, abuse-job. Input is the JSON the policy receives (see README, Policies).
                """)
        @OptionGroup var options: HostOptions
        @Argument(help: "The decision: price, consume, admit, lines, eligible, abuse-signup or abuse-job.") var decision: String
        @Option(help: "Input JSON, or @file to read it from a file.") var input: String
        @Flag(help: "Print JSON.") var json = false

        func run() async throws {
            let configuration = try options.configuration()
            var logger = Logger(label: "tenki")
            logger.logLevel = .critical
            let engine = PolicyEngine(source: DirectoryPolicySource(root: configuration.policyRoot), logger: logger)
            try engine.loadForCommand()
            var text = input
            if text.hasPrefix("@") {
                guard let data = FileManager.default.contents(atPath: String(text.dropFirst())) else {
                    throw HostError(.notFound, "cannot read \(text.dropFirst())")
                }
                text = String(decoding: data, as: UTF8.self)
            }
            switch decision {
            case "price":
                try dryRun(JobPriceInput.self, text, { try engine.priceJob($0).price }) { price in
                    guard price.matched else { return ["not ours: the job's labels match no offering; it costs nothing"] }
                    return ["\(price.sku ?? "?"): \(price.billableMinutes) billable minute(s), \(price.freeMinutesConsumed) free minute(s) used"]
                        + price.lines.map {
                            "  \($0.description): \($0.quantity) × \(MoneyText.usd($0.unitPriceMicros, decimals: 4)) = "
                                + "\(MoneyText.usd($0.amountMicros, decimals: 4))"
                        }
                        + ["total \(MoneyText.usd(price.amountMicros, decimals: 4)) (policy version \(price.policyVersion))"]
                }
            case "admit":
                try dryRun(AdmissionInput.self, text, engine.admitJob) { a in
                    [
                        "\(a.verdict.rawValue)\(a.reason.map { " (\($0))" } ?? "")\(a.sku.map { " on \($0)" } ?? "")"
                            + "\(a.slotLimit.map { ", slot limit \($0)" } ?? ""), priority \(a.priority) (policy version \(a.policyVersion))"
                    ]
                }
            case "lines":
                try dryRun(MonthlyLinesInput.self, text, engine.monthlyLines) { lines in
                    lines.lines.map {
                        "  \($0.description): \($0.quantity) × \(MoneyText.usd($0.unitPriceMicros)) = \(MoneyText.usd($0.amountMicros))"
                    }
                        + ["total \(MoneyText.usd(lines.totalMicros)) (policy version \(lines.policyVersion))"]
                }
            case "consume":
                try dryRun(JobPriceInput.self, text, engine.consumeFreeMinutes) { c in
                    guard c.matched else { return ["not ours: the job's labels match no offering"] }
                    return [
                        "\(c.billableMinutes) billable minute(s): \(c.freeMinutesConsumed) free minute(s) consumed, \(c.chargedMinutes) minute(s) "
                            + "charged in money (policy version \(c.policyVersion))"
                    ]
                }
            case "eligible":
                try dryRun(EligibilityRequest.self, text, engine.eligibility) { e in
                    [(e.eligible ? "eligible" : "not eligible") + (e.reason.map { ": \($0)" } ?? "") + " (policy version \(e.policyVersion))"]
                }
            case "abuse-signup":
                try dryRun(SignupInput.self, text, engine.abuseOnSignup) { v in
                    [
                        "\(v.action.rawValue), score \(v.score)" + (v.reasons.isEmpty ? "" : ": " + v.reasons.joined(separator: ", "))
                            + " (policy version \(v.policyVersion))"
                    ]
                }
            case "abuse-job":
                try dryRun(JobActivity.self, text, engine.abuseOnJob) { v in
                    [
                        "\(v.action.rawValue), score \(v.score)" + (v.reasons.isEmpty ? "" : ": " + v.reasons.joined(separator: ", "))
                            + " (policy version \(v.policyVersion))"
                    ]
                }
            default:
                throw HostError(
                    .badRequest, "unknown decision '\(decision)' (known: price, consume, admit, lines, eligible, abuse-signup, abuse-job)")
            }
        }

        /// Decodes the input, runs the decision, prints JSON or the human lines.
        func dryRun<I: Decodable, O: Encodable>(
            _ type: I.Type, _ text: String, _ decide: (I) throws -> O,
            human: (O) -> [String]
        ) throws {
            let input: I
            do {
                input = try JSONDecoder().decode(I.self, from: Data(text.utf8))
            } catch {
                throw HostError(.badRequest, "\(decision) input: \(error)")
            }
            let output: O
            do { output = try decide(input) } catch let error as PolicyError { throw HostError(.badRequest, error.description) }
            if json {
                print(try JSONCoding.text(output, pretty: true))
            } else {
                human(output).forEach { print($0) }
            }
        }
    }

    struct Versions: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "List the policy versions that have served, when each began, and the changes each schedules ahead.")
        @OptionGroup var options: HostOptions
        @Flag(help: "Print JSON.") var json = false

        struct Row: Encodable {
            let version: String
            let activatedAt: String
            let files: [String]
            let scheduled: [Scheduled]
            struct Scheduled: Encodable {
                let policy: String
                let file: String
                let effectiveFrom: String?
                enum CodingKeys: String, CodingKey { case policy, file, effectiveFrom = "effective_from" }
            }
            enum CodingKeys: String, CodingKey { case version, activatedAt = "activated_at", files, scheduled }
        }

        func run() async throws {
            let host = try await options.openHost()
            let history = try await PolicyHistoryStore.load(from: host.database)
            let rows: [Row] = history.map { entry in
                let set = PolicySet(files: entry.files, loadedAt: entry.activatedAt)
                let schedule = PolicyEngine.validateAndSchedule(set).schedule
                let scheduled = schedule.sorted { $0.key < $1.key }.flatMap { policy, files in
                    files.map {
                        Row.Scheduled(
                            policy: policy, file: $0.path,
                            effectiveFrom: $0.effectiveFrom == Int64.min ? nil : Timestamp.iso(ms: $0.effectiveFrom * 1000))
                    }
                }
                return Row(
                    version: entry.version, activatedAt: Timestamp.iso(ms: Timestamp.ms(entry.activatedAt)),
                    files: entry.files.map(\.path), scheduled: scheduled)
            }
            if json {
                print(try JSONCoding.text(rows, pretty: true))
            } else if rows.isEmpty {
                print("no policy version has served yet (versions are recorded by `tenki serve`)")
            } else {
                for row in rows {
                    print("\(row.version)  from \(row.activatedAt)  \(row.files.count) file(s)")
                    for entry in row.scheduled {
                        print("    \(entry.policy) answered by \(entry.file)\(entry.effectiveFrom.map { " from \($0)" } ?? "")")
                    }
                }
            }
            await host.database.close()
        }
    }

    struct Status: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Ask a running `tenki serve` which policy version it serves and what it last rejected.")
        @Option(help: "The server's base URL.") var url = "http://127.0.0.1:8080"
        @Option(help: "An API key (ops or sales). Default: $TENKI_API_KEY.") var apiKey: String?

        func run() async throws {
            let response: OutboundResponse
            let key = apiKey ?? ProcessInfo.processInfo.environment["TENKI_API_KEY"] ?? ""
            do {
                response = try await HTTPClient().get(url + "/policies/status", headers: key.isEmpty ? [] : [("Authorization", "Bearer " + key)])
            } catch {
                throw HostError(.unavailable, "cannot reach \(url): \(error)")
            }
            guard response.status == 200 else { throw HostError(.unavailable, "\(url) answered \(response.status)") }
            print(response.bodyText)
        }
    }
}

/// Display of micro-cents as dollars (rounded half-up, for people only).
package enum MoneyText {
    package static func usd(_ micros: Int64, decimals: Int = 2) -> String {
        precondition((0...8).contains(decimals))
        var unit: Int64 = 1
        for _ in 0..<(8 - decimals) { unit *= 10 }
        let negative = micros < 0
        let magnitude = micros.magnitude
        let rounded = (magnitude + UInt64(unit / 2)) / UInt64(unit)
        var scale: UInt64 = 1
        for _ in 0..<decimals { scale *= 10 }
        let fraction = String(rounded % scale)
        let padded = String(repeating: "0", count: max(0, decimals - fraction.count)) + fraction
        return (negative ? "-$" : "$") + String(rounded / scale) + (decimals > 0 ? "." + padded : "")
    }
}

extension PolicyEngine {
    /// Loads the policies for a one-off command; rejected ones are its error, every file:line.
    @discardableResult
    func loadForCommand() throws -> String {
        switch reload() {
        case .loaded(let version), .unchanged(let version): return version
        case .rejected(_, let errors): throw HostError(.rejected, "policies rejected:\n" + errors.joined(separator: "\n"))
        }
    }
}
