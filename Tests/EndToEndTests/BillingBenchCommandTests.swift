import Foundation
import TestSupport
import Testing

@Suite("tenki billing bench")
struct BillingBenchCommandTests {
    @Test("a tiny cycle bills every workspace once and prints the documented figures")
    func tinyCycle() throws {
        let test = try TestDatabase.make(.sqlite)
        let result = try TenkiProcess.run(["billing", "bench", "--workspaces", "20", "--usage", "200", "--data-dir", test.directory + "/data"])
        #expect(result.status == 0, "\(result.error)")
        let object = try #require(try JSONSerialization.jsonObject(with: Data(result.output.utf8)) as? [String: Any])
        for key in [
            "workspaces", "usage_records", "seed_seconds", "cycle_seconds", "invoices_per_second", "usage_records_per_second", "cpu_seconds",
            "invoices_per_cpu_second", "usage_records_per_cpu_second", "invoices", "payments", "database", "machine",
        ] {
            #expect(object[key] != nil, "no \(key)")
        }
        #expect(object["invoices"] as? Int == 20 && object["payments"] as? Int == 20 && object["invoiced_usage_records"] as? Int == 200)
        #expect(object["database"] as? String == "sqlite")
        let machine = try #require(object["machine"] as? [String: Any])
        #expect(machine["cores"] as? Int ?? 0 > 0 && machine["fdatasync_p50_ms"] != nil)
    }

    @Test("--seed-only leaves a database that --seeded bills; --seeded refuses one seeded otherwise or billed already")
    func seededCycle() throws {
        let test = try TestDatabase.make(.sqlite)
        let data = ["--data-dir", test.directory + "/data"]
        let seed = try TenkiProcess.run(["billing", "bench", "--seed-only", "--workspaces", "10", "--usage", "50"] + data)
        #expect(seed.status == 0, "\(seed.error)")
        let seedObject = try JSONSerialization.jsonObject(with: Data(seed.output.utf8)) as? [String: Any]
        #expect(seedObject?["seed_seconds"] != nil && seedObject?["cycle_seconds"] == nil)
        let fresh = try TenkiProcess.run(["billing", "bench", "--workspaces", "10", "--usage", "50"] + data)
        #expect(fresh.status != 0 && fresh.error.contains("needs a fresh database"), "\(fresh.error)")
        let mismatched = try TenkiProcess.run(["billing", "bench", "--seeded", "--workspaces", "11", "--usage", "50"] + data)
        #expect(mismatched.status != 0 && mismatched.error.contains("has 10 workspaces, 50 usage records, 0 invoices"), "\(mismatched.error)")
        let cycle = try TenkiProcess.run(["billing", "bench", "--seeded", "--workspaces", "10", "--usage", "50"] + data)
        #expect(cycle.status == 0, "\(cycle.error)")
        let object = try #require(try JSONSerialization.jsonObject(with: Data(cycle.output.utf8)) as? [String: Any])
        #expect(object["invoices"] as? Int == 10 && object["invoiced_usage_records"] as? Int == 50)
        #expect(object["schedule_executions"] as? Int ?? 0 >= 1 && object["cycle_executions"] as? Int ?? 0 >= 10)
        let again = try TenkiProcess.run(["billing", "bench", "--seeded", "--workspaces", "10", "--usage", "50"] + data)
        #expect(again.status != 0 && again.error.contains("10 invoices"), "\(again.error)")
    }
}
