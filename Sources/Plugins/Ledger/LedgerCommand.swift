import ArgumentParser
import Foundation
import Host

/// `tenki ledger accounts | balance | transfers | history | create-transfers | bench`.
struct LedgerCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "ledger",
        abstract: "Read the ledger: accounts, a workspace's balance (now or as of a moment), its transfers and balance history.",
        subcommands: [Accounts.self, Balance.self, Transfers.self, History.self, CreateTransfersCommand.self, LedgerBenchCommand.self])

    static func store(_ options: HostOptions) async throws -> (TenkiHost, LedgerStore) {
        let host = try await options.openHost()
        return (host, try host.require(LedgerPlugin.self).store)
    }

    /// Runs `body` with the store and closes the database after, also when it throws.
    static func withStore<T>(_ options: HostOptions, _ body: (LedgerStore) async throws -> T) async throws -> T {
        try await withStore(options, workspace: nil) { store, _ in try await body(store) }
    }

    /// Opens the store and resolves `workspace` (an id or a slug) to the workspace's id.
    static func withStore<T>(_ options: HostOptions, workspace: String?, _ body: (LedgerStore, String) async throws -> T) async throws -> T {
        let (host, store) = try await LedgerCommand.store(options)
        do {
            var id = ""
            if let workspace { id = try await host.workspaces.resolve(workspace) }
            let value = try await body(store, id)
            await host.database.close()
            return value
        } catch {
            await host.database.close()
            throw error
        }
    }

    static func print<T: Encodable>(json value: T) throws {
        Swift.print(try JSONCoding.text(value, pretty: true))
    }

    struct AccountView: Encodable {
        let id, ledger, code, flags: String
        let debitsPending, debitsPosted, creditsPending, creditsPosted: UInt64
        let timestamp: UInt64
        init(_ a: Account) {
            id = a.id.description
            ledger = String(a.ledger)
            code = String(a.code)
            flags = String(a.flags.rawValue)
            debitsPending = a.debitsPending
            debitsPosted = a.debitsPosted
            creditsPending = a.creditsPending
            creditsPosted = a.creditsPosted
            timestamp = a.timestamp
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
            id = t.id.description
            debitAccountID = t.debitAccountID.description
            creditAccountID = t.creditAccountID.description
            pendingID = t.pendingID.description
            amount = t.amount
            ledger = t.ledger
            code = t.code
            flags = t.flags.rawValue
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
            let (host, store) = try await LedgerCommand.store(options)
            let accounts = try await store.allAccounts()
            if json {
                try LedgerCommand.print(json: accounts.map(AccountView.init))
            } else {
                for a in accounts {
                    Swift.print(
                        "\(a.id)  ledger \(a.ledger)  code \(a.code)  debits \(a.debitsPosted) (+\(a.debitsPending) pending)  credits "
                            + "\(a.creditsPosted) (+\(a.creditsPending) pending)"
                    )
                }
            }
            await host.database.close()
        }
    }

    struct Balance: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "A workspace's money balance and free minutes, now or as of a moment.")
        @OptionGroup var options: HostOptions
        @Option(help: "Workspace id or slug.") var workspace: String
        @Option(name: .customLong("as-of"), help: "The balances at this moment: nanoseconds since 1970 or ISO 8601.") var asOf: String?
        @Flag(help: "Print JSON.") var json = false

        func run() async throws {
            let at = try asOf.map { try LedgerTime.parse($0, name: "--as-of") }
            let balance = try await LedgerCommand.withStore(options, workspace: workspace) {
                try await LedgerCommand.balance($0, workspace: $1, asOf: at)
            }
            if json {
                try LedgerCommand.print(json: balance)
            } else {
                let when = at.map { " as of \($0)" } ?? ""
                Swift.print(
                    "\(workspace)\(when): balance \(MoneyText.usd(balance.balanceMicros)) (pending \(MoneyText.usd(balance.pendingMicros))), "
                        + "\(balance.freeMinutesRemaining) free minutes"
                )
            }
        }
    }

    /// The balance now or as of a moment; a moment before the workspace's history began is not found.
    static func balance(_ store: LedgerStore, workspace: String, asOf: UInt64?) async throws -> WorkspaceBalance {
        guard let asOf else { return try await store.balance(workspace: workspace) }
        guard let balance = try await store.balance(workspace: workspace, asOf: asOf) else {
            throw HostError(.notFound, "workspace \(workspace) has no balance history as far back as \(asOf)")
        }
        return balance
    }

    /// `--since --until --code --limit --after --reversed --debits --credits`.
    struct QueryOptions: ParsableArguments {
        @Option(help: "From this moment (inclusive): nanoseconds since 1970 or ISO 8601.") var since: String?
        @Option(help: "Up to this moment (inclusive).") var until: String?
        @Option(help: "Only this transfer code.") var code: String?
        @Option(help: "At most this many (1 to 8189; default 1000).") var limit: String?
        @Option(help: "The next page: the timestamp of the previous page's last row.") var after: String?
        @Flag(help: "Newest first.") var reversed = false
        @Flag(help: "Only where the account is debited.") var debits = false
        @Flag(help: "Only where the account is credited.") var credits = false

        func filter() throws -> TransferFilter {
            try LedgerQueryParameters(
                since: since, until: until, code: code, limit: limit, after: after, reversed: reversed,
                debits: debits, credits: credits
            ).filter()
        }
    }

    /// Says how to ask for the next page when this one is full.
    static func printNextPage(count: Int, limit: Int, last: UInt64?) {
        if count == limit, let last { FileHandle.standardError.write(Data("more: --after \(last)\n".utf8)) }
    }

    struct Transfers: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "A workspace's transfers, oldest first, by time range and code, page by page.")
        @OptionGroup var options: HostOptions
        @Option(help: "Workspace id or slug.") var workspace: String
        @OptionGroup var query: QueryOptions
        @Flag(help: "Print JSON.") var json = false

        func run() async throws {
            let filter = try query.filter()
            let transfers = try await LedgerCommand.withStore(options, workspace: workspace) { try await $0.transfers(workspace: $1, filter: filter) }
            if json {
                try LedgerCommand.print(json: transfers.map(TransferView.init))
            } else {
                for t in transfers {
                    Swift.print("\(t.timestamp)  \(t.id)  code \(t.code)  \(t.amount)  \(t.debitAccountID) → \(t.creditAccountID)")
                }
            }
            LedgerCommand.printNextPage(count: transfers.count, limit: filter.limit, last: transfers.last?.timestamp)
        }
    }

    struct BalanceView: Encodable {
        let accountID, transferID: String
        let debitsPending, debitsPosted, creditsPending, creditsPosted, timestamp: UInt64
        let code: UInt16
        let debited: Bool
        init(_ b: AccountBalance) {
            accountID = b.accountID.description
            transferID = b.transferID.description
            debitsPending = b.debitsPending
            debitsPosted = b.debitsPosted
            creditsPending = b.creditsPending
            creditsPosted = b.creditsPosted
            timestamp = b.timestamp
            code = b.code
            debited = b.debited
        }
        enum CodingKeys: String, CodingKey {
            case code, debited, timestamp, accountID = "account_id", transferID = "transfer_id", debitsPending = "debits_pending"
            case debitsPosted = "debits_posted", creditsPending = "credits_pending", creditsPosted = "credits_posted"
        }
    }

    struct History: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "A workspace's balance history: its accounts' balances after each transfer.")
        @OptionGroup var options: HostOptions
        @Option(help: "Workspace id or slug.") var workspace: String
        @OptionGroup var query: QueryOptions
        @Flag(help: "Print JSON.") var json = false

        func run() async throws {
            let filter = try query.filter()
            let rows = try await LedgerCommand.withStore(options, workspace: workspace) { try await $0.balanceHistory(workspace: $1, filter: filter) }
            if json {
                try LedgerCommand.print(json: rows.map(BalanceView.init))
            } else {
                for b in rows {
                    Swift.print(
                        "\(b.timestamp)  \(b.accountID)  code \(b.code)  debits \(b.debitsPosted) (+\(b.debitsPending) pending)  credits "
                            + "\(b.creditsPosted) (+\(b.creditsPending) pending)"
                    )
                }
            }
            LedgerCommand.printNextPage(count: rows.count, limit: filter.limit, last: rows.last?.timestamp)
        }
    }
}
