import Foundation
import HTTPClient
import Spawn
import TestSupport

/// localstripe 1.15.10, the Stripe test peer: one per test process, started on first use on a
/// free port of 127.0.0.1 only, and gone when the test process ends (its stdin closes). It is
/// GPL-3.0-or-later, so it runs as a separate program and none of its code is in this
/// repository; `tools/install-deps.sh` installs it into `.build-venv`.
///
/// Tests share it without resetting it: each makes its own customers. It keeps its state in
/// memory only (localstripe would otherwise rewrite the whole store to the fixed path
/// `/tmp/localstripe.pickle` on every change, a file every instance on the machine shares). A
/// localstripe that is missing or does not start fails the test that asked for it; nothing skips.
package actor LocalStripe {
    package static let shared = LocalStripe()
    /// localstripe takes any key that starts with `sk_` and is longer than five characters.
    package static let secretKey = "sk_test_tenki_localstripe"
    /// How long a starting localstripe may take to answer.
    static let startTimeoutMilliseconds = 30_000
    static let startPollMilliseconds = 100

    private var starting: Task<Server, any Error>?
    private let http = HTTPClient()

    /// Its base URL (`http://127.0.0.1:PORT`), starting it first if it is not running yet.
    package func url() async throws -> String {
        let task = starting ?? Task { try await Self.start(http: http) }
        starting = task
        return try await task.value.url
    }

    /// A `pm_...` card made from a raw test card number (localstripe takes raw numbers; Stripe
    /// would not from a server), unattached.
    package func cardPaymentMethod(number: String) async throws -> String {
        let body = "type=card&card%5Bnumber%5D=\(number)&card%5Bexp_month%5D=12&card%5Bexp_year%5D=2030&card%5Bcvc%5D=123"
        let method = try await request("POST", "/v1/payment_methods", body: body)
        guard let id = method["id"] as? String else { throw MissingDependency(description: "localstripe made no card: \(method)") }
        return id
    }

    /// `GET path` as a JSON object (e.g. `/v1/customers/cus_...`), to check what a test made.
    nonisolated package func get(_ path: String) async throws -> [String: Any] {
        try await request("GET", path, body: nil)
    }

    private nonisolated func request(_ method: String, _ path: String, body: String?) async throws -> [String: Any] {
        let request = OutboundRequest(
            method: method, url: try await url() + path,
            headers: [("Authorization", "Bearer " + Self.secretKey), ("Content-Type", "application/x-www-form-urlencoded")],
            body: body.map { Array($0.utf8) })
        let response = try await http.send(request)
        guard response.status == 200, let object = try JSONSerialization.jsonObject(with: Data(response.body)) as? [String: Any] else {
            throw MissingDependency(description: "localstripe answered \(method) \(path) with \(response.status): \(response.bodyText)")
        }
        return object
    }

    /// A running localstripe: the process, the pipe whose closing stops it, its log.
    final class Server: Sendable {
        let process: ChildProcess
        let input: ChildPipe
        let port: Int
        let logPath: String
        var url: String { "http://127.0.0.1:\(port)" }

        init(process: ChildProcess, input: ChildPipe, port: Int, logPath: String) {
            self.process = process
            self.input = input
            self.port = port
            self.logPath = logPath
        }

        var logTail: String {
            let text = (try? String(contentsOfFile: logPath, encoding: .utf8)) ?? ""
            return String(text.suffix(2_000))
        }
    }

    /// localstripe's aiohttp app on 127.0.0.1 only (its own command binds every interface), with
    /// its saving to disk turned off and a thread that ends it when its stdin closes.
    static let script = """
        import os, sys, threading
        from aiohttp import web
        from localstripe.resources import Store
        from localstripe.server import app
        Store.dump_to_disk = lambda self: None
        threading.Thread(target=lambda: (sys.stdin.read(), os._exit(0)), daemon=True).start()
        web.run_app(app, host='127.0.0.1', port=int(sys.argv[1]))
        """

    static func start(http: HTTPClient) async throws -> Server {
        let python = try python()
        let directory = try TemporaryDirectory.make(prefix: "tenki-localstripe")
        let logPath = directory + "/localstripe.log"
        let log = open(logPath, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0o644)
        guard log >= 0 else { throw MissingDependency(description: "cannot write \(logPath)") }
        defer { close(log) }
        let port = TenkiProcess.freePort()
        let input = try ChildPipe()
        let process: ChildProcess
        do {
            process = try ChildProcess.start(
                python, ["-c", script, String(port)], stdin: .descriptor(input.readEnd), stdout: .descriptor(log), stderr: .descriptor(log))
        } catch {
            throw MissingDependency(description: "cannot run \(python) for localstripe: \(error); run tools/install-deps.sh")
        }
        input.closeRead()
        let server = Server(process: process, input: input, port: port, logPath: logPath)
        try await waitUntilAnswering(server, http: http, python: python)
        return server
    }

    static func waitUntilAnswering(_ server: Server, http: HTTPClient, python: String) async throws {
        let probe = OutboundRequest(
            url: server.url + "/v1/customers?limit=1", headers: [("Authorization", "Bearer " + secretKey)], timeoutMilliseconds: 2_000)
        for _ in 0..<(startTimeoutMilliseconds / startPollMilliseconds) {
            if let response = try? await http.send(probe), response.status == 200 { return }
            if let exit = server.process.exit {
                throw MissingDependency(
                    description: "localstripe (\(python)) ended (\(exit)): run tools/install-deps.sh\n"
                        + server.logTail)
            }
            try await Task.sleep(for: .milliseconds(startPollMilliseconds))
        }
        server.process.send(SIGTERM)
        throw MissingDependency(description: "localstripe did not answer on \(server.url) within \(startTimeoutMilliseconds) ms\n" + server.logTail)
    }

    /// The python that has localstripe: `TENKI_LOCALSTRIPE_PYTHON`, else the repository's `.build-venv`.
    static func python() throws -> String {
        if let configured = ProcessInfo.processInfo.environment["TENKI_LOCALSTRIPE_PYTHON"], !configured.isEmpty {
            guard FileManager.default.isExecutableFile(atPath: configured) else {
                throw MissingDependency(description: "TENKI_LOCALSTRIPE_PYTHON=\(configured) is not an executable")
            }
            return configured
        }
        let venv = Fixtures.packageRoot + "/.build-venv/bin/python"
        guard FileManager.default.isExecutableFile(atPath: venv) else {
            throw MissingDependency(
                description: "localstripe is not installed: no \(venv) and TENKI_LOCALSTRIPE_PYTHON is not set; run tools/install-deps.sh")
        }
        return venv
    }
}
