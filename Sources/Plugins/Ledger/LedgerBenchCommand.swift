import ArgumentParser
import Foundation
import Host
import SQL

/// `tenki ledger bench`: transfers per second in full batches and as single transfers from 32
/// concurrent callers, with latency, on the configured database. Prints JSON. Not a test.
/// `cpu_seconds` is this process's CPU time in each part and `per_cpu_second` the transfers per
/// second of it: on a busy machine, where wall-clock rates swing, they still compare two builds
/// (PostgreSQL's own CPU is not in them).
struct LedgerBenchCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(commandName: "bench", abstract: "Ledger throughput and latency (JSON).")
    @OptionGroup var options: HostOptions
    @Option(help: "Full batches to send.") var batches = 10
    @Option(help: "Single transfers to send from the concurrent callers.") var singles = 20_000
    @Option(help: "Concurrent callers for single transfers.") var callers = 32

    func run() async throws {
        let host = try await options.openHost()
        let machine = try MachineFacts.measure(directory: host.configuration.dataDir)
        let store = try host.require(LedgerPlugin.self).store
        let base = UInt64(Date().timeIntervalSince1970 * 1_000) << 20
        let accounts = (0..<1_000).map { Account(id: ID128(high: 7, low: base + UInt64($0)), ledger: 9, code: 1) }
        _ = try await store.createAccounts(accounts, now: LedgerClock.nowNanoseconds())
        var next = base
        func transfer() -> Transfer {
            next += 1
            let a = Int(next % 1_000)
            let b = Int((next / 7 + 1) % 1_000)
            return Transfer(
                id: ID128(high: 8, low: next), debitAccountID: accounts[a].id,
                creditAccountID: accounts[a == b ? (b + 1) % 1_000 : b].id, amount: 1 + next % 1_000, ledger: 9, code: 1)
        }
        // Full batches.
        let batchCPU = MachineFacts.processCPUSeconds()
        var batchLatencies: [Double] = []
        let batchStart = DispatchTime.now().uptimeNanoseconds
        for _ in 0..<batches {
            let batch = (0..<LedgerLimits.maxBatchEvents).map { _ in transfer() }
            let t0 = DispatchTime.now().uptimeNanoseconds
            let results = try await store.createTransfers(batch, now: LedgerClock.nowNanoseconds())
            precondition(results.allSatisfy { $0 == .ok })
            batchLatencies.append(Double(DispatchTime.now().uptimeNanoseconds - t0) / 1e6)
        }
        let batchSeconds = Double(DispatchTime.now().uptimeNanoseconds - batchStart) / 1e9
        let batchCPUSeconds = MachineFacts.processCPUSeconds() - batchCPU
        let singleCPU = MachineFacts.processCPUSeconds()
        // Single transfers from concurrent callers.
        let work = (0..<singles).map { _ in transfer() }
        let perCaller = singles / callers
        let singleStart = DispatchTime.now().uptimeNanoseconds
        let latencies = try await withThrowingTaskGroup(of: [Double].self) { group in
            for c in 0..<callers {
                let slice = Array(work[(c * perCaller)..<((c + 1) * perCaller)])
                group.addTask {
                    var mine: [Double] = []
                    for t in slice {
                        let t0 = DispatchTime.now().uptimeNanoseconds
                        let result = try await store.createTransfers([t], now: LedgerClock.nowNanoseconds())
                        precondition(result == [.ok])
                        mine.append(Double(DispatchTime.now().uptimeNanoseconds - t0) / 1e6)
                    }
                    return mine
                }
            }
            return try await group.reduce(into: [Double]()) { $0 += $1 }
        }.sorted()
        let singleSeconds = Double(DispatchTime.now().uptimeNanoseconds - singleStart) / 1e9
        let singleCPUSeconds = MachineFacts.processCPUSeconds() - singleCPU
        batchLatencies.sort()
        func p(_ values: [Double], _ q: Double) -> Double { values.isEmpty ? 0 : values[min(values.count - 1, Int(Double(values.count) * q))] }
        print(
            String(
                format: """
                    {"benchmark":"ledger","machine":%@,"database":"%@",\
                    "full_batches":{"batches":%d,"transfers_per_second":%.0f,"p50_ms":%.1f,"p99_ms":%.1f,\
                    "cpu_seconds":%.2f,"per_cpu_second":%.0f},"single_transfers":{"callers":%d,"transfers":%d,"transfers_per_second":%.0f,\
                    "p50_ms":%.2f,"p99_ms":%.2f,"cpu_seconds":%.2f,"per_cpu_second":%.0f}}
                    """, machine.json, host.database.dialect.rawValue, batches, Double(batches * LedgerLimits.maxBatchEvents) / batchSeconds,
                p(batchLatencies, 0.5), p(batchLatencies, 0.99), batchCPUSeconds,
                Double(batches * LedgerLimits.maxBatchEvents) / max(batchCPUSeconds, 1e-6), callers, latencies.count,
                Double(latencies.count) / singleSeconds, p(latencies, 0.5), p(latencies, 0.99), singleCPUSeconds,
                Double(latencies.count) / max(singleCPUSeconds, 1e-6)))
        await host.database.close()
    }
}
