import Foundation

/// A token bucket per API key: `burst` requests at once, refilled at `perSecond`. In memory and
/// per process (each replica limits on its own). Counted in thousandths of a token.
/// Unchecked Sendable: `buckets` is touched only under `lock`.
package final class KeyRateLimiter: @unchecked Sendable {
    private struct Bucket {
        var milliTokens: Int64
        var atNanoseconds: UInt64
    }

    package let perSecond: Int64
    package let burst: Int64
    private let lock = NSLock()
    private var buckets: [String: Bucket] = [:]
    /// Monotonic nanoseconds (tests stop it).
    private let clock: @Sendable () -> UInt64

    package init(perSecond: Int, burst: Int, clock: @escaping @Sendable () -> UInt64 = { DispatchTime.now().uptimeNanoseconds }) {
        precondition(perSecond > 0 && burst > 0)
        self.perSecond = Int64(perSecond)
        self.burst = Int64(burst)
        self.clock = clock
    }

    /// `take(_:nowNanoseconds:)` at the limiter's clock's now.
    package func take(_ key: String) -> Int? { take(key, nowNanoseconds: clock()) }

    /// Takes a token for `key`: nil when the request may go, else the whole seconds (at least
    /// one) until a token is back, for `Retry-After`.
    package func take(_ key: String, nowNanoseconds: UInt64) -> Int? {
        lock.withLock {
            var bucket = buckets[key] ?? Bucket(milliTokens: burst * 1_000, atNanoseconds: nowNanoseconds)
            // perSecond tokens a second is perSecond thousandths a millisecond; whole milliseconds only, the rest stays.
            let milliseconds = nowNanoseconds > bucket.atNanoseconds ? Int64((nowNanoseconds - bucket.atNanoseconds) / 1_000_000) : 0
            bucket.milliTokens = min(burst * 1_000, bucket.milliTokens + milliseconds * perSecond)
            bucket.atNanoseconds += UInt64(milliseconds) * 1_000_000
            defer { buckets[key] = bucket }
            if bucket.milliTokens >= 1_000 {
                bucket.milliTokens -= 1_000
                return nil
            }
            let waitMilliseconds = (1_000 - bucket.milliTokens + perSecond - 1) / perSecond
            return Int(max(1, (waitMilliseconds + 999) / 1_000))
        }
    }
}
