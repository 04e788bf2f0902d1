/// Every limit of the host, with its unit in its name. Configuration may lower a limit, never
/// raise it (see `HostConfiguration.validate`).
public enum HostLimits {
    /// GitHub's own cap on a webhook payload.
    public static let webhookMaxBodyBytes = 25 * 1024 * 1024
    /// Largest header block we keep with a stored delivery.
    public static let webhookMaxStoredHeaderBytes = 64 * 1024
    /// Events one dispatcher claims per poll.
    public static let inboxClaimBatchEvents = 64
    /// Events one dispatcher handles at once.
    public static let inboxMaxConcurrentEvents = 64
    /// Bytes of just-committed payloads kept in memory for the dispatcher (see `EventBus.remember`).
    public static let inboxRecentPayloadBytes = 32 << 20
    /// Attempts before an event is parked as dead.
    public static let inboxMaxAttempts = 10
    /// Longest backoff between attempts of a failing event.
    public static let inboxMaxBackoffSeconds = 300
    /// Largest page a list command or endpoint returns.
    public static let listMaxRows = 1_000
    /// PostgreSQL connections per process.
    public static let databaseMaxPoolSize = 64
}
