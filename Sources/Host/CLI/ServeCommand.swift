import ArgumentParser
import Foundation
import Logging
import SQL

/// `tenki serve`: the HTTP server, the event dispatcher and every plugin's services.
package struct ServeCommand: AsyncParsableCommand {
    package static let configuration = CommandConfiguration(
        commandName: "serve", abstract: "Run the host: webhooks in, events dispatched, plugins working.")

    @OptionGroup package var options: HostOptions

    @Option(help: "Address to listen on. Env: TENKI_HOST. Default 127.0.0.1.")
    package var host: String?

    @Option(help: "Port to listen on. Env: TENKI_PORT. Default 8080.")
    package var port: Int?

    package init() {}

    package func run() async throws {
        var extra: [String: String] = [:]
        if let host { extra["host"] = host }
        if let port { extra["port"] = String(port) }
        let configuration = try options.configuration(extra: extra)
        HostLogHandler.bootstrap(configuration)
        let logger = Logger(label: "tenki")
        var lock: ServeLock?
        if configuration.databaseURL == nil {
            lock = try ServeLock(path: (configuration.dataDir as NSString).appendingPathComponent("tenki.serve.lock"))
        }
        defer { withExtendedLifetime(lock) {} }
        let host = try await TenkiHost.open(configuration, logger: logger)
        logger.info(
            "tenki serve starting",
            metadata: [
                "version": .string(TenkiVersion.current), "database": .string(host.database.displayName),
                "plugins": .string(host.plugins.map { type(of: $0).name }.joined(separator: ",")),
            ])
        try await host.serve()
        logger.info("tenki serve stopped")
    }
}

/// An exclusive lock on a file: one `tenki serve` per SQLite data directory.
final class ServeLock {
    private let fd: Int32

    init(path: String) throws {
        try FileManager.default.createDirectory(atPath: (path as NSString).deletingLastPathComponent, withIntermediateDirectories: true)
        fd = open(path, O_CREAT | O_RDWR, 0o644)
        guard fd >= 0 else { throw HostError(.unavailable, "cannot open lock file \(path)") }
        guard flock(fd, LOCK_EX | LOCK_NB) == 0 else {
            close(fd)
            throw HostError(.unavailable, "another `tenki serve` is using this data directory (\(path) is locked)")
        }
    }

    deinit {
        flock(fd, LOCK_UN)
        close(fd)
    }
}
