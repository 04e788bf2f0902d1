import Foundation
import HTTPClient
import TenkiCrypto
import TestSupport
import Testing

/// The main path through a running `tenki serve`: signed deliveries in, a runner provisioned by
/// the local provider, the job charged in the ledger, all read back through the CLI.
@Suite("Runner jobs through a running tenki serve")
struct RunnerEndToEndTests {
    static func job(
        _ action: String, id: Int64, labels: [String], started: String? = nil, completed: String? = nil,
        created: String = "2026-01-05T09:59:30Z"
    ) -> [UInt8] {
        var job: [String: Any] = [
            "id": id, "run_id": 5000 + id, "run_attempt": 1, "name": "test", "workflow_name": "CI",
            "status": action, "labels": labels, "created_at": created,
        ]
        if let started {
            job["started_at"] = started
            job["runner_name"] = "tenki-runner-\(id)"
        }
        if let completed {
            job["completed_at"] = completed
            job["conclusion"] = "success"
        }
        let payload: [String: Any] = [
            "action": action, "workflow_job": job, "installation": ["id": 957387],
            "repository": [
                "id": 1_296_269, "name": "Hello-World", "full_name": "Codertocat/Hello-World",
                "owner": ["id": 21_031_067, "login": "Codertocat", "type": "User"],
            ],
        ]
        return Array(try! JSONSerialization.data(withJSONObject: payload))
    }

    /// Runs a CLI command until `check` accepts its JSON output, or fails after `seconds`.
    static func waitFor(_ arguments: [String], seconds: Double = 60, _ check: (Any) -> Bool) async throws -> Any? {
        let deadline = Date().addingTimeInterval(seconds)
        var last = ""
        while Date() < deadline {
            let result = try TenkiProcess.run(arguments)
            last = result.output + result.error
            if result.status == 0, let json = try? JSONSerialization.jsonObject(with: Data(result.output.utf8)), check(json) { return json }
            try await Task.sleep(nanoseconds: 100_000_000)
        }
        Issue.record("timed out: tenki \(arguments.joined(separator: " ")) last said \(last)")
        return nil
    }

    @Test("install, queue, run, complete: provisioned once, charged once, free minutes first", arguments: DriverKind.allCases)
    func mainPath(_ kind: DriverKind) async throws {
        let harness = try WebhookIngressTests.Harness(kind)
        let log = harness.test.directory + "/provider.log"
        let server = try await harness.serve([
            "TENKI_RUNNER_LOCAL_COMMAND": "echo \"$TENKI_ACTION $TENKI_JOB_KEY\" >> '\(log)'",
            "TENKI_RUNNER_SCHEDULER_INTERVAL_MS": "50",
        ])
        defer { server.kill() }
        let install = try Fixtures.github().first { $0.file == "installation.created.payload.json" }!
        var deliveries: [(String, [UInt8])] = [("installation", install.body)]
        deliveries.append(("workflow_job", Self.job("queued", id: 42, labels: ["tenki-8c-16gb"])))
        for (event, body) in deliveries {
            let response = try await WebhookIngressTests.post(server, event: event, delivery: UUID().uuidString, body: body)
            #expect(response.status == 202)
        }
        let storage = harness.storageArguments
        _ = try await Self.waitFor(["jobs", "list", "--workspace", "codertocat", "--json"] + storage) { json in
            let job = (json as? [[String: Any]])?.first
            return job?["status"] as? String == "provisioned" && job?["state"] as? String == "provisioning" && job?["job_id"] as? Int == 42
        }
        #expect(try String(contentsOfFile: log, encoding: .utf8) == "provision 957387/42/1\n")
        // The installation is a long-running workflow, seen with the workflow verbs.
        _ = try await Self.waitFor(["workflow", "describe", "installation:957387", "--json"] + storage) { json in
            let described = json as? [String: Any]
            let state = (described?["state"] as? [String: Any])?["installation"] as? [String: Any]
            return described?["status"] as? String == "sleeping" && state?["status"] as? String == "active"
        }
        let listed = try TenkiProcess.run(["workflow", "list", "--type", "runner.installation"] + storage)
        #expect(listed.status == 0 && listed.output.hasPrefix("installation:957387  runner.installation  sleeping"), "\(listed.output)")

        let started = "2026-01-05T10:00:00Z"
        let completed = "2026-01-05T10:04:10Z"
        for action in ["in_progress", "completed"] {
            let body = Self.job(action, id: 42, labels: ["tenki-8c-16gb"], started: started, completed: action == "completed" ? completed : nil)
            let id = UUID().uuidString
            #expect(try await WebhookIngressTests.post(server, event: "workflow_job", delivery: id, body: body).status == 202)
            // A redelivery of the same delivery id is a 200 duplicate with no effect.
            #expect(try await WebhookIngressTests.post(server, event: "workflow_job", delivery: id, body: body).status == 200)
        }
        let usage =
            try await Self.waitFor(["runner", "usage", "--workspace", "ws-21031067", "--json"] + storage) { json in
                (json as? [[String: Any]])?.first?["posted"] as? Bool == true
            } as? [[String: Any]]
        // 4 min 10 s bills as 5 minutes; 8 vCPU takes 4 free minutes a minute.
        #expect(usage?.first?["billable_minutes"] as? Int == 5)
        #expect(usage?.first?["free_minutes_consumed"] as? Int == 20)
        let balance = try TenkiProcess.run(["ledger", "balance", "--workspace", "ws-21031067", "--json"] + storage)
        #expect(balance.status == 0, "\(balance.error)")
        let fields = try JSONSerialization.jsonObject(with: Data(balance.output.utf8)) as? [String: Any]
        #expect(fields?["free_minutes_remaining"] as? Int == 980)
        #expect(fields?["balance_micros"] as? Int == 0)
        // The workspace's slug names it as well as its id, on the CLI and over HTTP.
        let bySlug = try TenkiProcess.run(["ledger", "balance", "--workspace", "codertocat", "--json"] + storage)
        let slugFields = try JSONSerialization.jsonObject(with: Data(bySlug.output.utf8)) as? [String: Any]
        #expect(slugFields?["workspace"] as? String == "ws-21031067" && slugFields?["free_minutes_remaining"] as? Int == 980)
        let http = try await server.get("/ledger/workspaces/codertocat/balance")
        let httpFields = try JSONSerialization.jsonObject(with: Data(http.body)) as? [String: Any]
        #expect(http.status == 200 && httpFields?["free_minutes_remaining"] as? Int == 980)
        _ = try await Self.waitFor(["jobs", "list", "--json"] + storage) { _ in
            (try? String(contentsOfFile: log, encoding: .utf8)) == "provision 957387/42/1\nrelease 957387/42/1\n"
        }
        let jobs =
            try await Self.waitFor(["jobs", "list", "--workspace", "ws-21031067", "--json"] + storage) { json in
                (json as? [[String: Any]])?.first?["state"] as? String == "completed"
            } as? [[String: Any]]
        #expect(
            jobs?.first?["billable_minutes"] as? Int == 5 && jobs?.first?["amount_micros"] as? Int == 0
                && jobs?.first?["run_attempt"] as? Int == 1 && jobs?.first?["sku"] as? String == "x64-8c-16gb")

        // Job metrics: queued 30 s before it started, ran 250 s, did not fail.
        let metrics = try TenkiProcess.run(["jobs", "metrics", "--workspace", "codertocat", "--json"] + storage)
        let report = try JSONSerialization.jsonObject(with: Data(metrics.output.utf8)) as? [String: Any]
        let row = (report?["jobs"] as? [[String: Any]])?.first
        #expect(
            row?["queue_seconds_p50"] as? Int == 30 && row?["duration_seconds_p90"] as? Int == 250
                && row?["jobs"] as? Int == 1 && row?["failure_rate_ppm"] as? Int == 0, "\(metrics.output)\(metrics.error)")
        let scrape = String(decoding: try await server.get("/metrics").body, as: UTF8.self)
        #expect(scrape.contains("# TYPE tenki_runner_queue_depth gauge"))
        #expect(scrape.contains(#"tenki_runner_job_duration_seconds{workspace="ws-21031067",sku="x64-8c-16gb",quantile="0.5"} 250"#), "\(scrape)")
        #expect(scrape.contains("tenki_inbox_pending_events "))
    }

    @Test("a workspace without a payment method runs out of free minutes and its next job is blocked", arguments: DriverKind.allCases)
    func freeMinutesRunOut(_ kind: DriverKind) async throws {
        let harness = try WebhookIngressTests.Harness(kind)
        let log = harness.test.directory + "/provider.log"
        let server = try await harness.serve([
            "TENKI_RUNNER_LOCAL_COMMAND": "echo \"$TENKI_ACTION $TENKI_JOB_KEY\" >> '\(log)'",
            "TENKI_RUNNER_SCHEDULER_INTERVAL_MS": "50",
        ])
        defer { server.kill() }
        let storage = harness.storageArguments
        let install = try Fixtures.github().first { $0.file == "installation.created.payload.json" }!
        #expect(try await WebhookIngressTests.post(server, event: "installation", delivery: UUID().uuidString, body: install.body).status == 202)
        // 8 vCPU for 250 minutes: 4 free minutes a minute takes all 1,000 signup minutes.
        let labels = ["tenki-8c-16gb"]
        #expect(
            try await WebhookIngressTests.post(
                server, event: "workflow_job", delivery: UUID().uuidString,
                body: Self.job("queued", id: 1, labels: labels)
            ).status == 202)
        _ = try await Self.waitFor(["jobs", "list", "--workspace", "codertocat", "--json"] + storage) { json in
            (json as? [[String: Any]])?.first?["state"] as? String == "provisioning"
        }
        let story: [[UInt8]] = [
            Self.job("in_progress", id: 1, labels: labels, started: "2026-01-05T10:00:00Z"),
            Self.job("completed", id: 1, labels: labels, started: "2026-01-05T10:00:00Z", completed: "2026-01-05T14:10:00Z"),
        ]
        for body in story {
            #expect(try await WebhookIngressTests.post(server, event: "workflow_job", delivery: UUID().uuidString, body: body).status == 202)
        }
        _ = try await Self.waitFor(["ledger", "balance", "--workspace", "codertocat", "--json"] + storage) { json in
            (json as? [String: Any])?["free_minutes_remaining"] as? Int == 0
        }
        #expect(
            try await WebhookIngressTests.post(
                server, event: "workflow_job", delivery: UUID().uuidString,
                body: Self.job("queued", id: 2, labels: labels)
            ).status == 202)
        let jobs =
            try await Self.waitFor(["jobs", "list", "--workspace", "codertocat", "--json"] + storage) { json in
                (json as? [[String: Any]])?.first { $0["job_id"] as? Int == 2 }?["state"] as? String == "blocked"
            } as? [[String: Any]]
        let blocked = jobs?.first { $0["job_id"] as? Int == 2 }
        #expect(blocked?["reason"] as? String == "payment_method_required")
        let first = jobs?.first { $0["job_id"] as? Int == 1 }
        #expect(first?["billable_minutes"] as? Int == 250 && first?["free_minutes_consumed"] as? Int == 1000 && first?["amount_micros"] as? Int == 0)
        let balance = try TenkiProcess.run(["ledger", "balance", "--workspace", "codertocat", "--json"] + storage)
        let fields = try JSONSerialization.jsonObject(with: Data(balance.output.utf8)) as? [String: Any]
        #expect(fields?["balance_micros"] as? Int == 0 && fields?["free_minutes_remaining"] as? Int == 0)
        _ = try await Self.waitFor(["jobs", "list", "--json"] + storage) { _ in
            (try? String(contentsOfFile: log, encoding: .utf8)) == "provision 957387/1/1\nrelease 957387/1/1\n"
        }

        // A payment method clears the block: the job is admitted and a runner provisioned.
        let set = try TenkiProcess.run(["workspaces", "set-payment-method", "codertocat", "--provider-ref", "pm_card_visa"] + storage)
        #expect(set.status == 0, "\(set.error)")
        _ = try await Self.waitFor(["jobs", "list", "--workspace", "codertocat", "--json"] + storage) { json in
            (json as? [[String: Any]])?.first { $0["job_id"] as? Int == 2 }?["state"] as? String == "provisioning"
        }
        let workspaces = try TenkiProcess.run(["workspaces", "list", "--json"] + storage)
        let list = try JSONSerialization.jsonObject(with: Data(workspaces.output.utf8)) as? [[String: Any]]
        #expect(
            list?.first?["slug"] as? String == "codertocat" && list?.first?["payment_method_ref"] as? String == "pm_card_visa"
                && list?.first?["has_payment_method"] as? Bool == true)
        // Unknown workspaces are an error, not an empty list.
        for command in [["jobs", "list"], ["runner", "usage"]] {
            let unknown = try TenkiProcess.run(command + ["--workspace", "nobody", "--json"] + storage)
            #expect(unknown.status == 66 && unknown.error.contains("no workspace 'nobody'"), "\(command): \(unknown.status) \(unknown.error)")
        }
    }
}
