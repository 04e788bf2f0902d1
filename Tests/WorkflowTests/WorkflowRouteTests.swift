import Foundation
import Host
import Hummingbird
import HummingbirdTesting
import TestSupport
import Testing
import WorkflowPlugin

/// `/workflows`, `/workflow-schedules` and `/workflow-scripts` in-process: answers and errors.
@Suite("Workflow routes")
struct WorkflowRouteTests {
    static let type = "tenki.test.three_steps"

    static func openHost(_ test: TestDatabase) async throws -> TenkiHost {
        try await TestHosts.open(test, plugins: [WorkflowPlugin.self]) { $0.workflowTestTypes = true }
    }

    static func body(_ text: String) -> ByteBuffer { ByteBuffer(string: text) }

    @Test("a run is started, listed, described, signalled and cancelled", arguments: DriverKind.allCases)
    func runs(_ kind: DriverKind) async throws {
        let test = try TestDatabase.make(kind)
        let host = try await Self.openHost(test)
        try await TestHosts.routes(host) { client in
            let start = Self.body(#"{"type":"\#(Self.type)","id":"r-1","input":{"sleep_ms":60000}}"#)
            try await client.execute(uri: "/workflows", method: .post, body: start) { response in
                #expect(response.status == .created, "\(RouteAnswers.text(response))")
            }
            try await client.execute(uri: "/workflows", method: .post, body: start) { response in
                #expect(response.status == .ok)
                #expect((RouteAnswers.json(response) as? [String: Any])?["created"] as? Bool == false)
            }
            try await client.execute(uri: "/workflows?type=\(Self.type)", method: .get) { response in
                #expect(response.status == .ok)
                #expect((RouteAnswers.json(response) as? [[String: Any]])?.map { $0["id"] as? String } == ["r-1"])
            }
            for uri in ["/workflows/r-1", "/workflows/r-1/result", "/workflows/r-1/state"] {
                try await client.execute(uri: uri, method: .get) { response in
                    #expect(response.status == .ok, "\(uri): \(RouteAnswers.text(response))")
                    #expect((RouteAnswers.json(response) as? [String: Any])?["id"] as? String == "r-1", "\(uri)")
                }
            }
            try await client.execute(uri: "/workflows/r-1/signals/go", method: .post, body: Self.body(#"{"n":1}"#)) { response in
                #expect(response.status == .accepted, "\(RouteAnswers.text(response))")
            }
            try await client.execute(uri: "/workflows/r-1/cancel", method: .post) { response in
                #expect(response.status == .ok)
                #expect(RouteAnswers.text(response) == #"{"cancelled":["r-1"],"id":"r-1"}"#)
            }
            try await client.execute(uri: "/workflows/r-1/signals/go", method: .post, body: Self.body("{}")) { response in
                RouteAnswers.expectError(response, .badRequest, "bad_request")
            }
        }
    }

    @Test("bad JSON 400, unknown ids 404, an oversize body 413, in the one error shape")
    func errors() async throws {
        let test = try TestDatabase.make(.sqlite)
        let host = try await Self.openHost(test)
        let oversize = String(repeating: "x", count: WorkflowLimits.maxPayloadBytes + 4096 + 1)
        try await TestHosts.routes(host) { client in
            for text in ["not json", "[1]", #"{"type":1}"#, #"{"input":{}}"#, #"{"type":"no.such.type"}"#] {
                try await client.execute(uri: "/workflows", method: .post, body: Self.body(text)) { response in
                    RouteAnswers.expectError(response, .badRequest, "bad_request")
                }
            }
            try await client.execute(uri: "/workflows?status=bogus", method: .get) { response in
                RouteAnswers.expectError(response, .badRequest, "bad_request")
            }
            for uri in ["/workflows/nope", "/workflows/nope/result", "/workflows/nope/state"] {
                try await client.execute(uri: uri, method: .get) { response in
                    RouteAnswers.expectError(response, .notFound, "not_found")
                }
            }
            try await client.execute(uri: "/workflows", method: .post, body: Self.body(#"{"type":"\#(Self.type)","input":"\#(oversize)"}"#)) {
                response in
                let message = RouteAnswers.expectError(response, .contentTooLarge, "payload_too_large")
                #expect(!message.contains("NIO"))
            }
            try await client.execute(uri: "/workflows/nope/signals/go", method: .post, body: Self.body(oversize)) { response in
                RouteAnswers.expectError(response, .contentTooLarge, "payload_too_large")
            }
        }
    }

    @Test("schedules are created, listed and deleted; scripts report their status", arguments: DriverKind.allCases)
    func schedulesAndScripts(_ kind: DriverKind) async throws {
        let test = try TestDatabase.make(kind)
        let host = try await Self.openHost(test)
        try await TestHosts.routes(host) { client in
            let schedule = Self.body(#"{"name":"nightly","cron":"0 3 * * *","type":"\#(Self.type)"}"#)
            try await client.execute(uri: "/workflow-schedules", method: .post, body: schedule) { response in
                #expect(response.status == .created, "\(RouteAnswers.text(response))")
            }
            try await client.execute(uri: "/workflow-schedules", method: .post, body: Self.body(#"{"name":"bad","cron":"* *","type":"x"}"#)) {
                response in
                RouteAnswers.expectError(response, .badRequest, "bad_request")
            }
            try await client.execute(uri: "/workflow-schedules", method: .get) { response in
                #expect(response.status == .ok)
                #expect((RouteAnswers.json(response) as? [[String: Any]])?.map { $0["name"] as? String } == ["nightly"])
            }
            try await client.execute(uri: "/workflow-schedules/nightly", method: .delete) { response in
                #expect(response.status == .ok)
            }
            try await client.execute(uri: "/workflow-schedules/nightly", method: .delete) { response in
                RouteAnswers.expectError(response, .notFound, "not_found")
            }
            try await client.execute(uri: "/workflow-scripts", method: .get) { response in
                #expect(response.status == .ok)
                #expect((RouteAnswers.json(response) as? [String: Any])?["version"] is String)
            }
        }
    }

    @Test("a database gone mid-request is a clean 503", arguments: DriverKind.allCases)
    func databaseGone(_ kind: DriverKind) async throws {
        let test = try TestDatabase.make(kind)
        let host = try await Self.openHost(test)
        try await TestHosts.routes(host) { client in
            try await TestHosts.expectUnavailable(client, test, host, uris: ["/workflows", "/workflows/r-1", "/workflow-schedules"])
        }
    }
}
