import ArgumentParser
import Foundation
import Host
import Hummingbird
import Logging
import Lua
import SQL
import ServiceLifecycle

/// The double-entry ledger (TigerBeetle semantics) on SQLite or PostgreSQL: its rules
/// (`LedgerState`), storage (`LedgerStore`), the chart of accounts of docs/PRODUCT.md §11
/// (created on first start) and `tenki ledger accounts | balance | transfers`.
package struct LedgerPlugin: Plugin {
    package static let name = "ledger"
    package static var migrations: [Migration] { LedgerStore.migrations }
    package static var commands: [any ParsableCommand.Type] { [LedgerCommand.self] }

    package let store: LedgerStore
    let logger: Logger
    let workspaces: WorkspaceDirectory

    package init(context: HostContext) async throws {
        store = LedgerStore(database: context.database)
        workspaces = context.workspaces
        logger = context.logger
        try await store.ensureChart(now: LedgerClock.nowNanoseconds())
    }

    /// `ledger.balance(workspace)` for scripts: `{ balance_micros, pending_micros,
    /// free_minutes_remaining }`. Policies do not get it: their decisions read only their input,
    /// so a replayed event is decided as it was.
    package var luaFunctions: [LuaHostFunction] {
        let store = self.store
        return [
            LuaHostFunction.waiting(module: "ledger", name: "balance") { arguments in
                guard arguments.count == 1, let workspace = arguments[0].stringValue, !workspace.isEmpty else {
                    throw LuaError(kind: .runtime, message: "ledger.balance(workspace) expects a workspace id")
                }
                let balance = try await store.balance(workspace: workspace)
                return [
                    .table(
                        LuaTable(fields: [
                            "balance_micros": .integer(balance.balanceMicros), "pending_micros": .integer(balance.pendingMicros),
                            "free_minutes_remaining": .integer(balance.freeMinutesRemaining),
                        ]))
                ]
            }
        ]
    }

    /// Pending transfers whose timeout passed are released even when nobody calls.
    package var services: [any Service] { [LedgerSweeper(store: store, logger: logger)] }

    /// Read-only views of a workspace: GET /ledger/workspaces/{workspace}/balance[?as_of=T],
    /// .../transfers and .../history with `since`, `until`, `code`, `limit`, `after`, `reversed`,
    /// `debits`, `credits`. A full page carries `Tenki-Next-After`: pass it as `after` for the next.
    package func addRoutes(to routes: HostRoutes) {
        let store = self.store
        let workspaces = self.workspaces
        routes.get("/ledger/workspaces/:workspace/balance", .area(.ledger, workspace: .path("workspace"))) { request, context -> Response in
            let workspace = try await LedgerRoutes.workspace(context, workspaces)
            let asOf = try request.uri.queryParameters.get("as_of").map { try LedgerTime.parse($0, name: "as_of") }
            return JSONResponse.raw(.ok, try JSONCoding.text(try await LedgerCommand.balance(store, workspace: workspace, asOf: asOf)))
        }
        routes.get("/ledger/workspaces/:workspace/transfers", .area(.ledger, workspace: .path("workspace"))) { request, context -> Response in
            let workspace = try await LedgerRoutes.workspace(context, workspaces)
            let filter = try LedgerRoutes.filter(request)
            let transfers = try await store.transfers(workspace: workspace, filter: filter)
            return try LedgerRoutes.page(transfers.map(LedgerCommand.TransferView.init), filter: filter, last: transfers.last?.timestamp)
        }
        routes.get("/ledger/workspaces/:workspace/history", .area(.ledger, workspace: .path("workspace"))) { request, context -> Response in
            let workspace = try await LedgerRoutes.workspace(context, workspaces)
            let filter = try LedgerRoutes.filter(request)
            let rows = try await store.balanceHistory(workspace: workspace, filter: filter)
            return try LedgerRoutes.page(rows.map(LedgerCommand.BalanceView.init), filter: filter, last: rows.last?.timestamp)
        }
    }
}

/// Shared parts of the ledger's HTTP reads.
enum LedgerRoutes {
    /// The path's workspace (an id or a slug) as its id.
    static func workspace(_ context: HostRequestContext, _ workspaces: WorkspaceDirectory) async throws -> String {
        guard let workspace = context.parameters.get("workspace") else { throw HostError(.badRequest, "workspace missing") }
        return try await workspaces.resolve(workspace)
    }

    static func filter(_ request: Request) throws -> TransferFilter {
        let q = request.uri.queryParameters
        return try LedgerQueryParameters(
            since: q.get("since"), until: q.get("until"), code: q.get("code"), limit: q.get("limit"),
            after: q.get("after"), reversed: LedgerQueryParameters.flag(q.get("reversed")),
            debits: LedgerQueryParameters.flag(q.get("debits")),
            credits: LedgerQueryParameters.flag(q.get("credits"))
        ).filter()
    }

    static func page<T: Encodable>(_ rows: [T], filter: TransferFilter, last: UInt64?) throws -> Response {
        var response = JSONResponse.raw(.ok, try JSONCoding.text(rows))
        if rows.count == filter.limit, let last, let name = HTTPFields.Element.Name("Tenki-Next-After") {
            response.headers[name] = String(last)
        }
        return response
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
                try? await Task.sleep(nanoseconds: LedgerLimits.expirySweepIntervalNanoseconds)
            }
        }
    }
}

/// Wall-clock nanoseconds for ledger timestamps (the ledger keeps them strictly increasing).
package enum LedgerClock {
    package static func nowNanoseconds() -> UInt64 { UInt64(Date().timeIntervalSince1970 * 1_000_000_000) }
}
