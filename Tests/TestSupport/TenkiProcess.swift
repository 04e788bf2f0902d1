import Foundation
import HTTPClient
import Spawn

/// A `tenki` executable run by a test: `serve` on a free loopback port, or one CLI command.
package final class TenkiProcess: Sendable {
    package let process: ChildProcess
    package let port: Int
    package let logPath: String
    /// An ops key made for the test before the server started.
    package let opsKey: String
    package var baseURL: String { "http://127.0.0.1:\(port)" }
    /// The ops key as request headers.
    package var authorization: [(name: String, value: String)] { [(name: "Authorization", value: "Bearer \(opsKey)")] }

    /// GET `path` with the ops key.
    package func get(_ path: String) async throws -> OutboundResponse {
        try await HTTPClient().get(baseURL + path, headers: authorization)
    }

    /// POST `body` to `path` as JSON with the ops key.
    package func post(_ path: String, json body: String) async throws -> OutboundResponse {
        try await HTTPClient().post(
            baseURL + path, headers: authorization + [(name: "Content-Type", value: "application/json")], body: Array(body.utf8))
    }

    /// The built `tenki` beside the test bundle (`swift build` puts both in one folder).
    package static func executable() throws -> String {
        var candidates: [String] = []
        if let env = ProcessInfo.processInfo.environment["TENKI_BINARY"] { candidates.append(env) }
        let bundle = URL(fileURLWithPath: CommandLine.arguments[0]).deletingLastPathComponent()
        candidates.append(bundle.appendingPathComponent("tenki").path)
        candidates.append(bundle.deletingLastPathComponent().appendingPathComponent("tenki").path)
        candidates.append(Fixtures.packageRoot + "/.build/debug/tenki")
        for candidate in candidates where FileManager.default.isExecutableFile(atPath: candidate) { return candidate }
        throw MissingDependency(description: "tenki executable not found (looked in \(candidates)); run `swift build` first")
    }

    package static func freePort() -> Int {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        defer { close(fd) }
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        address.sin_port = 0
        var length = socklen_t(MemoryLayout<sockaddr_in>.size)
        _ = withUnsafeMutablePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, length) }
        }
        _ = withUnsafeMutablePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(fd, $0, &length) }
        }
        return Int(UInt16(bigEndian: address.sin_port))
    }

    /// At most this many servers start at once: the whole suite runs its tests concurrently on
    /// two cores, and a stampede of starting processes starves every one of them.
    static let startups = StartupGate(width: 2)

    /// Starts `tenki serve` and waits until `/healthz` answers.
    package static func serve(
        dataDir: String, databaseURL: String?, secret: String, environment: [String: String] = [:],
        port: Int? = nil
    ) async throws -> TenkiProcess {
        await startups.enter()
        defer { startups.leave() }
        let port = port ?? freePort()
        var arguments = ["serve", "--host", "127.0.0.1", "--port", String(port), "--data-dir", dataDir]
        if let databaseURL { arguments += ["--database-url", databaseURL] }
        var env = ProcessInfo.processInfo.environment
        env["TENKI_GITHUB_WEBHOOK_SECRET"] = secret
        env["TENKI_INBOX_POLL_INTERVAL_MS"] = "50"
        for (key, value) in environment { env[key] = value }
        try FileManager.default.createDirectory(atPath: dataDir, withIntermediateDirectories: true)
        let logPath = dataDir + "/serve-\(port).log"
        let log = open(logPath, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0o644)
        guard log >= 0 else { throw MissingDependency(description: "cannot write \(logPath)") }
        defer { close(log) }
        var storage = ["--data-dir", dataDir]
        if let databaseURL { storage += ["--database-url", databaseURL] }
        let key = try ChildProcess.run(try executable(), ["keys", "create", "--role", "ops", "--name", "tests"] + storage, environment: env)
        guard key.status == 0 else { throw MissingDependency(description: "tenki keys create failed: \(key.stderrText)") }
        let process = try ChildProcess.start(
            try executable(), arguments, environment: env, stdin: .null, stdout: .descriptor(log), stderr: .descriptor(log))
        let server = TenkiProcess(
            process: process, port: port, logPath: logPath, opsKey: key.stdoutText.trimmingCharacters(in: .whitespacesAndNewlines))
        let client = HTTPClient()
        let deadline = Date().addingTimeInterval(120)  // generous: a loaded machine starts slowly
        while Date() < deadline {
            if let exit = process.exit {
                throw MissingDependency(description: "tenki serve ended (\(exit)): \(server.log)")
            }
            if let response = try? await client.send(OutboundRequest(url: server.baseURL + "/healthz", timeoutMilliseconds: 1_000)),
                response.status == 200
            {
                return server
            }
            try await Task.sleep(nanoseconds: 50_000_000)
        }
        server.kill()
        throw MissingDependency(description: "tenki serve did not become healthy: \(server.log)")
    }

    init(process: ChildProcess, port: Int, logPath: String, opsKey: String) {
        self.process = process
        self.port = port
        self.logPath = logPath
        self.opsKey = opsKey
    }

    package var log: String { (try? String(contentsOfFile: logPath, encoding: .utf8)) ?? "" }

    /// SIGKILL: no chance to clean up, as in a crash.
    package func kill() {
        process.send(SIGKILL)
        process.waitUntilExit()
    }

    /// SIGTERM, then waits for the exit status.
    package func terminate() -> Int32 {
        process.send(SIGTERM)
        return process.waitUntilExit().status
    }

    deinit { kill() }

    /// Runs `tenki ARGS` to completion; returns exit status and standard output.
    package static func run(_ arguments: [String], environment: [String: String] = [:]) throws -> (status: Int32, output: String, error: String) {
        var env = ProcessInfo.processInfo.environment
        for (key, value) in environment { env[key] = value }
        let result = try ChildProcess.run(try executable(), arguments, environment: env)
        return (result.status, result.stdoutText, result.stderrText)
    }
}

/// A counting gate for async callers (FIFO).
/// Unchecked Sendable: its state is touched only under its lock.
final class StartupGate: @unchecked Sendable {
    private let lock = NSLock()
    private var free: Int
    private var waiters: [CheckedContinuation<Void, Never>] = []

    init(width: Int) { free = width }

    func enter() async {
        await withCheckedContinuation { (continuation: CheckedContinuation<Void, Never>) in
            lock.lock()
            if free > 0 {
                free -= 1
                lock.unlock()
                continuation.resume()
            } else {
                waiters.append(continuation)
                lock.unlock()
            }
        }
    }

    func leave() {
        lock.lock()
        if waiters.isEmpty {
            free += 1
            lock.unlock()
        } else {
            let next = waiters.removeFirst()
            lock.unlock()
            next.resume()
        }
    }
}
