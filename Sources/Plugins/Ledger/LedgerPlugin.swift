import ArgumentParser
import Foundation
import Host
import Hummingbird
import Logging
import ServiceLifecycle
import SQL

/// The double-entry ledger (TigerBeetle semantics) on SQLite or PostgreSQL: its rules
/// (`LedgerState`), storage (`LedgerStore`), the chart of accounts of SPEC.md section 11
/// (created on first start) and `tenki ledger accounts | balance | transfers`.
public struct LedgerPlugin: Plugin {
    public static let name = "ledger"
    public static var migrations: [Migration] { LedgerStore.migrations }
    public static var commands: [any ParsableCommand.Type] { [LedgerCommand.self] }

    public let store: LedgerStore
    let logger: Logger

    public init(context: HostContext) async throws {
        store = LedgerStore(database: context.database)
        logger = context.logger
        try await store.ensureChart(now: LedgerClock.nowNanoseconds())
    }

    /// Pending transfers whose timeout passed are released even when nobody calls.
    public var services: [any Service] { [LedgerSweeper(store: store, logger: logger)] }

    /// Read-only views: GET /ledger/workspaces/{workspace}/balance and .../transfers.
    public func addRoutes(to router: HostRouter) {
        let store = self.store
        router.get("/ledger/workspaces/:workspace/balance") { _, context -> Response in
            guard let workspace = context.parameters.get("workspace") else { return JSONResponse.error(HostError(.badRequest, "workspace missing")) }
            let balance = try await store.balance(workspace: workspace)
            return JSONResponse.make(.ok, ["workspace": balance.workspace, "balance_micros": balance.balanceMicros,
                                           "pending_micros": balance.pendingMicros, "free_minutes_remaining": balance.freeMinutesRemaining])
        }
        router.get("/ledger/workspaces/:workspace/transfers") { _, context -> Response in
            guard let workspace = context.parameters.get("workspace") else { return JSONResponse.error(HostError(.badRequest, "workspace missing")) }
            let transfers = try await store.transfers(workspace: workspace, limit: HostLimits.listMaxRows)
            let encoder = JSONEncoder()
            encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
            return JSONResponse.raw(.ok, String(decoding: try encoder.encode(transfers.map(LedgerCommand.TransferView.init)), as: UTF8.self))
        }
    }
}

/// Releases expired pending transfers every second until graceful shutdown.
struct LedgerSweeper: Service {
    let store: LedgerStore
    let logger: Logger

    func run() async throws {
        await cancelWhenGracefulShutdown {
            while !Task.isCancelled {
                do {
                    let expired = try await store.expirePending(now: LedgerClock.nowNanoseconds())
                    if !expired.isEmpty { logger.info("pending transfers expired", metadata: ["count": .stringConvertible(expired.count)]) }
                } catch {
                    logger.error("ledger sweep failed", metadata: ["error": .string("\(error)")])
                }
                try? await Task.sleep(nanoseconds: 1_000_000_000)
            }
        }
    }
}

/// Wall-clock nanoseconds for ledger timestamps (the ledger keeps them strictly increasing).
public enum LedgerClock {
    public static func nowNanoseconds() -> UInt64 { UInt64(Date().timeIntervalSince1970 * 1_000_000_000) }
}

/// `tenki ledger accounts | balance | transfers`.
struct LedgerCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "ledger", abstract: "Read the ledger: accounts, a workspace's balance, its transfers.",
        subcommands: [Accounts.self, Balance.self, Transfers.self, LedgerBenchCommand.self])

    static func store(_ options: HostOptions) async throws -> (TenkiHost, LedgerStore) {
        let host = try await options.openHost()
        return (host, LedgerStore(database: host.database))
    }

    static func print<T: Encodable>(json value: T) throws {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys, .prettyPrinted, .withoutEscapingSlashes]
        Swift.print(String(decoding: try encoder.encode(value), as: UTF8.self))
    }

    struct AccountView: Encodable {
        let id, ledger, code, flags: String
        let debitsPending, debitsPosted, creditsPending, creditsPosted: UInt64
        let timestamp: UInt64
        init(_ a: Account) {
            id = a.id.description; ledger = String(a.ledger); code = String(a.code); flags = String(a.flags.rawValue)
            debitsPending = a.debitsPending; debitsPosted = a.debitsPosted; creditsPending = a.creditsPending
            creditsPosted = a.creditsPosted; timestamp = a.timestamp
        }
        enum CodingKeys: String, CodingKey {
            case id, ledger, code, flags, timestamp, debitsPending = "debits_pending", debitsPosted = "debits_posted"
            case creditsPending = "credits_pending", creditsPosted = "credits_posted"
        }
    }

    struct TransferView: Encodable {
        let id, debitAccountID, creditAccountID, pendingID: String
        let amount: UInt64
        let ledger: UInt32
        let code: UInt16
        let flags: UInt16
        let timestamp: UInt64
        init(_ t: Transfer) {
            id = t.id.description; debitAccountID = t.debitAccountID.description; creditAccountID = t.creditAccountID.description
            pendingID = t.pendingID.description; amount = t.amount; ledger = t.ledger; code = t.code; flags = t.flags.rawValue
            timestamp = t.timestamp
        }
        enum CodingKeys: String, CodingKey {
            case id, amount, ledger, code, flags, timestamp, debitAccountID = "debit_account_id", creditAccountID = "credit_account_id"
            case pendingID = "pending_id"
        }
    }

    struct Accounts: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "List accounts by ledger and code.")
        @OptionGroup var options: HostOptions
        @Flag(help: "Print JSON.") var json = false

        func run() async throws {
            try await runReportingErrors {
                let (host, store) = try await LedgerCommand.store(options)
                let accounts = try await store.allAccounts()
                if json {
                    try LedgerCommand.print(json: accounts.map(AccountView.init))
                } else {
                    for a in accounts {
                        Swift.print("\(a.id)  ledger \(a.ledger)  code \(a.code)  debits \(a.debitsPosted) (+\(a.debitsPending) pending)  credits \(a.creditsPosted) (+\(a.creditsPending) pending)")
                    }
                }
                await host.database.close()
            }
        }
    }

    struct Balance: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "A workspace's money balance and free minutes.")
        @OptionGroup var options: HostOptions
        @Option(help: "Workspace id or slug.") var workspace: String
        @Flag(help: "Print JSON.") var json = false

        func run() async throws {
            try await runReportingErrors {
                let (host, store) = try await LedgerCommand.store(options)
                let balance = try await store.balance(workspace: workspace)
                if json {
                    try LedgerCommand.print(json: balance)
                } else {
                    Swift.print("\(workspace): balance \(MoneyText.usd(balance.balanceMicros)) (pending \(MoneyText.usd(balance.pendingMicros))), \(balance.freeMinutesRemaining) free minutes")
                }
                await host.database.close()
            }
        }
    }

    struct Transfers: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "A workspace's transfers, oldest first.")
        @OptionGroup var options: HostOptions
        @Option(help: "Workspace id or slug.") var workspace: String
        @Option(help: "At most this many.") var limit = 1_000
        @Flag(help: "Print JSON.") var json = false

        func run() async throws {
            try await runReportingErrors {
                let (host, store) = try await LedgerCommand.store(options)
                let transfers = try await store.transfers(workspace: workspace, limit: min(limit, HostLimits.listMaxRows))
                if json {
                    try LedgerCommand.print(json: transfers.map(TransferView.init))
                } else {
                    for t in transfers {
                        Swift.print("\(t.timestamp)  \(t.id)  code \(t.code)  \(t.amount)  \(t.debitAccountID) → \(t.creditAccountID)")
                    }
                }
                await host.database.close()
            }
        }
    }
}
