import Foundation

/// Threads of our own for blocking C calls (SQLite, libpq, libcurl), so they never occupy
/// the cooperative pool or an event loop, and never queue behind other blocked GCD work.
/// Threads start on demand up to `maxThreads` and then stay; jobs run in arrival order.
/// Unchecked Sendable: `jobs`, `threads` and `idle` are touched only while `condition` is locked.
package final class BlockingThreadPool: @unchecked Sendable {
    package let name: String
    package let maxThreads: Int
    private let condition = NSCondition()
    private var jobs: [() -> Void] = []
    private var threads = 0
    private var idle = 0

    package init(name: String, maxThreads: Int) {
        precondition(maxThreads > 0)
        self.name = name
        self.maxThreads = maxThreads
    }

    /// Runs `body` on a pool thread and returns its result to the awaiting task.
    package func run<T>(_ body: @escaping () throws -> T) async throws -> T {
        let handed: Handover<T> = try await withCheckedThrowingContinuation { continuation in
            submit { continuation.resume(returning: Handover(result: Result { try body() })) }
        }
        return try handed.result.get()
    }

    /// Queues `job` without waiting for it.
    package func submit(_ job: @escaping () -> Void) {
        condition.lock()
        jobs.append(job)
        if idle == 0 && threads < maxThreads {
            threads += 1
            let thread = Thread { [unowned self] in self.work() }
            thread.name = "\(name)-\(threads)"
            thread.stackSize = 1 << 20
            thread.start()
        } else {
            condition.signal()
        }
        condition.unlock()
    }

    private func work() {
        while true {
            condition.lock()
            while jobs.isEmpty {
                idle += 1
                condition.wait()
                idle -= 1
            }
            let job = jobs.removeFirst()
            condition.unlock()
            job()
        }
    }
}

/// A result made on a thread of our own, handed to the one task awaiting it. Unchecked because
/// the compiler cannot see the hand-over: the thread makes the value, resumes the continuation
/// and drops its reference, so from then on only the awaiting task touches it. (Requiring
/// `T: Sendable` instead would force it on every database and HTTP call's result.)
package struct Handover<T>: @unchecked Sendable {
    package let result: Result<T, any Error>
    package init(result: Result<T, any Error>) { self.result = result }
}
