import Foundation
import Spawn
import Testing

@Suite("ChildProcess")
struct ChildProcessTests {
    @Test("a child starts from a process holding 1,500 open descriptors and inherits none of them")
    func manyOpenDescriptors() throws {
        // Foundation's Process scans /proc/self/fd here and crashed the test run once it held
        // about 1,360 descriptors.
        let held = (0..<1_500).map { _ in open("/dev/null", O_RDONLY) }
        defer { for fd in held { close(fd) } }
        #expect(held.allSatisfy { $0 >= 0 })
        #expect((held.max() ?? 0) >= 1_500)
        let result = try ChildProcess.run("/bin/ls", ["/proc/self/fd"])
        #expect(result.status == 0)
        // ls sees its three standard streams and the directory it is reading, nothing of ours.
        let seen = Set(result.stdoutText.split(separator: "\n").map(String.init))
        #expect(seen.isSubset(of: ["0", "1", "2", "3"]), "\(seen.sorted())")
        #expect(seen.isSuperset(of: ["0", "1", "2"]))
    }

    @Test("exit codes and signals are told apart, whichever way the end is awaited")
    func exits() async throws {
        let three = try ChildProcess.start("/bin/sh", ["-c", "exit 3"])
        #expect(await three.exited() == ChildProcess.Exit(code: 3, signal: nil))
        #expect(three.waitUntilExit().status == 3)
        #expect(!three.isRunning)

        let sleeper = try ChildProcess.start("/bin/sleep", ["30"])
        #expect(sleeper.isRunning)
        sleeper.send(SIGTERM)
        let ended = await sleeper.exited()
        #expect(ended == ChildProcess.Exit(code: nil, signal: SIGTERM))
        #expect(ended.status == 128 + SIGTERM)
        sleeper.send(SIGKILL)  // already reaped: sends nothing, and must not hit a reused pid
    }

    @Test("a child gets default signal dispositions back, whatever this process ignores")
    func signalDefaults() throws {
        // ChildProcess ignores SIGPIPE in this process; the child must still die of one.
        let result = try ChildProcess.run("/bin/sh", ["-c", "kill -PIPE $$; echo survived"])
        #expect(result.exit.signal == SIGPIPE, "\(result.exit) \(result.stdoutText)")
    }

    @Test("a megabyte in, a megabyte out on each stream: nothing stalls and nothing is lost")
    func largeStreams() throws {
        let input = (0..<(1 << 20)).map { UInt8(truncatingIfNeeded: $0 &* 7) }
        let result = try ChildProcess.run("/bin/sh", ["-c", "head -c 1048576 /dev/zero >&2; cat"], input: input)
        #expect(result.status == 0)
        #expect(result.stdout == input)
        #expect(result.stderr.count == 1 << 20 && result.stderr.allSatisfy { $0 == 0 })
    }

    @Test("the environment given is the whole environment; none given passes ours")
    func environment() throws {
        let exact = try ChildProcess.run("/usr/bin/env", [], environment: ["TENKI_A": "b c", "TENKI_EMPTY": ""])
        #expect(Set(exact.stdoutText.split(separator: "\n")) == ["TENKI_A=b c", "TENKI_EMPTY="])
        let inherited = try ChildProcess.run("/bin/sh", ["-c", "echo \"$PATH\""])
        #expect(inherited.stdoutText == (ProcessInfo.processInfo.environment["PATH"] ?? "") + "\n")
    }

    @Test("a missing executable is an error that names it; a child that exits early takes EPIPE, not us")
    func failures() throws {
        #expect {
            try ChildProcess.start("/nonexistent/tenki-tool", [])
        } throws: { error in
            "\(error)" == "cannot start /nonexistent/tenki-tool: No such file or directory"
        }
        let early = try ChildProcess.run("/bin/true", [], input: Array(repeating: 1, count: 4 << 20))
        #expect(early.status == 0)
    }
}
