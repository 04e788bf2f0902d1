import Foundation
import Logging

/// The host's whole configuration, read once: defaults, then a flat TOML file, then
/// `TENKI_<KEY>` environment variables, then command-line flags. The defaults run with nothing
/// set: SQLite under `./data`, port 8080 on loopback.
package struct HostConfiguration: Sendable, Equatable {
    package var host = "127.0.0.1"
    package var port = 8080
    package var dataDir = "./data"
    /// `postgres://...` for PostgreSQL; nil keeps a SQLite file in `dataDir`.
    package var databaseURL: String?
    package var databasePoolSize = 8
    /// Secret for `X-Hub-Signature-256`; nil makes one and keeps it in `dataDir`.
    package var githubWebhookSecret: String?
    package var webhookMaxBodyBytes = HostLimits.webhookMaxBodyBytes
    package var logLevel = Logger.Level.info
    package var logFormat = "text"
    package var policyRoot = "./policies"
    package var scriptsRoot = "./scripts"
    /// How often `scripts_root` is checked for changes to the Lua workflow scripts.
    package var scriptsReloadPollMilliseconds = PolicyLimits.reloadPollMilliseconds
    /// When false, deliveries are stored but not dispatched (maintenance).
    package var dispatch = true
    package var inboxPollIntervalMilliseconds = 500
    package var inboxLeaseSeconds = 30
    package var inboxConcurrency = 32
    /// Compute provider for runner jobs: `local` (runs `runner_local_command` per job),
    /// `kubernetes` (a Pod per job, with a GitHub App's just-in-time runner) or `none`.
    package var runnerProvider = "local"
    /// Hosts Lua scripts may call with `http.request` (none by default).
    package var scriptHTTPAllowedHosts: [String] = []
    /// The runner image the Kubernetes provider starts.
    package var runnerImage = "ghcr.io/actions/actions-runner:latest"
    /// The shell command the local provider runs for each job (job facts in TENKI_JOB_* variables).
    package var runnerLocalCommand: String?
    /// How often the runner scheduler looks for work besides being woken by events.
    package var runnerSchedulerIntervalMilliseconds = 500
    /// How often the runner asks GitHub for failed deliveries and the real state of its jobs; 0 never (needs the GitHub App).
    package var runnerReconcileIntervalSeconds = 300
    /// A runner whose job has not started this long after it was provisioned is released (and the job queued again).
    package var runnerOrphanTimeoutSeconds = 600
    /// When false, this process starts, signals and lists workflows but executes none.
    package var workflowWorker = true
    package var workflowPollIntervalMilliseconds = 200
    /// A run claimed by a worker that stops renewing it is taken by another after this long.
    package var workflowLeaseSeconds = 30
    /// Runs one process executes at once.
    package var workflowConcurrency = 8
    /// Requests an API key may make a second, on average, and at once (a token bucket per key and process).
    package var apiRatePerSecond = 50
    package var apiRateBurst = 200
    /// Origins whose pages may call the API from a browser (`*`: any); empty turns CORS off.
    package var corsAllowedOrigins: [String] = []
    /// Registers the `tenki.test.*` workflow types (end-to-end tests and demos only).
    package var workflowTestTypes = false
    /// The GitHub App's id (or client id); nil leaves the App client (runner registration) unconfigured.
    package var githubAppID: String?
    /// PEM private key of the GitHub App (PKCS#1 as GitHub issues it, or PKCS#8).
    package var githubAppPrivateKeyFile: String?
    /// GitHub's REST API root: GitHub Enterprise Server's `https://HOST/api/v3`, or a test peer.
    package var githubAPIURL = "https://api.github.com"
    /// PEM CA bundle for `github_api_url`; nil trusts the system's.
    package var githubAPICAFile: String?
    /// The Stripe endpoint's signing secret (`whsec_...`, from Stripe's dashboard), read from
    /// this file; nil leaves `POST /webhooks/stripe` unconfigured (it answers 503).
    package var stripeWebhookSecretFile: String?
    /// Stripe's API root (localstripe's in tests).
    package var stripeAPIURL = "https://api.stripe.com"
    /// The Stripe secret key (`sk_...`), read from this file; nil leaves payments unconfigured.
    package var stripeSecretKeyFile: String?
    /// Kubernetes API server for runner Pods; nil leaves the Kubernetes provider unconfigured.
    package var kubernetesAPIURL: String?
    /// Bearer token file, re-read on every request (projected tokens rotate); nil: the in-cluster service account's.
    package var kubernetesTokenFile: String?
    /// PEM CA bundle of the API server; nil: the in-cluster service account's.
    package var kubernetesCAFile: String?
    /// Namespace runner Pods live in.
    package var kubernetesNamespace = "tenki-runners"

    package init() {}

    /// The keys, as written in the file and (upper-cased, prefixed `TENKI_`) in the environment.
    package static let keys: [String] = setters.map(\.key)

    private static let setters: [(key: String, set: @Sendable (inout HostConfiguration, String) throws -> Void)] = [
        ("host", { $0.host = $1 }),
        ("port", { $0.port = try int($1, "port", 0...65535) }),
        ("data_dir", { $0.dataDir = $1 }),
        ("database_url", { $0.databaseURL = $1.isEmpty ? nil : $1 }),
        ("database_pool_size", { $0.databasePoolSize = try int($1, "database_pool_size", 1...HostLimits.databaseMaxPoolSize) }),
        ("github_webhook_secret", { $0.githubWebhookSecret = $1.isEmpty ? nil : $1 }),
        ("webhook_max_body_bytes", { $0.webhookMaxBodyBytes = try int($1, "webhook_max_body_bytes", 1...HostLimits.webhookMaxBodyBytes) }),
        (
            "log_level",
            {
                guard let level = Logger.Level(rawValue: $1.lowercased()) else {
                    throw HostError(.badConfiguration, "log_level must be one of trace, debug, info, notice, warning, error, critical; got '\($1)'")
                }
                $0.logLevel = level
            }
        ),
        (
            "log_format",
            {
                guard ["text", "json"].contains($1) else { throw HostError(.badConfiguration, "log_format must be text or json; got '\($1)'") }
                $0.logFormat = $1
            }
        ),
        ("policy_root", { $0.policyRoot = $1 }),
        ("scripts_root", { $0.scriptsRoot = $1 }),
        ("scripts_reload_poll_ms", { $0.scriptsReloadPollMilliseconds = try int($1, "scripts_reload_poll_ms", 10...600_000) }),
        ("dispatch", { $0.dispatch = try bool($1, "dispatch") }),
        ("inbox_poll_interval_ms", { $0.inboxPollIntervalMilliseconds = try int($1, "inbox_poll_interval_ms", 10...60_000) }),
        ("inbox_lease_seconds", { $0.inboxLeaseSeconds = try int($1, "inbox_lease_seconds", 1...3_600) }),
        ("inbox_concurrency", { $0.inboxConcurrency = try int($1, "inbox_concurrency", 1...HostLimits.inboxMaxConcurrentEvents) }),
        (
            "runner_provider",
            {
                guard ["local", "kubernetes", "none"].contains($1) else {
                    throw HostError(.badConfiguration, "runner_provider must be local, kubernetes or none; got '\($1)'")
                }
                $0.runnerProvider = $1
            }
        ),
        (
            "cors_allowed_origins",
            {
                $0.corsAllowedOrigins = list($1)
            }
        ),
        (
            "script_http_allowed_hosts",
            {
                $0.scriptHTTPAllowedHosts = list($1)
            }
        ),
        (
            "runner_image",
            {
                guard !$1.isEmpty, !$1.contains(where: \.isWhitespace) else {
                    throw HostError(.badConfiguration, "runner_image must be an image reference; got '\($1)'")
                }
                $0.runnerImage = $1
            }
        ),
        ("runner_local_command", { $0.runnerLocalCommand = $1.isEmpty ? nil : $1 }),
        ("runner_scheduler_interval_ms", { $0.runnerSchedulerIntervalMilliseconds = try int($1, "runner_scheduler_interval_ms", 10...60_000) }),
        ("runner_reconcile_interval_seconds", { $0.runnerReconcileIntervalSeconds = try int($1, "runner_reconcile_interval_seconds", 0...86_400) }),
        ("runner_orphan_timeout_seconds", { $0.runnerOrphanTimeoutSeconds = try int($1, "runner_orphan_timeout_seconds", 60...86_400) }),
        ("workflow_worker", { $0.workflowWorker = try bool($1, "workflow_worker") }),
        ("workflow_poll_interval_ms", { $0.workflowPollIntervalMilliseconds = try int($1, "workflow_poll_interval_ms", 10...60_000) }),
        ("workflow_lease_seconds", { $0.workflowLeaseSeconds = try int($1, "workflow_lease_seconds", 1...3_600) }),
        ("api_rate_per_second", { $0.apiRatePerSecond = try int($1, "api_rate_per_second", 1...1_000_000) }),
        ("api_rate_burst", { $0.apiRateBurst = try int($1, "api_rate_burst", 1...1_000_000) }),
        ("workflow_concurrency", { $0.workflowConcurrency = try int($1, "workflow_concurrency", 1...WorkflowLimits.maxWorkerConcurrency) }),
        ("workflow_test_types", { $0.workflowTestTypes = try bool($1, "workflow_test_types") }),
        (
            "github_app_id",
            {
                let id = $1.trimmingCharacters(in: .whitespaces)
                // The numeric App id or its client id (`Iv23li...`); either is a valid JWT issuer.
                guard id.count <= 64, id.allSatisfy({ $0.isASCII && ($0.isLetter || $0.isNumber || $0 == ".") }) else {
                    throw HostError(.badConfiguration, "github_app_id must be the App's id or client id; got '\($1)'")
                }
                $0.githubAppID = id.isEmpty ? nil : id
            }
        ),
        ("github_app_private_key_file", { $0.githubAppPrivateKeyFile = $1.isEmpty ? nil : $1 }),
        ("github_api_url", { $0.githubAPIURL = try url($1, "github_api_url") }),
        ("github_api_ca_file", { $0.githubAPICAFile = $1.isEmpty ? nil : $1 }),
        ("stripe_webhook_secret_file", { $0.stripeWebhookSecretFile = $1.isEmpty ? nil : $1 }),
        ("stripe_api_url", { $0.stripeAPIURL = try url($1, "stripe_api_url") }),
        ("stripe_secret_key_file", { $0.stripeSecretKeyFile = $1.isEmpty ? nil : $1 }),
        ("kubernetes_api_url", { $0.kubernetesAPIURL = $1.isEmpty ? nil : try url($1, "kubernetes_api_url") }),
        ("kubernetes_token_file", { $0.kubernetesTokenFile = $1.isEmpty ? nil : $1 }),
        ("kubernetes_ca_file", { $0.kubernetesCAFile = $1.isEmpty ? nil : $1 }),
        (
            "kubernetes_namespace",
            {
                // A DNS-1123 label, as Kubernetes requires of a namespace.
                let valid =
                    (1...63).contains($1.count) && $1.allSatisfy { $0.isASCII && ($0.isLowercase || $0.isNumber || $0 == "-") }
                    && $1.first != "-" && $1.last != "-"
                guard valid else { throw HostError(.badConfiguration, "kubernetes_namespace must be a DNS-1123 label; got '\($1)'") }
                $0.kubernetesNamespace = $1
            }
        ),
    ]

    /// An http(s) URL without a trailing slash.
    private static func url(_ text: String, _ key: String) throws -> String {
        var value = text.trimmingCharacters(in: .whitespaces)
        guard value.hasPrefix("https://") || value.hasPrefix("http://"), value.count > "https://".count else {
            throw HostError(.badConfiguration, "\(key) must be an http:// or https:// URL; got '\(text)'")
        }
        while value.hasSuffix("/") { value.removeLast() }
        return value
    }

    /// A comma-separated list, each item trimmed, empty items dropped.
    private static func list(_ text: String) -> [String] {
        text.split(separator: ",").map { $0.trimmingCharacters(in: .whitespaces) }.filter { !$0.isEmpty }
    }

    private static func int(_ text: String, _ key: String, _ range: ClosedRange<Int>) throws -> Int {
        guard let value = Int(text.trimmingCharacters(in: .whitespaces)) else {
            throw HostError(.badConfiguration, "\(key) must be an integer; got '\(text)'")
        }
        guard range.contains(value) else {
            throw HostError(.badConfiguration, "\(key) must be within \(range.lowerBound)...\(range.upperBound); got \(value)")
        }
        return value
    }

    private static func bool(_ text: String, _ key: String) throws -> Bool {
        switch text.lowercased() {
        case "true", "1", "yes", "on": return true
        case "false", "0", "no", "off": return false
        default: throw HostError(.badConfiguration, "\(key) must be true or false; got '\(text)'")
        }
    }

    /// Sets one key from text, as every source does.
    package mutating func set(_ key: String, _ value: String, source: String) throws {
        guard let setter = HostConfiguration.setters.first(where: { $0.key == key }) else {
            throw HostError(
                .badConfiguration, "\(source): unknown configuration key '\(key)' (known: \(HostConfiguration.keys.joined(separator: ", ")))")
        }
        do {
            try setter.set(&self, value)
        } catch let error as HostError {
            throw HostError(.badConfiguration, "\(source): \(error.message)")
        }
    }

    /// Resolves the configuration from its sources. `file` is the `--config` path; without one,
    /// `TENKI_CONFIG` or `./tenki.toml` (if present) is read.
    package static func load(
        file: String?, environment: [String: String] = ProcessInfo.processInfo.environment,
        flags: [String: String] = [:]
    ) throws -> HostConfiguration {
        var configuration = HostConfiguration()
        let path = file ?? environment["TENKI_CONFIG"] ?? (FileManager.default.fileExists(atPath: "tenki.toml") ? "tenki.toml" : nil)
        if let path {
            guard let text = try? String(contentsOfFile: path, encoding: .utf8) else {
                throw HostError(.badConfiguration, "cannot read configuration file '\(path)'")
            }
            for (line, key, value) in try FlatTOML.parse(text, file: path) {
                try configuration.set(key, value, source: "\(path):\(line)")
            }
        }
        for key in keys {
            if let value = environment["TENKI_" + key.uppercased()] {
                try configuration.set(key, value, source: "TENKI_\(key.uppercased())")
            }
        }
        for (key, value) in flags.sorted(by: { $0.key < $1.key }) {
            try configuration.set(key, value, source: "--\(key.replacingOccurrences(of: "_", with: "-"))")
        }
        return configuration
    }

    /// The database URL in force: the configured one, or the SQLite file in `dataDir`.
    package var effectiveDatabaseURL: String {
        databaseURL ?? "sqlite:" + (dataDir as NSString).appendingPathComponent("tenki.db")
    }
}

/// The subset of TOML the configuration file uses: `key = value` lines with strings, integers
/// and booleans, and `#` comments. Anything else is an error naming the line.
package enum FlatTOML {
    package static func parse(_ text: String, file: String) throws -> [(line: Int, key: String, value: String)] {
        var entries: [(Int, String, String)] = []
        for (index, raw) in text.split(separator: "\n", omittingEmptySubsequences: false).enumerated() {
            let lineNumber = index + 1
            let line = raw.trimmingCharacters(in: .whitespaces)
            if line.isEmpty || line.hasPrefix("#") { continue }
            guard let equals = line.firstIndex(of: "=") else {
                throw HostError(.badConfiguration, "\(file):\(lineNumber): expected 'key = value'")
            }
            let key = line[..<equals].trimmingCharacters(in: .whitespaces)
            var value = line[line.index(after: equals)...].trimmingCharacters(in: .whitespaces)
            guard !key.isEmpty, key.allSatisfy({ $0.isLetter || $0.isNumber || $0 == "_" }) else {
                throw HostError(.badConfiguration, "\(file):\(lineNumber): bad key '\(key)'")
            }
            if value.hasPrefix("\"") {
                var out = ""
                var escaped = false
                var closed = false
                var rest = ""
                for ch in value.dropFirst() {
                    if closed {
                        rest.append(ch)
                        continue
                    }
                    if escaped {
                        switch ch {
                        case "n": out.append("\n")
                        case "t": out.append("\t")
                        case "\\": out.append("\\")
                        case "\"": out.append("\"")
                        default: throw HostError(.badConfiguration, "\(file):\(lineNumber): unknown escape '\\\(ch)'")
                        }
                        escaped = false
                    } else if ch == "\\" {
                        escaped = true
                    } else if ch == "\"" {
                        closed = true
                    } else {
                        out.append(ch)
                    }
                }
                let trailing = rest.trimmingCharacters(in: .whitespaces)
                guard closed, trailing.isEmpty || trailing.hasPrefix("#") else {
                    throw HostError(.badConfiguration, "\(file):\(lineNumber): unterminated string")
                }
                value = out
            } else {
                if let hash = value.firstIndex(of: "#") { value = value[..<hash].trimmingCharacters(in: .whitespaces) }
                guard value == "true" || value == "false" || Int(value.replacingOccurrences(of: "_", with: "")) != nil else {
                    throw HostError(.badConfiguration, "\(file):\(lineNumber): value of '\(key)' must be a quoted string, an integer or a boolean")
                }
                value = value.replacingOccurrences(of: "_", with: "")
            }
            entries.append((lineNumber, key, value))
        }
        return entries
    }
}
