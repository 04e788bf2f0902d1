import Foundation
import Host

/// Where a run is in its life. `sleeping` covers every parked wait: a durable timer, a retry's
/// backoff, a signal and a child.
package enum WorkflowStatus: String, Sendable, Codable, CaseIterable {
    case pending, running, sleeping, completed, failed, cancelled

    package var isFinished: Bool { self == .completed || self == .failed || self == .cancelled }
}

/// One run as stored.
package struct WorkflowRun: Sendable {
    package let id: String
    package let type: String
    package let taskQueue: String
    package let status: WorkflowStatus
    package let input: [UInt8]
    package let output: [UInt8]?
    package let error: String?
    package let parentID: String?
    /// Times the workflow function has been started under this id (replays after waits and
    /// crashes included; it keeps counting across runs, as the lease's fencing token).
    package let executions: Int
    /// 1, then one more after each continue-as-new or each start after an earlier run ended.
    package let runNumber: Int
    package let dueAtMs: Int64?
    package let deadlineAtMs: Int64?
    let wakeSeq: Int64
    package let createdAtMs: Int64
    package let updatedAtMs: Int64
    package let finishedAtMs: Int64?
}

/// Who holds a run: the worker and the execution number its claim produced (the fencing token).
struct WorkflowLease: Sendable, Equatable {
    let owner: String
    let execution: Int
}

/// One recorded call of a run: a step, transaction, sleep, signal wait, child or state write.
package struct WorkflowStepRecord: Sendable {
    package let seq: Int
    /// `step`, `transaction`, `sleep`, `signal`, `child`, `child_result`, `state`, `now`.
    package let kind: String
    package let name: String
    /// `completed`, `failed`, `retrying` (waiting for its next attempt) or `waiting`.
    package var status: String
    package var output: [UInt8]?
    package var errorType: String?
    package var error: String?
    package var attempts: Int
    package var wakeAtMs: Int64?
    package let startedAtMs: Int64
    package var finishedAtMs: Int64?
}

/// Why an execution stops without an ordinary result. Thrown through the workflow function
/// (which must not swallow it; the context remembers it anyway).
enum WorkflowHalt: Error, CustomStringConvertible {
    /// Parked until the time (nil: until woken by a signal or a child).
    case suspended(dueAtMs: Int64?)
    /// The run is no longer ours (lease ran out, or cancelled): stop, write nothing.
    case lostLease
    /// Recorded history and the code disagree.
    case nondeterminism(String)
    case timedOut(String)
    /// The run ends here and the workflow starts again with this input and a fresh history.
    case continuedAsNew([UInt8])

    var description: String {
        switch self {
        case .suspended(let due): return "suspended until \(due.map { Timestamp.iso(ms: $0) } ?? "woken")"
        case .lostLease: return "the run is no longer held by this worker"
        case .nondeterminism(let message), .timedOut(let message): return message
        case .continuedAsNew: return "continued as new"
        }
    }
}

/// A step that ran longer than its start-to-close timeout (retryable).
package struct WorkflowStepTimeout: Error, CustomStringConvertible {
    package let step: String
    package let milliseconds: Int64
    package var description: String { "step '\(step)' did not finish within \(milliseconds) ms" }
}

/// The time workflows see. Production uses the system clock; tests move a `ManualWorkflowClock`.
package protocol WorkflowClock: Sendable {
    func nowMilliseconds() -> Int64
    /// Returns after `milliseconds` of this clock's time, or throws when the task is cancelled.
    func sleep(milliseconds: Int64) async throws
}

package struct SystemWorkflowClock: WorkflowClock {
    package init() {}
    package func nowMilliseconds() -> Int64 { Timestamp.ms(Date()) }
    package func sleep(milliseconds: Int64) async throws { try await Task.sleep(nanoseconds: UInt64(max(0, milliseconds)) * 1_000_000) }
}

/// A clock that moves only when told: `advance(by:)` wakes the sleepers it passes.
/// Unchecked Sendable: its state is touched only under `lock`.
package final class ManualWorkflowClock: WorkflowClock, @unchecked Sendable {
    private let lock = NSLock()
    private var now: Int64
    private var sleepers: [(id: UInt64, until: Int64, continuation: CheckedContinuation<Void, any Error>)] = []
    private var nextID: UInt64 = 0

    package init(startMilliseconds: Int64 = 1_767_225_600_000) { now = startMilliseconds }  // 2026-01-01T00:00:00Z

    package func nowMilliseconds() -> Int64 { lock.withLock { now } }

    /// Tasks waiting in `sleep`.
    package var sleeperCount: Int { lock.withLock { sleepers.count } }

    package func advance(by duration: Duration) {
        let due: [CheckedContinuation<Void, any Error>] = lock.withLock {
            now += WorkflowDurations.milliseconds(duration)
            let ready = sleepers.filter { $0.until <= now }
            sleepers.removeAll { $0.until <= now }
            return ready.map(\.continuation)
        }
        due.forEach { $0.resume() }
    }

    package func sleep(milliseconds: Int64) async throws {
        let id: UInt64 = lock.withLock {
            nextID += 1
            return nextID
        }
        try await withTaskCancellationHandler {
            try await withCheckedThrowingContinuation { (continuation: CheckedContinuation<Void, any Error>) in
                let resumeNow: Bool = lock.withLock {
                    if milliseconds <= 0 || Task.isCancelled { return true }
                    sleepers.append((id, now + milliseconds, continuation))
                    return false
                }
                if resumeNow { continuation.resume() }
            }
        } onCancel: {
            let cancelled = lock.withLock { () -> CheckedContinuation<Void, any Error>? in
                guard let index = sleepers.firstIndex(where: { $0.id == id }) else { return nil }
                return sleepers.remove(at: index).continuation
            }
            cancelled?.resume(throwing: CancellationError())
        }
    }
}
