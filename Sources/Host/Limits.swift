/// Every limit of the host, with its unit in its name. Configuration may lower a limit, never
/// raise it: each configurable key is parsed with the limit as its range's upper bound
/// (`HostConfiguration.setters`), so a larger value is a configuration error.
package enum HostLimits {
    /// GitHub's own cap on a webhook payload.
    package static let webhookMaxBodyBytes = 25 * 1024 * 1024
    /// Largest header block we keep with a stored delivery.
    package static let webhookMaxStoredHeaderBytes = 64 * 1024
    /// Events one dispatcher claims per poll.
    package static let inboxClaimBatchEvents = 64
    /// Events one dispatcher handles at once.
    package static let inboxMaxConcurrentEvents = 64
    /// Bytes of just-committed payloads kept in memory for the dispatcher (see `EventBus.remember`).
    package static let inboxRecentPayloadBytes = 32 << 20
    /// Characters of a failing event's error kept in the inbox row.
    package static let inboxMaxStoredErrorCharacters = 2_000
    /// Attempts before an event is parked as dead.
    package static let inboxMaxAttempts = 10
    /// Longest backoff between attempts of a failing event.
    package static let inboxMaxBackoffSeconds = 300
    /// Largest page a list command or endpoint returns.
    package static let listMaxRows = 1_000
    /// PostgreSQL connections per process.
    package static let databaseMaxPoolSize = 64
    /// `http.request` from a script: its timeout when none is given, and the range it is clamped to.
    package static let scriptHTTPDefaultTimeoutSeconds = 10
    package static let scriptHTTPMinTimeoutMilliseconds = 1_000
    package static let scriptHTTPMaxTimeoutMilliseconds = 60_000

    /// The relations between the limits; checked once when a host opens.
    package static func assertRelations() {
        precondition(webhookMaxStoredHeaderBytes < webhookMaxBodyBytes, "headers are kept beside bodies, smaller")
        precondition(inboxRecentPayloadBytes >= webhookMaxBodyBytes, "the payload memory must hold at least one largest body")
        precondition(
            scriptHTTPMinTimeoutMilliseconds <= scriptHTTPDefaultTimeoutSeconds * 1_000
                && scriptHTTPDefaultTimeoutSeconds * 1_000 <= scriptHTTPMaxTimeoutMilliseconds, "default timeout within its range")
        precondition(listMaxRows >= 1, "a page holds at least one row")
    }
}
