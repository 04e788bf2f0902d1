import ArgumentParser
import Foundation
import Logging

/// `tenki bench policy`: job-price evaluations per second and latency, marshalling included.
package struct BenchCommand: AsyncParsableCommand {
    package static let configuration = CommandConfiguration(
        commandName: "bench", abstract: "Benchmarks that print JSON (not tests).", subcommands: [Policy.self, Reload.self])

    package init() {}

    struct Policy: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Price evaluations per second, p50/p99, on one thread and on every core.")
        @OptionGroup var options: HostOptions
        @Option(help: "Seconds per run.") var seconds = 5.0

        func run() throws {
            let configuration = try options.configuration()
            var logger = Logger(label: "tenki")
            logger.logLevel = .critical
            let engine = PolicyEngine(source: DirectoryPolicySource(root: configuration.policyRoot), logger: logger)
            let version = try engine.loadForCommand()
            let input = JobPriceInput(
                labels: ["tenki-premium-4c-8gb"], startedAt: "2026-01-05T10:00:00Z", completedAt: "2026-01-05T10:09:31Z",
                workspace: .init(freeMinutesRemaining: 6, hasPaymentMethod: true, addons: ["priority-queue-boost"]))
            let machine = try MachineFacts.measure(directory: configuration.dataDir)
            var runs: [String] = []
            for threads in [1, ProcessInfo.processInfo.activeProcessorCount] {
                runs.append(run(engine: engine, input: input, threads: threads))
            }
            print(
                "{\"benchmark\":\"policy_price\",\"machine\":\(machine.json),\"policy_version\":\"\(version)\",\"seconds_per_run\":\(seconds),"
                    + "\"runs\":[\(runs.joined(separator: ","))]}"
            )
        }

        func run(engine: PolicyEngine, input: JobPriceInput, threads: Int) -> String {
            /// Unchecked Sendable: each is written by its own thread only and read after
            /// `group.wait()`, which orders the writes before the reads.
            final class Result: @unchecked Sendable {
                var latencies: [UInt64] = []
                var count = 0
                var failures = 0
                var cpuNanoseconds: UInt64 = 0
            }
            let results = (0..<threads).map { _ in Result() }
            let group = DispatchGroup()
            let deadline = DispatchTime.now().uptimeNanoseconds + UInt64(seconds * 1e9)
            for result in results {
                group.enter()
                let thread = Thread {
                    // Warm the thread's Lua state first.
                    _ = try? engine.priceJob(input)
                    result.latencies.reserveCapacity(2_000_000)
                    let cpuStart = BenchCommand.threadCPUNanoseconds()
                    defer { result.cpuNanoseconds = BenchCommand.threadCPUNanoseconds() - cpuStart }
                    while true {
                        let start = DispatchTime.now().uptimeNanoseconds
                        if start >= deadline { break }
                        do {
                            let price = try engine.priceJob(input).price
                            if price.amountMicros != 6_300_000 { result.failures += 1 }
                        } catch {
                            result.failures += 1
                        }
                        result.latencies.append(DispatchTime.now().uptimeNanoseconds - start)
                        result.count += 1
                    }
                    group.leave()
                }
                thread.stackSize = 8 << 20
                thread.start()
            }
            group.wait()
            var all = results.flatMap(\.latencies)
            all.sort()
            func percentile(_ p: Double) -> Double {
                all.isEmpty ? 0 : Double(all[min(all.count - 1, Int(Double(all.count) * p))]) / 1000
            }
            let total = results.reduce(0) { $0 + $1.count }
            let failures = results.reduce(0) { $0 + $1.failures }
            // Evaluations per second of CPU the evaluating threads actually got: what one core
            // does, whatever else the machine runs meanwhile.
            let cpuSeconds = Double(results.reduce(0) { $0 + $1.cpuNanoseconds }) / 1e9
            return String(
                format:
                    "{\"threads\":%d,\"evaluations\":%d,\"failures\":%d,\"per_second\":%.0f,\"per_cpu_second\":%.0f,\"p50_us\":%.2f,\"p99_us\":%.2f,"
                    + "\"max_us\":%.2f}",
                threads, total, failures, Double(total) / seconds, Double(total) / max(cpuSeconds, 1e-9),
                percentile(0.5), percentile(0.99), percentile(1.0 - 1e-9))
        }
    }

    /// CPU time the calling thread has used.
    static func threadCPUNanoseconds() -> UInt64 {
        var ts = timespec()
        clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts)
        return UInt64(ts.tv_sec) * 1_000_000_000 + UInt64(ts.tv_nsec)
    }

    struct Reload: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Milliseconds from writing a valid policy change to serving it, with the reloader as `tenki serve` runs it.")
        @OptionGroup var options: HostOptions
        @Option(help: "Changes to time.") var changes = 20

        func run() async throws {
            let configuration = try options.configuration()
            let machine = try MachineFacts.measure(directory: configuration.dataDir)
            let files = try DirectoryPolicySource(root: configuration.policyRoot).read()
            let root = NSTemporaryDirectory() + "tenki-bench-reload-" + UUID().uuidString
            defer { try? FileManager.default.removeItem(atPath: root) }
            for file in files {
                let path = root + "/" + file.path
                try FileManager.default.createDirectory(atPath: (path as NSString).deletingLastPathComponent, withIntermediateDirectories: true)
                try file.source.write(toFile: path, atomically: true, encoding: .utf8)
            }
            var logger = Logger(label: "tenki")
            logger.logLevel = .critical
            let engine = PolicyEngine(source: DirectoryPolicySource(root: root), logger: logger)
            try engine.loadForCommand()
            let reloader = Task { try await PolicyReloader(engine: engine).run() }
            defer { reloader.cancel() }
            var latencies: [Double] = []
            let pricing = try String(contentsOfFile: root + "/pricing.lua", encoding: .utf8)
            for change in 0..<changes {
                let before = engine.currentVersion
                let start = DispatchTime.now().uptimeNanoseconds
                try (pricing + "\n-- change \(change)\n").write(toFile: root + "/pricing.lua", atomically: true, encoding: .utf8)
                while engine.currentVersion == before {
                    try await Task.sleep(nanoseconds: 1_000_000)
                    if DispatchTime.now().uptimeNanoseconds - start > 10_000_000_000 { throw HostError(.internal, "change not served in 10 s") }
                }
                latencies.append(Double(DispatchTime.now().uptimeNanoseconds - start) / 1e6)
            }
            latencies.sort()
            print(
                String(
                    format: "{\"benchmark\":\"policy_reload\",\"machine\":%@,\"changes\":%d,\"p50_ms\":%.1f,\"max_ms\":%.1f,\"poll_interval_ms\":%d}",
                    machine.json, changes, latencies[latencies.count / 2], latencies.last ?? 0, PolicyLimits.reloadPollMilliseconds))
        }
    }
}
