import Foundation
import HTTPClient
import TestSupport
import Testing

@Suite("tenki keys")
struct KeysCommandTests {
    @Test(
        "create prints the key once, list never shows a secret, revoke stops it at once; a running server agrees; /metrics is open to loopback only")
    func lifecycle() async throws {
        let test = try TestDatabase.make(.sqlite)
        let data = ["--data-dir", test.directory + "/data"]
        let server = try await TenkiProcess.serve(dataDir: test.directory + "/data", databaseURL: nil, secret: "s")
        let made = try TenkiProcess.run(["keys", "create", "--role", "finance", "--name", "books", "--expires", "90d", "--json"] + data)
        #expect(made.status == 0, "\(made.error)")
        let object = try #require(try JSONSerialization.jsonObject(with: Data(made.output.utf8)) as? [String: Any])
        let key = try #require(object["key"] as? String)
        let id = try #require(object["id"] as? String)
        #expect(key.hasPrefix("tk_\(id)_") && object["role"] as? String == "finance" && object["expires_at"] is Int)

        let listed = try TenkiProcess.run(["keys", "list", "--json"] + data)
        #expect(listed.status == 0 && listed.output.contains(id) && !listed.output.contains(String(key.suffix(32))))
        #expect(!server.log.contains(String(key.suffix(32))) && !server.log.contains(server.opsKey))

        // From this machine, /metrics needs no key (a local Prometheus); nothing else does without one.
        #expect(try await HTTPClient().get(server.baseURL + "/metrics").status == 200)
        #expect(try await HTTPClient().get(server.baseURL + "/runner/workspaces").status == 401)
        let auth = [(name: "Authorization", value: "Bearer " + key)]
        #expect(try await HTTPClient().get(server.baseURL + "/runner/workspaces", headers: auth).status == 200)
        #expect(try await HTTPClient().get(server.baseURL + "/workflows", headers: auth).status == 403)
        // A key on /metrics is checked as any other: finance may not read it, even from loopback.
        #expect(try await HTTPClient().get(server.baseURL + "/metrics", headers: auth).status == 403)
        let revoked = try TenkiProcess.run(["keys", "revoke", id] + data)
        #expect(revoked.status == 0 && revoked.output.contains("revoked \(id)"))
        #expect(try await HTTPClient().get(server.baseURL + "/runner/workspaces", headers: auth).status == 401)

        let member = try TenkiProcess.run(["keys", "create", "--role", "member", "--workspace", "nowhere"] + data)
        #expect(member.status != 0 && member.error.contains("no workspace 'nowhere'"), "\(member.error)")
        let badRole = try TenkiProcess.run(["keys", "create", "--role", "admin"] + data)
        #expect(badRole.status != 0 && badRole.error.contains("ops, sales, finance, member"), "\(badRole.error)")
        #expect(server.terminate() == 0)
    }
}
