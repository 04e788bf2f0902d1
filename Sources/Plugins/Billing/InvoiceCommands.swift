import ArgumentParser
import Foundation
import Host
import Hummingbird
import SQL

/// The billing reads over HTTP:
/// - `GET /billing/workspaces/{w}/invoices` (newest first), `…/invoices/preview?period=2026-11`,
///   `…/invoices/{id or number}` (`?format=csv` for the lines as CSV), `…/invoices/{id}/history`;
/// - `POST /billing/workspaces/{w}/storage` `{"day", "billable_bytes", "cache_bytes"}` and
///   `GET …/storage`.
struct BillingRoutes {
    let invoices: InvoiceStore
    let policies: PolicyEngine
    let workspaces: WorkspaceDirectory

    func add(to routes: HostRoutes) {
        let invoices = self.invoices
        let policies = self.policies
        let workspaces = self.workspaces
        let group = routes.group("/billing/workspaces/:workspace")
        group.get("invoices", .area(.invoices, workspace: .path("workspace"))) { _, context -> Response in
            let workspace = try await BillingRoutes.workspace(context, workspaces)
            return JSONResponse.raw(.ok, try JSONCoding.text(try await invoices.invoices(workspace: workspace), pretty: false))
        }
        group.get("invoices/preview", .area(.invoices, workspace: .path("workspace"))) { request, context -> Response in
            let workspace = try await BillingRoutes.workspace(context, workspaces)
            let period =
                try request.uri.queryParameters.get("period").map { try BillingPeriod($0) }
                ?? BillingPeriod(containing: Int64(Date().timeIntervalSince1970))
            return JSONResponse.raw(
                .ok, try JSONCoding.text(try await invoices.preview(workspace: workspace, period: period, policies: policies), pretty: false))
        }
        group.get("invoices/:invoice", .area(.invoices, workspace: .path("workspace"))) { request, context -> Response in
            let invoice = try await BillingRoutes.invoice(context, workspaces, invoices)
            switch request.uri.queryParameters.get("format") ?? "json" {
            case "json": return JSONResponse.raw(.ok, try JSONCoding.text(invoice, pretty: false))
            case "csv":
                return Response(
                    status: .ok,
                    headers: [
                        .contentType: "text/csv; charset=utf-8",
                        .contentDisposition: "attachment; filename=\"\(invoice.number ?? invoice.id ?? "invoice").csv\"",
                    ],
                    body: .init(byteBuffer: ByteBuffer(string: invoice.csv)))
            case let other: throw HostError(.badRequest, "format must be json or csv, not '\(other)'")
            }
        }
        group.get("invoices/:invoice/history", .area(.invoices, workspace: .path("workspace"))) { _, context -> Response in
            let invoice = try await BillingRoutes.invoice(context, workspaces, invoices)
            return JSONResponse.raw(.ok, try JSONCoding.text(try await invoices.history(invoice: invoice.id ?? ""), pretty: false))
        }
        group.post("storage", .area(.invoices, workspace: .path("workspace"))) { request, context -> Response in
            let workspace = try await BillingRoutes.workspace(context, workspaces)
            var request = request
            let body = try await request.collectBody(atMost: 64 << 10)
            let report: StorageSnapshots.Report
            do { report = try JSONDecoder().decode(StorageSnapshots.Report.self, from: Data(body.readableBytesView)) } catch {
                throw HostError(.badRequest, "the body must be {\"day\": \"YYYY-MM-DD\", \"billable_bytes\": n, \"cache_bytes\": n}")
            }
            let snapshot = StorageSnapshots.Snapshot(
                workspaceID: workspace, day: report.day, billableBytes: report.billableBytes, cacheBytes: report.cacheBytes ?? 0)
            try await StorageSnapshots.record(invoices.database, snapshot, now: Timestamp.ms(Date()))
            return JSONResponse.raw(.ok, try JSONCoding.text(snapshot, pretty: false))
        }
        group.get("storage", .area(.invoices, workspace: .path("workspace"))) { _, context -> Response in
            let workspace = try await BillingRoutes.workspace(context, workspaces)
            return JSONResponse.raw(.ok, try JSONCoding.text(try await StorageSnapshots.list(invoices.database, workspace: workspace), pretty: false))
        }
    }

    /// The path's workspace as its id; an unknown one is 404.
    static func workspace(_ context: HostRequestContext, _ workspaces: WorkspaceDirectory) async throws -> String {
        guard let name = context.parameters.get("workspace") else { throw HostError(.badRequest, "workspace missing") }
        return try await BillingCommands.known(name, workspaces: workspaces)
    }

    /// The path's invoice, which must belong to the path's workspace (otherwise 404).
    static func invoice(_ context: HostRequestContext, _ workspaces: WorkspaceDirectory, _ invoices: InvoiceStore) async throws -> Invoice {
        let workspace = try await workspace(context, workspaces)
        let name = context.parameters.get("invoice") ?? ""
        guard let invoice = try await invoices.invoice(name), invoice.workspaceID == workspace else {
            throw HostError(.notFound, "no invoice '\(name)' in workspace \(workspace)")
        }
        return invoice
    }
}

enum BillingCommands {
    /// The id of the workspace `name` names (id or slug); an unknown workspace is 404.
    static func known(_ name: String, workspaces: WorkspaceDirectory) async throws -> String {
        guard let id = try await workspaces.lookup(name) else { throw HostError(.notFound, "no workspace '\(name)'") }
        return id
    }

    static func open(_ options: HostOptions) async throws -> (TenkiHost, BillingPlugin) {
        let host = try await options.openHost()
        return (host, try host.require(BillingPlugin.self))
    }

    static func workspace(_ host: TenkiHost, _ name: String) async throws -> String {
        try await known(name, workspaces: host.workspaces)
    }

    static func printText(_ invoice: Invoice) {
        print("\(invoice.number ?? invoice.id ?? "preview")  \(invoice.workspaceID)  \(invoice.period)  \(invoice.status.rawValue)")
        for line in invoice.lines {
            let amount = MoneyText.usd(line.amountMicros, decimals: 4)
            print(
                "  \(line.kind.rawValue.padding(toLength: 18, withPad: " ", startingAt: 0)) \(line.description)  \(line.quantity) × "
                    + "\(MoneyText.usd(line.unitPriceMicros, decimals: 4)) = \(amount)  [\(line.policyVersion)]")
        }
        print("  total \(MoneyText.usd(invoice.totalMicros))  due \(ExactMoney.twoDecimals(cents: invoice.amountDueCents)) USD")
    }
}

/// `tenki invoices list | show | preview`.
struct InvoicesCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "invoices", abstract: "Monthly invoices: their lines, totals and history; a preview of any month.",
        subcommands: [List.self, Show.self, Preview.self])

    struct List: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "A workspace's invoices, newest first.")
        @OptionGroup var options: HostOptions
        @Option(help: "Workspace id or slug.") var workspace: String
        @Flag(help: "Print JSON.") var json = false

        func run() async throws {
            let (host, billing) = try await BillingCommands.open(options)
            let list = try await billing.invoices.invoices(workspace: try await BillingCommands.workspace(host, workspace))
            if json { return print(try JSONCoding.text(list)) }
            for i in list {
                print("\(i.number ?? i.id ?? "-")  \(i.period)  \(i.status.rawValue)  \(ExactMoney.twoDecimals(cents: i.amountDueCents)) USD")
            }
        }
    }

    struct Show: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "One invoice: by id or number, or by workspace and period.")
        @OptionGroup var options: HostOptions
        @Argument(help: "Invoice id or number (or give --workspace and --period).") var invoice: String?
        @Option(help: "Workspace id or slug.") var workspace: String?
        @Option(help: "Billing period, YYYY-MM.") var period: String?
        @Flag(help: "Print JSON.") var json = false
        @Flag(help: "Print the lines as CSV.") var csv = false

        func run() async throws {
            let (host, billing) = try await BillingCommands.open(options)
            let found: Invoice?
            if let invoice {
                found = try await billing.invoices.invoice(invoice)
            } else if let workspace, let period {
                found = try await billing.invoices.invoice(
                    workspace: try await BillingCommands.workspace(host, workspace), period: try BillingPeriod(period))
            } else {
                throw HostError(.badRequest, "name an invoice, or give --workspace and --period")
            }
            guard let found else { throw HostError(.notFound, "no such invoice") }
            if csv { return print(found.csv, terminator: "") }
            if json { return print(try JSONCoding.text(found)) }
            BillingCommands.printText(found)
            for entry in try await billing.invoices.history(invoice: found.id ?? "") { print("  \(entry.at)  \(entry.event)  \(entry.detail)") }
        }
    }

    struct Preview: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "What a workspace's invoice for a period is (if issued) or would be now; the running month by default.")
        @OptionGroup var options: HostOptions
        @Option(help: "Workspace id or slug.") var workspace: String
        @Option(help: "Billing period, YYYY-MM (default: this month).") var period: String?
        @Flag(help: "Print JSON.") var json = false

        func run() async throws {
            let (host, billing) = try await BillingCommands.open(options)
            let p = try period.map { try BillingPeriod($0) } ?? BillingPeriod(containing: Int64(Date().timeIntervalSince1970))
            let invoice = try await billing.invoices.preview(
                workspace: try await BillingCommands.workspace(host, workspace), period: p, policies: host.policies)
            if json { return print(try JSONCoding.text(invoice)) }
            BillingCommands.printText(invoice)
        }
    }
}

/// `tenki storage record | list`.
struct StorageCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "storage", abstract: "Daily storage snapshots (billable bytes; the transparent cache apart, never billed).",
        subcommands: [Record.self, List.self])

    struct Record: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Record a day's snapshot (a second one for the same day replaces it).")
        @OptionGroup var options: HostOptions
        @Option(help: "Workspace id or slug.") var workspace: String
        @Option(help: "UTC day, YYYY-MM-DD.") var day: String
        @Option(help: "Billable bytes stored that day.") var billableBytes: Int64
        @Option(help: "Bytes in the transparent cache (not billed).") var cacheBytes: Int64 = 0

        func run() async throws {
            let (host, _) = try await BillingCommands.open(options)
            let id = try await BillingCommands.workspace(host, workspace)
            try await StorageSnapshots.record(
                host.database, .init(workspaceID: id, day: day, billableBytes: billableBytes, cacheBytes: cacheBytes),
                now: Timestamp.ms(Date()))
            print("recorded \(billableBytes) billable bytes for \(id) on \(day)")
        }
    }

    struct List: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "A workspace's snapshots.")
        @OptionGroup var options: HostOptions
        @Option(help: "Workspace id or slug.") var workspace: String
        @Flag(help: "Print JSON.") var json = false

        func run() async throws {
            let (host, _) = try await BillingCommands.open(options)
            let list = try await StorageSnapshots.list(host.database, workspace: try await BillingCommands.workspace(host, workspace))
            if json { return print(try JSONCoding.text(list)) }
            for s in list { print("\(s.day)  billable \(s.billableBytes)  cache \(s.cacheBytes)") }
        }
    }
}
