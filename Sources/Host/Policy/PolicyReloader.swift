import Foundation
import ServiceLifecycle

/// Polls the policy source and swaps in valid changes (a valid change serves within one poll
/// interval plus validation time). Runs until graceful shutdown.
public struct PolicyReloader: Service {
    let engine: PolicyEngine
    let intervalMilliseconds: Int

    public init(engine: PolicyEngine, intervalMilliseconds: Int = PolicyLimits.reloadPollMilliseconds) {
        self.engine = engine
        self.intervalMilliseconds = intervalMilliseconds
    }

    public func run() async throws {
        await cancelWhenGracefulShutdown {
            while !Task.isCancelled {
                engine.reload()
                try? await Task.sleep(nanoseconds: UInt64(intervalMilliseconds) * 1_000_000)
            }
        }
    }
}
