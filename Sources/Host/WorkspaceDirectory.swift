import Foundation

/// Finds a workspace's id from its id or slug. The plugin that owns workspaces (the runner)
/// registers how; readers (the ledger's CLI and HTTP views) ask, without reading its tables.
/// Unchecked Sendable: `resolvers` is touched only under `lock`.
package final class WorkspaceDirectory: @unchecked Sendable {
    package typealias Resolver = @Sendable (String) async throws -> String?
    private let lock = NSLock()
    private var resolvers: [Resolver] = []

    package init() {}

    package func register(_ resolver: @escaping Resolver) {
        lock.withLock { resolvers.append(resolver) }
    }

    /// The id of the workspace named `idOrSlug`, or nil when no plugin knows it.
    package func lookup(_ idOrSlug: String) async throws -> String? {
        for resolver in lock.withLock({ resolvers }) {
            if let id = try await resolver(idOrSlug) { return id }
        }
        return nil
    }

    /// The id of the workspace named `idOrSlug`, or the text itself when no plugin knows it.
    package func resolve(_ idOrSlug: String) async throws -> String {
        for resolver in lock.withLock({ resolvers }) {
            if let id = try await resolver(idOrSlug) { return id }
        }
        return idOrSlug
    }
}
