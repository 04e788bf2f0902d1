import Foundation

/// What every benchmark prints beside its throughput, so figures from machines (or moments) of
/// different speed can be compared: the cores, and how long the disk under the data directory
/// takes to make a small write durable (a durable commit cannot be faster than that).
package struct MachineFacts: Sendable {
    package let cores: Int
    package let fdatasyncP50Milliseconds: Double
    package let fdatasyncP99Milliseconds: Double

    /// Writes 4 KiB and calls `fdatasync` `iterations` times in a temporary file in `directory`.
    package static func measure(directory: String, iterations: Int = BenchLimits.fdatasyncProbeIterations) throws -> MachineFacts {
        precondition(iterations > 0)
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        let path = directory + "/.tenki-fdatasync-probe-\(getpid())"
        let fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0o600)
        guard fd >= 0 else { throw HostError(.unavailable, "cannot create \(path): \(String(cString: strerror(errno)))") }
        defer {
            close(fd)
            unlink(path)
        }
        let block = [UInt8](repeating: 0xA5, count: BenchLimits.fdatasyncProbeWriteBytes)
        var samples: [Double] = []
        samples.reserveCapacity(iterations)
        for _ in 0..<iterations {
            let written = block.withUnsafeBytes { write(fd, $0.baseAddress, $0.count) }
            guard written == block.count else { throw HostError(.unavailable, "short write to \(path)") }
            let start = DispatchTime.now().uptimeNanoseconds
            guard fdatasync(fd) == 0 else { throw HostError(.unavailable, "fdatasync failed: \(String(cString: strerror(errno)))") }
            samples.append(Double(DispatchTime.now().uptimeNanoseconds - start) / 1e6)
        }
        samples.sort()
        func quantile(_ q: Double) -> Double { samples[min(samples.count - 1, Int(Double(samples.count) * q))] }
        return MachineFacts(
            cores: ProcessInfo.processInfo.activeProcessorCount,
            fdatasyncP50Milliseconds: quantile(0.5), fdatasyncP99Milliseconds: quantile(0.99))
    }

    /// `{"cores":2,"fdatasync_p50_ms":0.512,"fdatasync_p99_ms":1.873}`
    package var json: String {
        String(format: #"{"cores":%d,"fdatasync_p50_ms":%.3f,"fdatasync_p99_ms":%.3f}"#, cores, fdatasyncP50Milliseconds, fdatasyncP99Milliseconds)
    }

    /// The same as a JSON object for `JSONSerialization`.
    package var object: [String: Any] {
        func rounded(_ ms: Double) -> Double { (ms * 1_000).rounded() / 1_000 }
        return ["cores": cores, "fdatasync_p50_ms": rounded(fdatasyncP50Milliseconds), "fdatasync_p99_ms": rounded(fdatasyncP99Milliseconds)]
    }

    /// User and system CPU time of this process so far, in seconds.
    package static func processCPUSeconds() -> Double {
        var usage = rusage()
        getrusage(RUSAGE_SELF.rawValue, &usage)
        func seconds(_ t: timeval) -> Double { Double(t.tv_sec) + Double(t.tv_usec) / 1e6 }
        return seconds(usage.ru_utime) + seconds(usage.ru_stime)
    }
}

/// The benchmarks' own limits.
package enum BenchLimits {
    /// Durable writes the disk probe times (about 0.1-1 s on this class of machine).
    package static let fdatasyncProbeIterations = 200
    /// Bytes of each probe write (a page, as a small commit writes).
    package static let fdatasyncProbeWriteBytes = 4_096
}
