import ArgumentParser
import Foundation
import Host
import SQL

/// The double-entry ledger (TigerBeetle semantics) on SQLite or PostgreSQL. This first slice
/// offers its storage and rules (`LedgerStore`, `LedgerState`); the chart of accounts, the
/// sweeper service, Lua functions, CLI and HTTP views come next.
public struct LedgerPlugin: Plugin {
    public static let name = "ledger"
    public static var migrations: [Migration] { LedgerStore.migrations }

    public let store: LedgerStore

    public init(context: HostContext) async throws {
        store = LedgerStore(database: context.database)
    }
}
