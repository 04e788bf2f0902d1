import Foundation
import HTTPClient
import TestSupport
import Testing

@Suite("tenki command line")
struct CommandLineTests {
    @Test("version prints this build and its C libraries as JSON")
    func version() throws {
        let result = try TenkiProcess.run(["version", "--json"])
        #expect(result.status == 0)
        let object = try #require(try JSONSerialization.jsonObject(with: Data(result.output.utf8)) as? [String: String])
        #expect(object["lua"]?.hasPrefix("5.4") == true)
        #expect(object["sqlite"]?.hasPrefix("3.") == true)
        #expect(object["libcurl"]?.contains("libcurl") == true)
        #expect(object["tenki"] != nil && object["libpq"] != nil)
    }

    @Test("migrate applies once, then reports the schema current", arguments: DriverKind.allCases)
    func migrate(_ kind: DriverKind) throws {
        let test = try TestDatabase.make(kind)
        let storage = ["--data-dir", test.directory + "/data"] + (kind == .postgres ? ["--database-url", test.url] : [])
        let first = try TenkiProcess.run(["migrate"] + storage)
        #expect(first.status == 0, "\(first.error)")
        #expect(first.output.contains("host: applied 1, 2, 3"))
        #expect(first.output.contains("github: applied 1"))
        #expect(first.output.contains("billing: applied 1, 2"))
        #expect(first.output.contains("runner: applied 1, 2, 3, 4, 5, 6, 7"))
        let second = try TenkiProcess.run(["migrate"] + storage)
        #expect(
            second.output
                == "host: up to date\ngithub: up to date\nledger: up to date\nworkflow: up to date\nrunner: up to date\nbilling: up to date\n")
    }

    @Test("ledger balance --json prints the documented fields for a workspace", arguments: DriverKind.allCases)
    func ledgerBalance(_ kind: DriverKind) throws {
        let test = try TestDatabase.make(kind)
        let storage = ["--data-dir", test.directory + "/data"] + (kind == .postgres ? ["--database-url", test.url] : [])
        let result = try TenkiProcess.run(["ledger", "balance", "--workspace", "acme", "--json"] + storage)
        #expect(result.status == 0, "\(result.error)")
        let object = try #require(try JSONSerialization.jsonObject(with: Data(result.output.utf8)) as? [String: Any])
        #expect(object["balance_micros"] as? Int == 0 && object["pending_micros"] as? Int == 0 && object["free_minutes_remaining"] as? Int == 0)
        let accounts = try TenkiProcess.run(["ledger", "accounts", "--json"] + storage)
        #expect((try JSONSerialization.jsonObject(with: Data(accounts.output.utf8)) as? [Any])?.count == 7)
        let transfers = try TenkiProcess.run(["ledger", "transfers", "--workspace", "acme", "--json"] + storage)
        #expect(transfers.output.trimmingCharacters(in: .whitespacesAndNewlines) == "[\n\n]" || transfers.output.contains("[]"))
        // History queries: a past moment, filters, and a bad value named in the error.
        let past = try TenkiProcess.run(["ledger", "balance", "--workspace", "acme", "--as-of", "2026-01-01T00:00:00Z", "--json"] + storage)
        #expect(past.status == 0, "\(past.error)")
        #expect(past.output.contains("\"as_of\" : 1767225600000000000"))
        let filtered = try TenkiProcess.run(
            [
                "ledger", "transfers", "--workspace", "acme", "--since", "2026-01-01", "--code", "2001",
                "--limit", "10", "--reversed", "--json",
            ] + storage)
        #expect(filtered.status == 0, "\(filtered.error)")
        let history = try TenkiProcess.run(["ledger", "history", "--workspace", "acme", "--json"] + storage)
        #expect(history.status == 0, "\(history.error)")
        let bad = try TenkiProcess.run(["ledger", "transfers", "--workspace", "acme", "--since", "yesterday"] + storage)
        #expect(bad.status == 64 && bad.error.contains("since must be"))
    }

    @Test("a running server answers ledger balance reads over HTTP")
    func ledgerOverHTTP() async throws {
        let test = try TestDatabase.make(.sqlite)
        let server = try await TenkiProcess.serve(dataDir: test.directory + "/data", databaseURL: nil, secret: "s")
        let response = try await server.get("/ledger/workspaces/acme/balance")
        #expect(response.status == 200)
        #expect(response.bodyText.contains("\"balance_micros\":0"))
        let transfers = try await server.get("/ledger/workspaces/acme/transfers")
        #expect(transfers.status == 200 && transfers.bodyText == "[]")
        let filtered = try await server.get("/ledger/workspaces/acme/transfers?since=2026-01-01&code=2001&limit=5&reversed=true")
        #expect(filtered.status == 200 && filtered.bodyText == "[]")
        let badLimit = try await server.get("/ledger/workspaces/acme/transfers?limit=0")
        #expect(badLimit.status == 400 && badLimit.bodyText.contains("limit must be"))
        let past = try await server.get("/ledger/workspaces/acme/balance?as_of=1000")
        #expect(past.status == 200 && past.bodyText.contains("\"as_of\":1000"))
        let history = try await server.get("/ledger/workspaces/acme/history")
        #expect(history.status == 200 && history.bodyText == "[]")
        #expect(server.terminate() == 0)
    }

    @Test("configuration errors exit 78 and say what is wrong")
    func badConfiguration() throws {
        let directory = try TemporaryDirectory.make(prefix: "tenki-cli")
        let unknown = try TenkiProcess.run(["migrate", "--data-dir", directory, "--set", "colour=blue"])
        #expect(unknown.status == 78)
        #expect(unknown.error.contains("unknown configuration key 'colour'"))
        let badPort = try TenkiProcess.run(["serve", "--data-dir", directory], environment: ["TENKI_PORT": "http"])
        #expect(badPort.status == 78)
        #expect(badPort.error.contains("TENKI_PORT: port must be an integer"))
        let badDatabase = try TenkiProcess.run(["migrate", "--database-url", "postgres://nobody@127.0.0.1:1/none"])
        #expect(badDatabase.status == 69)
        #expect(badDatabase.error.contains("cannot open the database"))
    }

    @Test("a second serve on the same SQLite data directory is refused")
    func oneServePerDataDirectory() async throws {
        let test = try TestDatabase.make(.sqlite)
        let dataDir = test.directory + "/data"
        let first = try await TenkiProcess.serve(dataDir: dataDir, databaseURL: nil, secret: "s")
        let second = try TenkiProcess.run(["serve", "--data-dir", dataDir, "--port", String(TenkiProcess.freePort())])
        #expect(second.status == 69)
        #expect(second.error.contains("another `tenki serve` is using this data directory"))
        #expect(first.terminate() == 0)
    }

    @Test("without a configured secret, serve makes one and sign uses it")
    func generatedSecret() throws {
        let directory = try TemporaryDirectory.make(prefix: "tenki-cli")
        let fixture = try Fixtures.github()[0]
        let file = directory + "/payload.json"
        FileManager.default.createFile(atPath: file, contents: Data(fixture.body))
        let signed = try TenkiProcess.run(
            ["webhooks", "sign", file, "--data-dir", directory + "/data"],
            environment: ["TENKI_GITHUB_WEBHOOK_SECRET": ""])
        #expect(signed.status == 0)
        #expect(signed.output.hasPrefix("sha256=") && signed.output.count == 72)
        let secretFile = directory + "/data/github-webhook-secret"
        let attributes = try FileManager.default.attributesOfItem(atPath: secretFile)
        #expect((attributes[.posixPermissions] as? Int) == 0o600)
        let again = try TenkiProcess.run(["webhooks", "sign", file, "--data-dir", directory + "/data"])
        #expect(again.output == signed.output)
    }
}
