import ArgumentParser
import Foundation
import Logging

/// The options every command that touches data shares with `serve`.
package struct HostOptions: ParsableArguments {
    @Option(help: "Configuration file (flat TOML). Default: $TENKI_CONFIG, else ./tenki.toml if present.")
    package var config: String?

    @Option(help: "Data directory (SQLite file, generated secrets). Env: TENKI_DATA_DIR.")
    package var dataDir: String?

    @Option(help: "postgres://... to use PostgreSQL instead of SQLite. Env: TENKI_DATABASE_URL.")
    package var databaseURL: String?

    @Option(help: "Log level (trace...critical). Env: TENKI_LOG_LEVEL.")
    package var logLevel: String?

    @Option(name: .customLong("set"), help: "Any configuration key, as key=value (repeatable).")
    package var settings: [String] = []

    package init() {}

    /// Flags as configuration keys; `extra` adds a command's own (e.g. serve's host and port).
    package func configuration(extra: [String: String] = [:]) throws -> HostConfiguration {
        var flags = extra
        for setting in settings {
            guard let equals = setting.firstIndex(of: "=") else {
                throw HostError(.badConfiguration, "--set expects key=value; got '\(setting)'")
            }
            flags[String(setting[..<equals])] = String(setting[setting.index(after: equals)...])
        }
        if let dataDir { flags["data_dir"] = dataDir }
        if let databaseURL { flags["database_url"] = databaseURL }
        if let logLevel { flags["log_level"] = logLevel }
        return try HostConfiguration.load(file: config, flags: flags)
    }

    /// Opens and migrates the host for a command that reads or writes data.
    package func openHost(logLevel: Logger.Level = .warning) async throws -> TenkiHost {
        let configuration = try self.configuration()
        var logger = Logger(label: "tenki")
        logger.logLevel = max(logLevel, configuration.logLevel)
        return try await TenkiHost.open(configuration, logger: logger)
    }
}
