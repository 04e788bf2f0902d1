import Foundation
import Host
import Logging
import TestSupport
import Testing

@Suite("Configuration")
struct ConfigurationTests {
    @Test("defaults run with nothing set")
    func defaults() throws {
        let config = try HostConfiguration.load(file: nil, environment: [:])
        #expect(config.host == "127.0.0.1")
        #expect(config.port == 8080)
        #expect(config.dataDir == "./data")
        #expect(config.effectiveDatabaseURL == "sqlite:./data/tenki.db")
        #expect(config.webhookMaxBodyBytes == 25 * 1024 * 1024)
        #expect(config.stripeAPIURL == "https://api.stripe.com" && config.stripeSecretKeyFile == nil)
    }

    @Test("file, then environment, then flags: each overrides the one before")
    func precedence() throws {
        let directory = try TemporaryDirectory.make(prefix: "tenki-config")
        let file = directory + "/tenki.toml"
        try """
        # Tenki Host
        port = 9000
        data_dir = "/var/lib/tenki"   # comment after a value
        log_level = "debug"
        dispatch = false
        github_webhook_secret = "from \\"file\\""
        """.write(toFile: file, atomically: true, encoding: .utf8)
        let fromFile = try HostConfiguration.load(file: file, environment: [:])
        #expect(fromFile.port == 9000)
        #expect(fromFile.dataDir == "/var/lib/tenki")
        #expect(fromFile.logLevel == .debug)
        #expect(fromFile.dispatch == false)
        #expect(fromFile.githubWebhookSecret == "from \"file\"")
        let fromEnv = try HostConfiguration.load(file: file, environment: ["TENKI_PORT": "9100", "TENKI_DATABASE_URL": "postgres://x@y/z"])
        #expect(fromEnv.port == 9100)
        #expect(fromEnv.effectiveDatabaseURL == "postgres://x@y/z")
        let fromFlags = try HostConfiguration.load(file: file, environment: ["TENKI_PORT": "9100"], flags: ["port": "9200"])
        #expect(fromFlags.port == 9200)
        #expect(fromFlags.dataDir == "/var/lib/tenki")
    }

    @Test("every key can come from TENKI_<KEY>")
    func everyKeyFromEnvironment() throws {
        let values: [String: String] = [
            "host": "0.0.0.0", "port": "1234", "data_dir": "/d", "database_url": "postgres://a@b/c", "database_pool_size": "3",
            "github_webhook_secret": "s", "webhook_max_body_bytes": "1000", "log_level": "error", "log_format": "json",
            "policy_root": "/p", "scripts_root": "/s", "scripts_reload_poll_ms": "40", "dispatch": "false", "inbox_poll_interval_ms": "100",
            "runner_provider": "none", "runner_image": "example/runner:1", "script_http_allowed_hosts": "api.example.com, hooks.example.org",
            "runner_local_command": "true", "runner_scheduler_interval_ms": "20",
            "runner_reconcile_interval_seconds": "0", "runner_orphan_timeout_seconds": "120",
            "inbox_lease_seconds": "5", "inbox_concurrency": "2", "workflow_worker": "false", "workflow_poll_interval_ms": "50",
            "workflow_lease_seconds": "7", "workflow_concurrency": "3", "workflow_test_types": "true", "api_rate_per_second": "7",
            "api_rate_burst": "9", "cors_allowed_origins": "https://a.example, https://b.example",
            "github_app_id": "12345", "github_app_private_key_file": "/k.pem", "github_api_url": "http://127.0.0.1:9/api/v3/",
            "github_api_ca_file": "/ca.pem", "kubernetes_api_url": "https://10.0.0.1:6443", "kubernetes_token_file": "/t",
            "kubernetes_ca_file": "/kca.pem", "kubernetes_namespace": "ci-runners", "stripe_webhook_secret_file": "/whsec",
            "stripe_api_url": "http://127.0.0.1:8420/", "stripe_secret_key_file": "/sk",
        ]
        #expect(Set(values.keys) == Set(HostConfiguration.keys), "a new key needs a row here")
        var environment: [String: String] = [:]
        for (key, value) in values { environment["TENKI_" + key.uppercased()] = value }
        let config = try HostConfiguration.load(file: nil, environment: environment)
        #expect(config.host == "0.0.0.0" && config.port == 1234 && config.dataDir == "/d" && config.databasePoolSize == 3)
        #expect(config.githubWebhookSecret == "s" && config.webhookMaxBodyBytes == 1000 && config.logLevel == .error)
        #expect(config.logFormat == "json" && config.policyRoot == "/p" && config.scriptsRoot == "/s" && !config.dispatch)
        #expect(config.scriptsReloadPollMilliseconds == 40 && config.apiRatePerSecond == 7 && config.apiRateBurst == 9)
        #expect(config.corsAllowedOrigins == ["https://a.example", "https://b.example"])
        #expect(config.inboxPollIntervalMilliseconds == 100 && config.inboxLeaseSeconds == 5 && config.inboxConcurrency == 2)
        #expect(config.scriptHTTPAllowedHosts == ["api.example.com", "hooks.example.org"])
        #expect(
            config.runnerProvider == "none" && config.runnerImage == "example/runner:1" && config.runnerLocalCommand == "true"
                && config.runnerSchedulerIntervalMilliseconds == 20)
        #expect(config.runnerReconcileIntervalSeconds == 0 && config.runnerOrphanTimeoutSeconds == 120)
        #expect(!config.workflowWorker && config.workflowPollIntervalMilliseconds == 50 && config.workflowLeaseSeconds == 7)
        #expect(config.workflowConcurrency == 3 && config.workflowTestTypes)
        #expect(config.githubAppID == "12345" && config.githubAppPrivateKeyFile == "/k.pem" && config.githubAPICAFile == "/ca.pem")
        #expect(config.githubAPIURL == "http://127.0.0.1:9/api/v3", "the trailing slash is dropped")
        #expect(config.kubernetesAPIURL == "https://10.0.0.1:6443" && config.kubernetesTokenFile == "/t")
        #expect(config.kubernetesCAFile == "/kca.pem" && config.kubernetesNamespace == "ci-runners")
        #expect(config.stripeWebhookSecretFile == "/whsec")
        #expect(config.stripeAPIURL == "http://127.0.0.1:8420" && config.stripeSecretKeyFile == "/sk")
    }

    @Test("GitHub App and Kubernetes keys default to unconfigured and refuse bad values")
    func gitHubAppAndKubernetesKeys() throws {
        let defaults = try HostConfiguration.load(file: nil, environment: [:])
        #expect(defaults.githubAppID == nil && defaults.githubAPIURL == "https://api.github.com" && defaults.kubernetesAPIURL == nil)
        #expect(defaults.kubernetesNamespace == "tenki-runners")
        let clientID = try HostConfiguration.load(file: nil, environment: ["TENKI_GITHUB_APP_ID": "Iv23liABC.def"])
        #expect(clientID.githubAppID == "Iv23liABC.def")
        for (environment, message) in [
            (["TENKI_GITHUB_APP_ID": "12/34"], "github_app_id must be"),
            (["TENKI_GITHUB_API_URL": "ftp://x"], "github_api_url must be an http"),
            (["TENKI_KUBERNETES_API_URL": "10.0.0.1"], "kubernetes_api_url must be an http"),
            (["TENKI_KUBERNETES_NAMESPACE": "Runners"], "kubernetes_namespace must be a DNS-1123 label"),
        ] {
            #expect(throws: HostError.self) { try HostConfiguration.load(file: nil, environment: environment) }
            do {
                _ = try HostConfiguration.load(file: nil, environment: environment)
            } catch let error as HostError {
                #expect(error.message.contains(message), "\(error.message)")
            }
        }
    }

    @Test("bad values are errors that name their source")
    func badValues() throws {
        let cases: [([String: String], String)] = [
            (["TENKI_PORT": "eighty"], "TENKI_PORT: port must be an integer"),
            (["TENKI_PORT": "70000"], "port must be within"),
            (["TENKI_LOG_LEVEL": "loud"], "log_level must be one of"),
            (["TENKI_WEBHOOK_MAX_BODY_BYTES": "999999999"], "webhook_max_body_bytes must be within"),
            (["TENKI_DISPATCH": "maybe"], "dispatch must be true or false"),
        ]
        for (environment, expected) in cases {
            let error = #expect(throws: HostError.self) { try HostConfiguration.load(file: nil, environment: environment) }
            #expect(error?.message.contains(expected) == true, "\(error?.message ?? "") should contain \(expected)")
            #expect(error?.code == .badConfiguration)
        }
    }

    @Test("a bad file names the file and line")
    func badFile() throws {
        let directory = try TemporaryDirectory.make(prefix: "tenki-config")
        let file = directory + "/bad.toml"
        try "port = 1\n[section]\n".write(toFile: file, atomically: true, encoding: .utf8)
        let error = #expect(throws: HostError.self) { try HostConfiguration.load(file: file, environment: [:]) }
        #expect(error?.message == "\(file):2: expected 'key = value'")
        try "portt = 1\n".write(toFile: file, atomically: true, encoding: .utf8)
        let unknown = #expect(throws: HostError.self) { try HostConfiguration.load(file: file, environment: [:]) }
        #expect(unknown?.message.hasPrefix("\(file):1: unknown configuration key 'portt'") == true)
        #expect(throws: HostError.self) { try HostConfiguration.load(file: directory + "/missing.toml", environment: [:]) }
    }
}
