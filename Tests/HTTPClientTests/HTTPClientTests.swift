import Foundation
import HTTPClient
import TestSupport
import Testing

@Suite("HTTP client over libcurl")
struct HTTPClientTests {
    struct Echo: Decodable {
        let method: String
        let path: String
        let headers: [String: String]
        let body: String
    }

    @Test("methods, headers and bodies reach the peer and come back")
    func methodsHeadersBodies() async throws {
        let peer = try PeerServer.echo()
        let client = HTTPClient()
        for method in ["GET", "POST", "PUT", "PATCH", "DELETE"] {
            let body: [UInt8]? = method == "GET" ? nil : Array("payload of \(method)".utf8)
            let response = try await client.send(
                OutboundRequest(
                    method: method, url: "http://127.0.0.1:\(peer.port)/echo?x=1",
                    headers: [(name: "X-Tenki", value: "hello"), (name: "Content-Type", value: "text/plain")], body: body))
            #expect(response.status == 200)
            #expect(response.header("x-echo") == "yes")
            let echo = try JSONDecoder().decode(Echo.self, from: Data(response.body))
            #expect(echo.method == method)
            #expect(echo.path == "/echo?x=1")
            #expect(echo.headers["x-tenki"] == "hello")
            #expect(echo.body == (body.map { String(decoding: $0, as: UTF8.self) } ?? ""))
        }
        let head = try await client.send(OutboundRequest(method: "HEAD", url: "http://127.0.0.1:\(peer.port)/bytes?n=10"))
        #expect(head.status == 200 && head.body.isEmpty)
        let teapot = try await client.get("http://127.0.0.1:\(peer.port)/status/418")
        #expect(teapot.status == 418)
    }

    @Test("a slow peer times out with a timeout error")
    func timeout() async throws {
        let peer = try PeerServer.echo()
        let client = HTTPClient()
        // Had the 3 s answer been awaited, the request would have succeeded: the timeout error
        // alone shows libcurl gave up (no wall-clock bound, which a loaded machine breaks).
        let error = await #expect(throws: HTTPClientError.self) {
            try await client.send(OutboundRequest(url: "http://127.0.0.1:\(peer.port)/slow?ms=3000", timeoutMilliseconds: 200))
        }
        #expect(error?.kind == .timeout)
    }

    @Test("a refused connection and a bad URL are classified")
    func connectionErrors() async throws {
        let client = HTTPClient()
        let port = TenkiProcess.freePort()
        let refused = await #expect(throws: HTTPClientError.self) { try await client.get("http://127.0.0.1:\(port)/") }
        #expect(refused?.kind == .connection)
        let bad = await #expect(throws: HTTPClientError.self) { try await client.get("gopher://127.0.0.1/") }
        #expect(bad?.kind == .invalidRequest)
    }

    @Test("an oversize response is refused")
    func responseTooLarge() async throws {
        let peer = try PeerServer.echo()
        let client = HTTPClient(maxResponseBytes: 1_000)
        let ok = try await client.get("http://127.0.0.1:\(peer.port)/bytes?n=1000")
        #expect(ok.body.count == 1_000)
        let error = await #expect(throws: HTTPClientError.self) { try await client.get("http://127.0.0.1:\(peer.port)/bytes?n=100000") }
        #expect(error?.kind == .responseTooLarge)
    }

    @Test("many concurrent requests complete without blocking each other")
    func concurrentRequests() async throws {
        let peer = try PeerServer.echo()
        let client = HTTPClient(maxConcurrentRequests: 16)
        let statuses = try await withThrowingTaskGroup(of: Int.self) { group in
            for _ in 0..<32 {
                group.addTask { try await client.get("http://127.0.0.1:\(peer.port)/slow?ms=300").status }
            }
            return try await group.reduce(into: [Int]()) { $0.append($1) }
        }
        #expect(statuses == Array(repeating: 200, count: 32))
        // The peer saw requests overlap (up to the client's limit of 16), not one at a time.
        let overlap = Int(try await client.get("http://127.0.0.1:\(peer.port)/max-in-flight").bodyText) ?? 0
        #expect(overlap > 1 && overlap <= 16, "at most \(overlap) requests were in flight at once")
    }

    @Test("TLS verifies the peer against the given CA and refuses an unknown one")
    func tls() async throws {
        let directory = try TemporaryDirectory.make(prefix: "tenki-tls")
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let (certificate, key) = try SelfSignedCertificate.make(in: directory)
        let peer = try PeerServer.echo(tlsCertificate: certificate, tlsKey: key)
        let client = HTTPClient()
        let url = "https://127.0.0.1:\(peer.port)/echo"
        let trusted = try await client.send(OutboundRequest(url: url, caBundlePath: certificate))
        #expect(trusted.status == 200)
        let error = await #expect(throws: HTTPClientError.self) { try await client.get(url) }
        #expect(error?.kind == .tls)
    }
}
