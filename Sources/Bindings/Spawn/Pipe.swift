import CSpawnShim
import Foundation

/// A pipe whose two ends are closed on exec: hand one end to a child as one of its standard
/// streams, then close the parent's copy of that end (`closeChildEnd`) so end-of-file arrives.
/// Unchecked Sendable: each end is closed at most once, under the lock.
package final class ChildPipe: @unchecked Sendable {
    package let readEnd: Int32
    package let writeEnd: Int32
    private let lock = NSLock()
    private var open: (read: Bool, write: Bool) = (true, true)

    package init() throws {
        var fds: [Int32] = [-1, -1]
        guard tenki_pipe_cloexec(&fds) == 0 else { throw SpawnError(executable: "pipe", errno: errno) }
        readEnd = fds[0]
        writeEnd = fds[1]
    }

    package func closeRead() {
        lock.withLock {
            if open.read { close(readEnd) }
            open.read = false
        }
    }

    package func closeWrite() {
        lock.withLock {
            if open.write { close(writeEnd) }
            open.write = false
        }
    }

    deinit {
        if open.read { close(readEnd) }
        if open.write { close(writeEnd) }
    }
}

/// What `ChildProcess.run` collected.
package struct ChildOutput: Sendable {
    package let exit: ChildProcess.Exit
    package let stdout: [UInt8]
    package let stderr: [UInt8]
    package var status: Int32 { exit.status }
    package var stdoutText: String { String(decoding: stdout, as: UTF8.self) }
    package var stderrText: String { String(decoding: stderr, as: UTF8.self) }
}

extension ChildProcess {
    /// Runs `executable` to its end, writing `input` to its stdin and collecting its stdout and
    /// stderr (read together with poll, so neither fills up and stalls the child). Blocks.
    package static func run(
        _ executable: String, _ arguments: [String], environment: [String: String]? = nil, input: [UInt8] = []
    ) throws -> ChildOutput {
        let pipes = (stdin: try ChildPipe(), stdout: try ChildPipe(), stderr: try ChildPipe())
        let child = try start(
            executable, arguments, environment: environment, stdin: .descriptor(pipes.stdin.readEnd), stdout: .descriptor(pipes.stdout.writeEnd),
            stderr: .descriptor(pipes.stderr.writeEnd))
        pipes.stdin.closeRead()
        pipes.stdout.closeWrite()
        pipes.stderr.closeWrite()
        var pump = Pump(input: input, stdin: pipes.stdin, stdout: pipes.stdout.readEnd, stderr: pipes.stderr.readEnd)
        pump.run()
        pipes.stdout.closeRead()
        pipes.stderr.closeRead()
        return ChildOutput(exit: child.waitUntilExit(), stdout: pump.collected[0], stderr: pump.collected[1])
    }
}

/// Moves bytes between the parent and a child's three pipes until both outputs end.
private struct Pump {
    let input: [UInt8]
    let stdin: ChildPipe
    var written = 0
    var readable: [Int32]
    var collected: [[UInt8]] = [[], []]

    init(input: [UInt8], stdin: ChildPipe, stdout: Int32, stderr: Int32) {
        self.input = input
        self.stdin = stdin
        readable = [stdout, stderr]
        if input.isEmpty { stdin.closeWrite() }
    }

    mutating func run() {
        var buffer = [UInt8](repeating: 0, count: 64 << 10)
        while readable.contains(where: { $0 >= 0 }) {
            let writing = written < input.count
            var fds = readable.map { pollfd(fd: $0, events: Int16(POLLIN), revents: 0) }
            fds.append(pollfd(fd: writing ? stdin.writeEnd : -1, events: Int16(POLLOUT), revents: 0))
            guard poll(&fds, nfds_t(fds.count), -1) >= 0 else {
                if errno == EINTR { continue }
                return
            }
            if writing && fds[2].revents != 0 { write() }
            for index in 0..<2 where readable[index] >= 0 && fds[index].revents != 0 {
                let count = Glibc.read(readable[index], &buffer, buffer.count)
                if count > 0 { collected[index] += buffer[0..<count] } else if count == 0 || errno != EINTR { readable[index] = -1 }
            }
        }
        stdin.closeWrite()
    }

    mutating func write() {
        // At most PIPE_BUF: poll said that much fits, so the write cannot block.
        let count = input[written..<min(input.count, written + Int(PIPE_BUF))].withUnsafeBytes {
            Glibc.write(stdin.writeEnd, $0.baseAddress, $0.count)
        }
        if count > 0 { written += count } else if errno != EINTR && errno != EAGAIN { written = input.count }
        if written >= input.count { stdin.closeWrite() }
    }
}
