import BillingPlugin
import Foundation
import Host
import TestSupport
import Testing
import WorkflowPlugin

/// The shipped `scripts/examples/billing_notify.lua`, run by the host's script engine on the
/// billing events a cycle publishes, posting to a real HTTP peer.
@Suite("The billing notification script")
struct BillingScriptTests {
    @Test("an issued invoice and a failed payment each post one message", arguments: [DriverKind.sqlite])
    func notifies(_ kind: DriverKind) async throws {
        let peer = try PeerServer.echo()
        defer { peer.process.send(SIGTERM) }
        let scripts = try TemporaryDirectory.make(prefix: "tenki-scripts")
        let source = try String(contentsOfFile: Fixtures.packageRoot + "/scripts/examples/billing_notify.lua", encoding: .utf8)
        try source.replacingOccurrences(of: "https://hooks.example.com/tenki-billing", with: peer.baseURL + "/echo")
            .write(toFile: scripts + "/billing_notify.lua", atomically: true, encoding: .utf8)
        let rig = try await BillingRig(kind) {
            $0.scriptsRoot = scripts
            $0.scriptHTTPAllowedHosts = ["127.0.0.1"]
        }
        defer { withExtendedLifetime(rig) {} }
        try await rig.h.workspace("ws-n")
        try await rig.h.paymentMethod("ws-n")
        try await rig.h.charge("ws-n", job: 1, labels: ["tenki-standard-2c-4gb"], completed: "2026-11-05T10:00:00Z", minutes: 4_000)
        rig.provider.declining = true
        _ = try await rig.run(BillingWorkflows.cycleType, #"{"workspace_id": "ws-n", "billing_period": "2026-11"}"#)
        let dispatcher = rig.h.host.events.dispatcher()
        while try await dispatcher.dispatchOnce() > 0 {}
        let engine = try #require(rig.h.host.plugin(WorkflowPlugin.self)).engine
        _ = try await engine.drain()
        let runs = try await rig.h.database.query("SELECT id FROM workflow_runs WHERE type = 'script.billing_notify' ORDER BY id")
        var texts: [String] = []
        for row in runs {
            let run = try await engine.run(id: try row.string("id"))
            #expect(run.status == .completed, "\(run.error ?? "")")
            let output = try #require(try JSONSerialization.jsonObject(with: Data(run.output ?? [])) as? [String: Any])
            #expect(output["status"] as? Int == 200)
            // The peer echoes what it got: one JSON message.
            let echoed = try #require(try JSONSerialization.jsonObject(with: Data(((output["answer"] as? String) ?? "").utf8)) as? [String: Any])
            #expect(echoed["method"] as? String == "POST")
            let body = try #require(try JSONSerialization.jsonObject(with: Data(((echoed["body"] as? String) ?? "").utf8)) as? [String: Any])
            texts.append(body["text"] as? String ?? "")
        }
        #expect(texts.count == 2)
        #expect(texts.contains { $0.hasPrefix("Invoice TNK-2026-000001 (2026-11) issued to ws-n: $2.00 due") })
        #expect(texts.contains { $0.contains("failed (card_declined)") })
    }
}
