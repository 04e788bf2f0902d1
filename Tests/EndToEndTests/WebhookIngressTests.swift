import Foundation
import HTTPClient
import TenkiCrypto
import TestSupport
import Testing

/// `tenki serve` started as a process on a loopback port, spoken to over HTTP as GitHub would.
@Suite("GitHub webhooks through a running tenki serve")
struct WebhookIngressTests {
    static let secret = "e2e-secret-\(UInt32.random(in: 0...UInt32.max))"

    struct Harness {
        let test: TestDatabase
        var dataDir: String { test.directory + "/data" }
        var storageArguments: [String] {
            ["--data-dir", dataDir] + (test.kind == .postgres ? ["--database-url", test.url] : [])
        }
        var databaseURL: String? { test.kind == .postgres ? test.url : nil }

        init(_ kind: DriverKind) throws { test = try TestDatabase.make(kind) }

        func serve(_ environment: [String: String] = [:], port: Int? = nil) async throws -> TenkiProcess {
            try await TenkiProcess.serve(
                dataDir: dataDir, databaseURL: databaseURL, secret: WebhookIngressTests.secret,
                environment: environment, port: port)
        }

        /// `tenki webhooks list --json`, keyed by delivery id.
        func deliveries() throws -> [String: [String: Any]] {
            let result = try TenkiProcess.run(
                ["webhooks", "list", "--json", "--limit", "1000"] + storageArguments,
                environment: ["TENKI_GITHUB_WEBHOOK_SECRET": WebhookIngressTests.secret])
            guard result.status == 0 else { throw MissingDependency(description: "webhooks list failed: \(result.error)") }
            let array = try JSONSerialization.jsonObject(with: Data(result.output.utf8)) as? [[String: Any]] ?? []
            var byID: [String: [String: Any]] = [:]
            for item in array { byID[item["delivery_id"] as! String] = item }
            return byID
        }

        /// Waits until every listed delivery has this status.
        func waitUntil(_ ids: [String], status: String, timeoutSeconds: Double = 30) async throws -> [String: [String: Any]] {
            let deadline = Date().addingTimeInterval(timeoutSeconds)
            while true {
                let all = try deliveries()
                if ids.allSatisfy({ all[$0]?["status"] as? String == status }) { return all }
                if Date() > deadline {
                    Issue.record("timed out waiting for \(status): \(ids.map { "\($0)=\(all[$0]?["status"] ?? "missing")" })")
                    return all
                }
                try await Task.sleep(nanoseconds: 100_000_000)
            }
        }
    }

    static func post(
        _ server: TenkiProcess, event: String?, delivery: String?, body: [UInt8], signature: String? = "sign",
        extraHeaders: [(name: String, value: String)] = []
    ) async throws -> OutboundResponse {
        var headers: [(name: String, value: String)] = [(name: "Content-Type", value: "application/json")]
        if let event { headers.append((name: "X-GitHub-Event", value: event)) }
        if let delivery { headers.append((name: "X-GitHub-Delivery", value: delivery)) }
        if let signature {
            let value = signature == "sign" ? WebhookSignature.gitHubHeader(secret: Array(secret.utf8), body: body) : signature
            headers.append((name: "X-Hub-Signature-256", value: value))
        }
        headers += extraHeaders
        return try await HTTPClient().send(
            OutboundRequest(
                method: "POST", url: server.baseURL + "/webhooks/github",
                headers: headers, body: body, timeoutMilliseconds: 60_000))
    }

    static func action(of body: [UInt8]) -> String? {
        (try? JSONSerialization.jsonObject(with: Data(body)) as? [String: Any])?["action"] as? String
    }

    @Test("every fixture payload is stored byte for byte and dispatched exactly once", arguments: DriverKind.allCases)
    func everyFixtureStoredAndDispatchedOnce(_ kind: DriverKind) async throws {
        let harness = try Harness(kind)
        let server = try await harness.serve()
        let fixtures = try Fixtures.github()
        var ids: [String] = []
        for (index, fixture) in fixtures.enumerated() {
            let id = "fixture-\(index)-\(UUID().uuidString)"
            ids.append(id)
            let response = try await Self.post(server, event: fixture.event, delivery: id, body: fixture.body)
            #expect(response.status == 202, "\(fixture.file): \(response.bodyText)")
        }
        let stored = try await harness.waitUntil(ids, status: "dispatched")
        for (id, fixture) in zip(ids, fixtures) {
            let delivery = try #require(stored[id], "\(fixture.file) not stored")
            #expect(delivery["event"] as? String == fixture.event)
            #expect(delivery["action"] as? String == Self.action(of: fixture.body), "\(fixture.file)")
            #expect(delivery["handled_count"] as? Int == 1, "\(fixture.file) handled \(delivery["handled_count"] ?? "?") times")
            #expect(delivery["body_sha256"] as? String == Hex.encode(Digest.sha256(fixture.body)))
        }
        // The raw body comes back byte for byte.
        let shown = try TenkiProcess.run(["webhooks", "show", ids[0], "--body"] + harness.storageArguments)
        #expect(Array(shown.output.utf8) == fixtures[0].body)

        // Redeliveries with the same X-GitHub-Delivery: 2xx, and no second effect.
        for (id, fixture) in zip(ids, fixtures) {
            let response = try await Self.post(server, event: fixture.event, delivery: id, body: fixture.body)
            #expect(response.status == 200)
            #expect(response.bodyText.contains("duplicate"))
        }
        try await Task.sleep(nanoseconds: 500_000_000)
        let after = try harness.deliveries()
        #expect(after.count == fixtures.count)
        #expect(ids.allSatisfy { after[$0]?["handled_count"] as? Int == 1 })

        let ready = try await HTTPClient().get(server.baseURL + "/readyz")
        #expect(ready.status == 200)
        #expect(ready.bodyText.contains(kind.rawValue))
        #expect(server.terminate() == 0)
    }

    @Test("bad inputs get clear errors and store nothing", arguments: DriverKind.allCases)
    func badInputs(_ kind: DriverKind) async throws {
        let harness = try Harness(kind)
        let server = try await harness.serve()
        let good = try Fixtures.github().first { $0.event == "workflow_job" }!.body
        func expectRejected(_ response: OutboundResponse, _ status: Int, _ code: String) {
            #expect(response.status == status, "expected \(status) \(code), got \(response.status) \(response.bodyText)")
            #expect(response.bodyText.contains(code), "\(response.bodyText) should name \(code)")
        }
        expectRejected(try await Self.post(server, event: "workflow_job", delivery: "b1", body: good, signature: nil), 401, "signature_missing")
        let wrong = WebhookSignature.gitHubHeader(secret: Array("not the secret".utf8), body: good)
        expectRejected(try await Self.post(server, event: "workflow_job", delivery: "b2", body: good, signature: wrong), 401, "signature_mismatch")
        expectRejected(
            try await Self.post(server, event: "workflow_job", delivery: "b3", body: good, signature: "sha1=abc"), 401, "signature_malformed")
        // A valid signature over other bytes than the ones sent.
        let tampered = good + Array(" ".utf8)
        let signedOriginal = WebhookSignature.gitHubHeader(secret: Array(Self.secret.utf8), body: good)
        expectRejected(
            try await Self.post(server, event: "workflow_job", delivery: "b4", body: tampered, signature: signedOriginal), 401, "signature_mismatch")
        expectRejected(try await Self.post(server, event: nil, delivery: "b5", body: good), 400, "event_missing")
        expectRejected(try await Self.post(server, event: "workflow_job", delivery: nil, body: good), 400, "delivery_missing")
        expectRejected(try await Self.post(server, event: "workflow_job", delivery: "b7", body: Array("{\"action\": ".utf8)), 400, "malformed_json")
        expectRejected(try await Self.post(server, event: "workflow_job", delivery: "b8", body: Array("[1, 2]".utf8)), 400, "malformed_json")
        expectRejected(try await Self.post(server, event: "workflow_job", delivery: "b9", body: []), 400, "malformed_json")
        let oversize = [UInt8](repeating: 0x20, count: 25 * 1024 * 1024 + 1)
        expectRejected(try await Self.post(server, event: "workflow_job", delivery: "b10", body: oversize), 413, "payload_too_large")
        // Without Content-Length (chunked), the limit holds while reading.
        expectRejected(
            try await Self.post(
                server, event: "workflow_job", delivery: "b11", body: oversize,
                extraHeaders: [(name: "Transfer-Encoding", value: "chunked")]), 413, "payload_too_large")
        // Exactly at the limit is accepted as far as size goes (then fails as JSON).
        let atLimit = [UInt8](repeating: 0x20, count: 25 * 1024 * 1024)
        expectRejected(try await Self.post(server, event: "workflow_job", delivery: "b12", body: atLimit), 400, "malformed_json")

        #expect(try harness.deliveries().isEmpty)
        // The host kept serving throughout.
        let accepted = try await Self.post(server, event: "workflow_job", delivery: "good-1", body: good)
        #expect(accepted.status == 202)
        _ = try await harness.waitUntil(["good-1"], status: "dispatched")
        #expect(server.terminate() == 0)
    }

    @Test("a delivery answered 2xx survives a SIGKILL before handling and is handled once after restart", arguments: DriverKind.allCases)
    func crashBetweenStoreAndHandle(_ kind: DriverKind) async throws {
        let harness = try Harness(kind)
        let fixtures = try Fixtures.github().prefix(5)
        let paused = try await harness.serve(["TENKI_DISPATCH": "false"])
        var ids: [String] = []
        for fixture in fixtures {
            let id = "crash-\(UUID().uuidString)"
            ids.append(id)
            #expect(try await Self.post(paused, event: fixture.event, delivery: id, body: fixture.body).status == 202)
        }
        let before = try harness.deliveries()
        #expect(ids.allSatisfy { before[$0]?["status"] as? String == "received" && before[$0]?["handled_count"] as? Int == 0 })
        paused.kill()

        let restarted = try await harness.serve()
        let after = try await harness.waitUntil(ids, status: "dispatched")
        #expect(ids.allSatisfy { after[$0]?["handled_count"] as? Int == 1 })
        // Another restart does not handle them again.
        #expect(restarted.terminate() == 0)
        let again = try await harness.serve()
        try await Task.sleep(nanoseconds: 700_000_000)
        let final = try harness.deliveries()
        #expect(ids.allSatisfy { final[$0]?["handled_count"] as? Int == 1 })
        #expect(again.terminate() == 0)
    }

    @Test("tenki webhooks redeliver dispatches a stored delivery again")
    func redeliverCommand() async throws {
        let harness = try Harness(.sqlite)
        let server = try await harness.serve()
        let fixture = try Fixtures.github().first { $0.event == "installation" }!
        #expect(try await Self.post(server, event: fixture.event, delivery: "re-1", body: fixture.body).status == 202)
        _ = try await harness.waitUntil(["re-1"], status: "dispatched")
        let result = try TenkiProcess.run(["webhooks", "redeliver", "re-1"] + harness.storageArguments)
        #expect(result.status == 0, "\(result.error)")
        #expect(result.output.contains("redelivered re-1"))
        let deadline = Date().addingTimeInterval(20)
        var delivery: [String: Any] = [:]
        while Date() < deadline {
            delivery = try harness.deliveries()["re-1"] ?? [:]
            if delivery["handled_count"] as? Int == 2 { break }
            try await Task.sleep(nanoseconds: 100_000_000)
        }
        #expect(delivery["handled_count"] as? Int == 2)
        #expect(delivery["redeliveries"] as? Int == 1)
        let missing = try TenkiProcess.run(["webhooks", "redeliver", "no-such-delivery"] + harness.storageArguments)
        #expect(missing.status == 66)
        #expect(missing.error.contains("no delivery no-such-delivery"))
        let shown = try TenkiProcess.run(["webhooks", "show", "re-1"] + harness.storageArguments)
        #expect(shown.output.contains("handled by github.delivery-log"))
        #expect(server.terminate() == 0)
    }

    @Test("SIGTERM lets a request in flight finish before the process exits")
    func gracefulShutdownFinishesInFlight() async throws {
        let harness = try Harness(.sqlite)
        let server = try await harness.serve()
        let body = try Fixtures.github().first { $0.event == "workflow_job" }!.body
        let signature = WebhookSignature.gitHubHeader(secret: Array(Self.secret.utf8), body: body)
        let head =
            "POST /webhooks/github HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
            + "X-GitHub-Event: workflow_job\r\nX-GitHub-Delivery: in-flight-1\r\nX-Hub-Signature-256: \(signature)\r\n"
            + "Content-Length: \(body.count)\r\nConnection: close\r\n\r\n"
        let socket = try RawSocket(port: server.port)
        try socket.send(Array(head.utf8) + Array(body.prefix(body.count / 2)))
        try await Task.sleep(nanoseconds: 300_000_000)
        server.process.send(SIGTERM)
        try await Task.sleep(nanoseconds: 300_000_000)
        try socket.send(Array(body.dropFirst(body.count / 2)))
        let response = try socket.receiveAll()
        #expect(response.hasPrefix("HTTP/1.1 202"), "\(response)")
        #expect(server.process.waitUntilExit().status == 0)
        #expect(try harness.deliveries()["in-flight-1"] != nil)
    }

    @Test("a PostgreSQL connection dropped under the server is reopened and nothing is lost")
    func databaseConnectionDropped() async throws {
        let harness = try Harness(.postgres)
        let server = try await harness.serve()
        let body = try Fixtures.github().first { $0.event == "push" }!.body
        #expect(try await Self.post(server, event: "push", delivery: "pg-1", body: body).status == 202)
        let admin = try #require(ProcessInfo.processInfo.environment["TENKI_TEST_POSTGRES_URL"])
        let name = String(harness.test.url.split(separator: "/").last!)
        try PostgresAdmin.run(admin, "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = '\(name)'")
        var statuses: [Int] = []
        for i in 2...6 {
            statuses.append(try await Self.post(server, event: "push", delivery: "pg-\(i)", body: body).status)
        }
        // Each answer is either stored (202) or a clear 503 that GitHub retries; a retry stores it.
        #expect(statuses.allSatisfy { $0 == 202 || $0 == 503 })
        for (offset, status) in statuses.enumerated() where status == 503 {
            #expect(try await Self.post(server, event: "push", delivery: "pg-\(offset + 2)", body: body).status == 202)
        }
        let all = try await harness.waitUntil((1...6).map { "pg-\($0)" }, status: "dispatched")
        #expect(all.count == 6)
        #expect(server.terminate() == 0)
    }
}

/// A plain TCP client, to control exactly when each byte of a request is sent.
final class RawSocket {
    let fd: Int32

    init(port: Int) throws {
        fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        address.sin_port = UInt16(port).bigEndian
        let rc = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
        }
        guard rc == 0 else { throw MissingDependency(description: "connect failed") }
    }

    func send(_ bytes: [UInt8]) throws {
        var offset = 0
        while offset < bytes.count {
            let n = bytes[offset...].withUnsafeBytes { Glibc.send(fd, $0.baseAddress, $0.count, 0) }
            guard n > 0 else { throw MissingDependency(description: "send failed") }
            offset += n
        }
    }

    func receiveAll() throws -> String {
        var data = [UInt8]()
        var buffer = [UInt8](repeating: 0, count: 65536)
        while true {
            let n = recv(fd, &buffer, buffer.count, 0)
            if n <= 0 { break }
            data += buffer[0..<n]
        }
        return String(decoding: data, as: UTF8.self)
    }

    deinit { close(fd) }
}
