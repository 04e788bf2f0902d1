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
}
