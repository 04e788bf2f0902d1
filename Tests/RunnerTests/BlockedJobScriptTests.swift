import Foundation
import HTTPClient
import PluginTestSupport
import TenkiCrypto
import TestSupport
import Testing

/// The shipped automation script, run by a real `tenki serve` against the fake GitHub: a job the
/// runner blocks gets a check run on its commit saying why.
@Suite("The blocked-job check-run script through tenki serve")
struct BlockedJobScriptTests {
    @Test("a blocked macOS job gets an action_required check run explaining the missing add-on")
    func checkRunForBlockedJob() async throws {
        let github = try FakeGitHub()
        let test = try TestDatabase.make(.sqlite)
        let scripts = test.directory + "/scripts"
        try FileManager.default.createDirectory(atPath: scripts, withIntermediateDirectories: true)
        try FileManager.default.copyItem(
            atPath: Fixtures.packageRoot + "/scripts/examples/blocked_job_check_run.lua",
            toPath: scripts + "/blocked_job_check_run.lua")
        let secret = "script-test"
        let server = try await TenkiProcess.serve(
            dataDir: test.directory + "/data", databaseURL: nil, secret: secret,
            environment: [
                "TENKI_GITHUB_APP_ID": FakeGitHub.appID, "TENKI_GITHUB_APP_PRIVATE_KEY_FILE": github.keys.privateKeyPath,
                "TENKI_GITHUB_API_URL": github.peer.baseURL, "TENKI_SCRIPTS_ROOT": scripts, "TENKI_RUNNER_PROVIDER": "none",
                "TENKI_RUNNER_SCHEDULER_INTERVAL_MS": "50", "TENKI_WORKFLOW_POLL_INTERVAL_MS": "50",
                "TENKI_POLICY_ROOT": Fixtures.packageRoot + "/policies",
            ])
        defer { server.kill() }
        let install = try Fixtures.github().first { $0.file == "installation.created.payload.json" }!.body
        let job: [String: Any] = [
            "action": "queued", "installation": ["id": 957387],
            "workflow_job": [
                "id": 77, "run_id": 1077, "run_attempt": 1, "name": "ios tests", "status": "queued",
                "labels": ["tenki-macos-m4-6c"], "head_sha": "0123456789abcdef0123456789abcdef01234567",
            ],
            "repository": [
                "id": 1_296_269, "name": "Hello-World", "full_name": "Codertocat/Hello-World",
                "owner": ["id": 21_031_067, "login": "Codertocat", "type": "User"],
            ],
        ]
        for (event, body) in [("installation", install), ("workflow_job", Array(try JSONSerialization.data(withJSONObject: job)))] {
            let response = try await HTTPClient().send(
                OutboundRequest(
                    method: "POST", url: server.baseURL + "/webhooks/github",
                    headers: [
                        (name: "Content-Type", value: "application/json"), (name: "X-GitHub-Event", value: event),
                        (name: "X-GitHub-Delivery", value: UUID().uuidString),
                        (name: "X-Hub-Signature-256", value: WebhookSignature.gitHubHeader(secret: Array(secret.utf8), body: body)),
                    ], body: body))
            #expect(response.status == 202)
        }
        let path = "/repos/Codertocat/Hello-World/check-runs"
        let deadline = Date().addingTimeInterval(90)
        var call: [String: Any]?
        while call == nil, Date() < deadline {
            call = FakeGitHub.apiRequests(try await github.requests(), path: path).first
            if call == nil { try await Task.sleep(nanoseconds: 100_000_000) }
        }
        let body = try #require(call?["body"] as? [String: Any], "no check run posted; server log: \(server.log.suffix(2000))")
        #expect(call?["method"] as? String == "POST")
        #expect(body["head_sha"] as? String == "0123456789abcdef0123456789abcdef01234567")
        #expect(body["conclusion"] as? String == "action_required" && body["status"] as? String == "completed")
        let output = body["output"] as? [String: Any]
        #expect((output?["title"] as? String)?.contains("addon_required") == true)
        #expect((output?["summary"] as? String)?.contains("macOS") == true)
        // Made as the installation, with an installation token.
        #expect((call?["headers"] as? [String: Any])?["authorization"] as? String != nil)
    }
}
