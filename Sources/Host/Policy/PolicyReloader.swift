import Foundation
import SQL
import ServiceLifecycle

/// Polls the policy source and swaps in valid changes (a valid change serves within one poll
/// interval plus validation time). Runs until graceful shutdown.
package struct PolicyReloader: Service {
    let engine: PolicyEngine
    let database: (any Database)?
    let intervalMilliseconds: Int

    /// With a database, each set that starts serving is recorded in the policy history.
    package init(engine: PolicyEngine, database: (any Database)? = nil, intervalMilliseconds: Int = PolicyLimits.reloadPollMilliseconds) {
        self.engine = engine
        self.database = database
        self.intervalMilliseconds = intervalMilliseconds
    }

    package func run() async throws {
        await cancelWhenGracefulShutdown {
            while !Task.isCancelled {
                if case .loaded = engine.reload(), let database, let set = engine.currentSet {
                    do {
                        try await PolicyHistoryStore.record(set, in: database)
                    } catch {
                        engine.logger.error("policy version not recorded", metadata: ["error": .string("\(error)")])
                    }
                }
                try? await Task.sleep(nanoseconds: UInt64(intervalMilliseconds) * 1_000_000)
            }
        }
    }
}
