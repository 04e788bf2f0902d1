import Foundation
import HTTPClient
import TestSupport
import Testing

@Suite("tenki policy")
struct PolicyCommandTests {
    static let policies = ["--set", "policy_root=" + Fixtures.packageRoot + "/policies"]

    @Test("eval price --json prints the documented fields")
    func evalPriceJSON() throws {
        let input =
            #"{"labels":["tenki-premium-4c-8gb"],"started_at":"2026-01-05T10:00:00Z","completed_at":"2026-01-05T10:09:30Z","#
            + #""workspace":{"free_minutes_remaining":6,"has_payment_method":true,"addons":[]}}"#
        let result = try TenkiProcess.run(["policy", "eval", "price", "--json", "--input", input] + Self.policies)
        #expect(result.status == 0, "\(result.error)")
        let object = try #require(try JSONSerialization.jsonObject(with: Data(result.output.utf8)) as? [String: Any])
        #expect(object["amount_micros"] as? Int == 6_300_000)  // 7 charged minutes × ($0.006 + $0.003)
        #expect(object["free_minutes_consumed"] as? Int == 6)  // 3 minutes × 2
        #expect(object["billable_minutes"] as? Int == 10)  // 9.5 rounds up
        #expect((object["policy_version"] as? String)?.count == 12)
        let lines = try #require(object["lines"] as? [[String: Any]])
        #expect(lines.count == 3)
        #expect(lines.allSatisfy { $0["description"] is String && $0["quantity"] is Int && $0["unit_price_micros"] is Int })
        let bad = try TenkiProcess.run(["policy", "eval", "price", "--input", "{\"labels\": 3}"] + Self.policies)
        #expect(bad.status == 64)
    }

    @Test("eval lines and admit answer from the shipped policies")
    func evalLinesAndAdmit() throws {
        let lines = try TenkiProcess.run(
            [
                "policy", "eval", "lines", "--json", "--input",
                #"{"period":{"start":"2026-11-01T00:00:00Z","end":"2026-12-01T00:00:00Z"},"slots":[{"arch":"macos","count":5,"#
                    + #""started_at":"2026-01-01T00:00:00Z"}]}"#,
            ]
                + Self.policies)
        #expect(lines.status == 0, "\(lines.error)")
        #expect(lines.output.contains("\"total_micros\" : 24500000000"))
        let admit = try TenkiProcess.run(
            [
                "policy", "eval", "admit", "--input",
                #"{"labels":["tenki-macos-m4-6c"],"workspace":{"has_payment_method":true,"addons":[]}}"#,
            ] + Self.policies)
        #expect(admit.status == 0)
        #expect(admit.output.hasPrefix("block (addon_required)"))
    }

    @Test("eval answers every decision point: consume, eligible, abuse on signup and on a job")
    func evalEveryDecision() throws {
        let job =
            #"{"labels":["tenki-8c-16gb"],"started_at":"2026-01-05T10:00:00Z","completed_at":"2026-01-05T10:10:00Z","#
            + #""workspace":{"free_minutes_remaining":7,"has_payment_method":true,"addons":[]}}"#
        let consume = try TenkiProcess.run(["policy", "eval", "consume", "--json", "--input", job] + Self.policies)
        #expect(consume.status == 0, "\(consume.error)")
        #expect(consume.output.contains("\"free_minutes_consumed\" : 4") && consume.output.contains("\"charged_minutes\" : 9"))
        let prepaid = try TenkiProcess.run(
            [
                "policy", "eval", "eligible", "--input",
                #"{"item":"addon","id":"priority-queue-boost","term":"prepaid_12","workspace":{"has_payment_method":true}}"#,
            ] + Self.policies)
        #expect(prepaid.status == 0, "\(prepaid.error)")
        #expect(prepaid.output.hasPrefix("not eligible: sales_only"), "\(prepaid.output)")
        let signup = try TenkiProcess.run(
            [
                "policy", "eval", "abuse-signup", "--json", "--input",
                #"{"github_login":"octocat","history":{"same_account":1}}"#,
            ] + Self.policies)
        #expect(signup.status == 0, "\(signup.error)")
        #expect(signup.output.contains("\"action\" : \"require_payment_method\""))
        let miner = try TenkiProcess.run(
            [
                "policy", "eval", "abuse-job", "--input",
                #"{"name":"build","steps":["./xmrig -o stratum+tcp://pool"],"labels":[],"duration_seconds":60}"#,
            ] + Self.policies)
        #expect(miner.status == 0, "\(miner.error)")
        #expect(miner.output.hasPrefix("suspend"), "\(miner.output)")
        let unknown = try TenkiProcess.run(["policy", "eval", "refund", "--input", "{}"] + Self.policies)
        #expect(unknown.status != 0 && unknown.error.contains("abuse-job"))
    }

    @Test("check and test report file:line and exit non-zero on a broken policy")
    func checkAndTest() throws {
        #expect(try TenkiProcess.run(["policy", "check", Fixtures.packageRoot + "/policies"]).status == 0)
        let tested = try TenkiProcess.run(["policy", "test", Fixtures.packageRoot + "/policies"])
        #expect(tested.status == 0)
        #expect(tested.output.contains("0 failed"))
        let directory = try TemporaryDirectory.make(prefix: "tenki-badpolicy")
        try "local M = {}\nfunction M.price(job)\n  return job.\nend\nreturn M\n".write(
            toFile: directory + "/pricing.lua", atomically: true, encoding: .utf8)
        let broken = try TenkiProcess.run(["policy", "check", directory])
        #expect(broken.status == 65)
        #expect(broken.error.contains("pricing.lua:4:"), "\(broken.error)")
    }

    @Test("rejected policies exit 65 with file:line from every command that loads them, bench included")
    func rejectedPoliciesExit65() throws {
        let directory = try TemporaryDirectory.make(prefix: "tenki-badpolicy")
        try "local M = {}\nfunction M.price(job)\n  return job.\nend\nreturn M\n".write(
            toFile: directory + "/pricing.lua", atomically: true, encoding: .utf8)
        let root = ["--set", "policy_root=" + directory]
        for arguments in [["bench", "policy", "--seconds", "0.1"], ["bench", "reload"], ["policy", "eval", "price", "--input", "{}"]] {
            let result = try TenkiProcess.run(arguments + root)
            #expect(result.status == 65, "\(arguments): \(result.error)")
            #expect(result.error.hasPrefix("error: "), "\(arguments): \(result.error)")
        }
        let bench = try TenkiProcess.run(["bench", "policy", "--seconds", "0.1"] + root)
        #expect(bench.error.contains("pricing.lua:4"), "\(bench.error)")
    }

    @Test("a running server reports the policy version it serves")
    func statusEndpoint() async throws {
        let test = try TestDatabase.make(.sqlite)
        let server = try await TenkiProcess.serve(
            dataDir: test.directory + "/data", databaseURL: nil, secret: "s",
            environment: ["TENKI_POLICY_ROOT": Fixtures.packageRoot + "/policies"])
        let response = try await server.get("/policies/status")
        #expect(response.status == 200)
        let status = try #require(try JSONSerialization.jsonObject(with: Data(response.body)) as? [String: Any])
        #expect((status["version"] as? String)?.count == 12)
        #expect((status["files"] as? [String])?.contains("pricing.lua") == true)
        let anonymous = try TenkiProcess.run(["policy", "status", "--url", server.baseURL], environment: ["TENKI_API_KEY": ""])
        #expect(anonymous.status != 0 && anonymous.error.contains("401"), "\(anonymous.error)")
        let cli = try TenkiProcess.run(["policy", "status", "--url", server.baseURL], environment: ["TENKI_API_KEY": server.opsKey])
        #expect(cli.status == 0 && cli.output.contains("pricing.lua"))
        #expect(server.terminate() == 0)
    }
}
