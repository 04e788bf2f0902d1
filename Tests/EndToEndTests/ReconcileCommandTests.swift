import Foundation
import HTTPClient
import TestSupport
import Testing

@Suite("tenki runner reconcile")
struct ReconcileCommandTests {
    @Test("one sweep against the fake GitHub: a failed delivery is redelivered and the summary printed as JSON; without the App it refuses")
    func reconcileOnce() async throws {
        let directory = try TemporaryDirectory.make(prefix: "tenki-reconcile")
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let storage = ["--data-dir", directory + "/data"]
        let unconfigured = try TenkiProcess.run(["runner", "reconcile"] + storage)
        #expect(unconfigured.status != 0)
        #expect(unconfigured.error.contains("github_app_id"), "\(unconfigured.error)")

        let keys = try TestRSAKeyPair.shared.get()
        let github = try PeerServer.start(script: "fake_github.py", arguments: ["--app-id", "424242", "--public-key", keys.publicKeyPath])
        let http = HTTPClient()
        let seeded = try await http.send(
            OutboundRequest(
                method: "POST", url: github.baseURL + "/_fake/deliveries",
                body: Array(
                    """
                    {"deliveries": [{"guid": "lost-1", "status_code": 503, "action": "queued"}, {"guid": "fine-1", "status_code": 202}]}
                    """.utf8)))
        #expect(seeded.status == 200)
        let app = [
            "--set", "github_app_id=424242", "--set", "github_app_private_key_file=\(keys.privateKeyPath)",
            "--set", "github_api_url=\(github.baseURL)",
        ]
        let result = try TenkiProcess.run(["runner", "reconcile"] + storage + app)
        #expect(result.status == 0, "\(result.error)")
        let summary = try #require(try JSONSerialization.jsonObject(with: Data(result.output.utf8)) as? [String: Any], "\(result.output)")
        let deliveries = try #require(summary["deliveries"] as? [String: Any])
        #expect(deliveries["listed"] as? Int == 2 && deliveries["failed"] as? Int == 1 && deliveries["redelivered"] as? Int == 1)
        #expect(summary["failures"] as? Int == 0 && summary["checked"] as? Int == 0)
        let requests = try JSONSerialization.jsonObject(with: Data(try await http.get(github.baseURL + "/_fake/requests").body)) as? [[String: Any]]
        #expect(
            requests?.filter { $0["method"] as? String == "POST" }.compactMap { $0["path"] as? String }
                == ["/app/hook/deliveries/9001/attempts"])
    }
}
