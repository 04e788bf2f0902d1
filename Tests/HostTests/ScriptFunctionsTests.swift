import Foundation
import HTTPClient
import Host
import Logging
import Lua
import TestSupport
import Testing

@Suite("The host's functions for scripts")
struct ScriptFunctionsTests {
    /// Runs a waiting function as a script would: on a thread of its own, never the cooperative pool.
    static func call(_ function: LuaHostFunction, _ arguments: [LuaValue]) async -> Result<[LuaValue], any Error> {
        await withCheckedContinuation { continuation in
            Thread { continuation.resume(returning: Result { try function.function(arguments) }) }.start()
        }
    }

    @Test("http.request reaches allowed hosts only, with method, headers and body; log.* take a message")
    func httpAndLog() async throws {
        let peer = try PeerServer.start(script: "echo_server.py")
        var configuration = HostConfiguration()
        configuration.scriptHTTPAllowedHosts = ["127.0.0.1"]
        let functions = ScriptFunctions.all(configuration: configuration, http: HTTPClient(), logger: Logger(label: "test"))
        let request = try #require(functions.first { $0.module == "http" && $0.name == "request" })
        let ok = try await Self.call(
            request,
            [
                .table(
                    LuaTable(fields: [
                        "method": "post", "url": .string(peer.baseURL + "/echo"), "headers": .table(LuaTable(fields: ["X-Tenki": "yes"])),
                        "body": "hello",
                    ]))
            ]
        ).get()
        #expect(ok.first?["status"] == 200)
        let echoed = try JSONSerialization.jsonObject(with: Data((ok.first?["body"].stringValue ?? "").utf8)) as? [String: Any]
        #expect(echoed?["method"] as? String == "POST" && echoed?["body"] as? String == "hello")
        let headers = (echoed?["headers"] as? [String: Any]) ?? [:]
        #expect(headers.first { $0.key.lowercased() == "x-tenki" }?.value as? String == "yes")

        for (url, message) in [
            ("http://example.com/x", "not in script_http_allowed_hosts"), ("file:///etc/passwd", "http or https"),
            ("gopher://127.0.0.1/", "http or https"),
        ] {
            let refused = await Self.call(request, [.table(LuaTable(fields: ["url": .string(url)]))])
            guard case .failure(let error) = refused else {
                Issue.record("\(url) was allowed")
                continue
            }
            #expect("\(error)".contains(message), "\(url): \(error)")
        }
        let headerInjection = await Self.call(
            request,
            [
                .table(
                    LuaTable(fields: [
                        "url": .string(peer.baseURL + "/echo"), "headers": .table(LuaTable(fields: ["X": "a\r\nEvil: 1"])),
                    ]))
            ])
        if case .success = headerInjection { Issue.record("a header with a line break was sent") }

        let info = try #require(functions.first { $0.module == "log" && $0.name == "info" })
        #expect(try info.function(["a line", .table(LuaTable(fields: ["job": 1]))]).isEmpty)
        #expect(throws: LuaError.self) { try info.function([]) }
    }
}
