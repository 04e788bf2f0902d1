import CSpawnShim
import Foundation

/// A process started with posix_spawn. Unlike Foundation's `Process` on Linux, starting one
/// never reads /proc/self/fd (which crashes a busy server with more than about a thousand open
/// descriptors): the child closes every descriptor above 2 with closefrom. The child starts
/// with default signal dispositions and an empty mask, and a thread of its own reaps it.
/// Unchecked Sendable: `status` and `waiters` are touched only while `condition` is locked.
package final class ChildProcess: @unchecked Sendable {
    /// How the child ended.
    package struct Exit: Sendable, Equatable, CustomStringConvertible {
        /// The exit code, when it exited.
        package let code: Int32?
        /// The signal that ended it, when one did.
        package let signal: Int32?
        /// The shell's convention: the code, or 128 + the signal.
        package var status: Int32 { code ?? (128 + (signal ?? 0)) }
        package var description: String { code.map { "exit \($0)" } ?? "signal \(signal ?? 0)" }

        package init(code: Int32?, signal: Int32?) {
            self.code = code
            self.signal = signal
        }
    }

    /// What one of the child's standard descriptors is.
    package enum Stream: Sendable {
        /// The parent's own descriptor.
        case inherit
        /// /dev/null.
        case null
        /// This open descriptor of the parent's (it stays open in the parent).
        case descriptor(Int32)
    }

    package let pid: pid_t
    package let executable: String
    private let condition = NSCondition()
    private var ended: Exit?
    private var waiters: [CheckedContinuation<Exit, Never>] = []

    private init(pid: pid_t, executable: String) {
        self.pid = pid
        self.executable = executable
    }

    /// Starts `executable` (a path; use /usr/bin/env to search PATH) with `arguments`.
    /// `environment` nil passes this process's own.
    package static func start(
        _ executable: String, _ arguments: [String], environment: [String: String]? = nil,
        stdin: Stream = .null, stdout: Stream = .inherit, stderr: Stream = .inherit
    ) throws -> ChildProcess {
        _ = ignoreBrokenPipes
        let null = open("/dev/null", O_RDWR | O_CLOEXEC)
        guard null >= 0 else { throw SpawnError(executable: executable, errno: errno) }
        defer { close(null) }
        func descriptor(_ stream: Stream) -> Int32 {
            switch stream {
            case .inherit: -1
            case .null: null
            case .descriptor(let fd): fd
            }
        }
        let stdio = [descriptor(stdin), descriptor(stdout), descriptor(stderr)]
        let environmentLines =
            environment.map { $0.map { "\($0.key)=\($0.value)" } } ?? ProcessInfo.processInfo.environment.map { "\($0.key)=\($0.value)" }
        var pid: pid_t = 0
        let status = withCStrings([executable] + arguments) { argv in
            withCStrings(environmentLines) { envp in stdio.withUnsafeBufferPointer { tenki_spawn(&pid, executable, argv, envp, $0.baseAddress) } }
        }
        guard status == 0 else { throw SpawnError(executable: executable, errno: status) }
        let child = ChildProcess(pid: pid, executable: executable)
        let reaper = Thread { child.reap() }
        reaper.name = "reap-\(pid)"
        reaper.stackSize = 64 << 10
        reaper.start()
        return child
    }

    /// A write to a pipe whose child has gone is an EPIPE error here, not a SIGPIPE that ends
    /// this process (children get default dispositions back).
    private static let ignoreBrokenPipes: Void = { _ = signal(SIGPIPE, SIG_IGN) }()

    private func reap() {
        var raw: Int32 = 0
        while waitpid(pid, &raw, 0) == -1 && errno == EINTR {}
        let low = raw & 0x7f
        let exit = low == 0 ? Exit(code: (raw >> 8) & 0xff, signal: nil) : Exit(code: nil, signal: low)
        condition.lock()
        ended = exit
        let resumed = waiters
        waiters = []
        condition.broadcast()
        condition.unlock()
        for waiter in resumed { waiter.resume(returning: exit) }
    }

    /// How it ended, or nil while it runs.
    package var exit: Exit? {
        condition.lock()
        defer { condition.unlock() }
        return ended
    }

    package var isRunning: Bool { exit == nil }

    /// Sends `signal` (SIGTERM, SIGKILL, ...) unless it has already been reaped.
    package func send(_ signal: Int32) {
        condition.lock()
        defer { condition.unlock() }
        if ended == nil { _ = kill(pid, signal) }
    }

    /// Blocks the calling thread until the child ends.
    @discardableResult
    package func waitUntilExit() -> Exit {
        condition.lock()
        defer { condition.unlock() }
        while ended == nil { condition.wait() }
        return ended!
    }

    /// Suspends until the child ends.
    @discardableResult
    package func exited() async -> Exit {
        await withCheckedContinuation { continuation in
            condition.lock()
            if let ended {
                condition.unlock()
                continuation.resume(returning: ended)
            } else {
                waiters.append(continuation)
                condition.unlock()
            }
        }
    }
}

/// Why a child could not be started.
package struct SpawnError: Error, CustomStringConvertible {
    package let executable: String
    package let errno: Int32
    package var description: String { "cannot start \(executable): \(String(cString: strerror(errno)))" }
}

/// Runs `body` with a NULL-terminated array of C strings that live for its duration.
func withCStrings<R>(_ strings: [String], _ body: (UnsafePointer<UnsafeMutablePointer<CChar>?>) -> R) -> R {
    let pointers = strings.map { strdup($0) } + [nil]
    defer { for pointer in pointers { free(pointer) } }
    return pointers.withUnsafeBufferPointer { body($0.baseAddress!) }
}
