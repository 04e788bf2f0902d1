import ArgumentParser
import Foundation
import Host
import Hummingbird

/// Promotional credits over HTTP:
/// - `POST /billing/workspaces/{w}/credits` `{"amount": "25.00", "reason"}` (and an optional
///   `credit_id`, the idempotency key; a new one otherwise) grants; `initiated_by` is the
///   request's API key's name (a body's `initiated_by` is taken only without a key);
/// - `POST …/credits/revoke` with the same body revokes;
/// - `GET …/credits` lists them with what is available.
///
/// A grant or revocation answers 200 once applied, 422 `exceeds_available` when refused, and 202
/// `queued` when the server's workflow worker has not applied it within the wait.
struct PromoCreditRoutes {
    let desk: PromoCreditDesk
    let workspaces: WorkspaceDirectory

    /// The largest body taken.
    static let bodyMaxBytes = 16 << 10

    /// The body of a grant or revocation.
    struct Body: Decodable {
        let amount: String?
        let amountMicros: Int64?
        let reason: String?
        let initiatedBy: String?
        let creditID: String?

        enum CodingKeys: String, CodingKey {
            case amount, amountMicros = "amount_micros", reason, initiatedBy = "initiated_by", creditID = "credit_id"
        }
    }

    func add(to routes: HostRoutes) {
        let desk = self.desk
        let workspaces = self.workspaces
        let group = routes.group("/billing/workspaces/:workspace/credits")
        group.get("", .area(.credits, workspace: .path("workspace"))) { _, context -> Response in
            let workspace = try await BillingRoutes.workspace(context, workspaces)
            return JSONResponse.raw(.ok, try JSONCoding.text(try await desk.list(workspace: workspace), pretty: false))
        }
        for (path, signal) in [("", BillingCredits.Signal.add), ("revoke", .deduct)] {
            group.post(RouterPath(path), .area(.credits, workspace: .path("workspace"))) { request, context -> Response in
                let workspace = try await BillingRoutes.workspace(context, workspaces)
                let body = try await PromoCreditRoutes.body(request)
                let credit = BillingCredits.Request(
                    creditID: body.creditID ?? PromoCreditRoutes.newCreditID(), amountMicros: body.amountMicros, amount: body.amount,
                    reason: body.reason ?? "", initiatedBy: RequestIdentity.key?.name ?? body.initiatedBy ?? "")
                return try PromoCreditRoutes.response(try await desk.submit(signal, workspace: workspace, credit))
            }
        }
    }

    static func body(_ request: Request) async throws -> Body {
        var request = request
        let buffer = try await request.collectBody(atMost: bodyMaxBytes)
        do { return try JSONDecoder().decode(Body.self, from: Data(buffer.readableBytesView)) } catch {
            throw HostError(.badRequest, "the body must be {\"amount\": \"25.00\", \"reason\": \"...\", \"initiated_by\": \"...\"}")
        }
    }

    static func response(_ outcome: PromoCreditDesk.Outcome) throws -> Response {
        switch outcome {
        case .applied(let entry, let available):
            return JSONResponse.raw(.ok, try JSONCoding.text(Applied(entry: entry, availableMicros: available), pretty: false))
        case .refused(let action):
            throw HostError(.rejected, action.detail ?? "refused", reason: "exceeds_available")
        case .queued(let id):
            return JSONResponse.raw(.accepted, "{\"credit_id\":\(JSONScanner.quote(id)),\"status\":\"queued\"}")
        }
    }

    /// A credit id: `promo_` and a random UUID.
    static func newCreditID() -> String { "promo_" + UUID().uuidString.lowercased() }

    /// An applied credit as the routes and `--json` print it.
    struct Applied: Encodable {
        let entry: PromoCredits.Entry
        let availableMicros: Int64

        enum CodingKeys: String, CodingKey { case status, credit, availableMicros = "available_micros", available }

        func encode(to encoder: any Encoder) throws {
            var container = encoder.container(keyedBy: CodingKeys.self)
            try container.encode("applied", forKey: .status)
            try container.encode(entry, forKey: .credit)
            try container.encode(availableMicros, forKey: .availableMicros)
            try container.encode(ExactMoney.decimal(availableMicros), forKey: .available)
        }
    }
}

/// `tenki credits add | revoke | list`. Add and revoke signal the workspace's credits workflow
/// and, unless `workflow_worker = false`, work it in this process until it has applied or
/// refused the credit (safe next to a running server: runs are leased). If a server holds the
/// run and has not applied it within the wait, the command says it is queued and exits 75.
struct CreditsCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "credits", abstract: "Promotional credits: grant or revoke money credit (with a reason and who), list them.",
        subcommands: [Add.self, Revoke.self, List.self])

    struct CreditOptions: ParsableArguments {
        @Option(help: "Workspace id or slug.") var workspace: String
        @Option(help: "Dollars, exact, at most 8 decimals (e.g. 25.00).") var amount: String
        @Option(help: "Why (kept with the credit).") var reason: String
        @Option(name: .customLong("by"), help: "Who asks for it (email).") var initiatedBy: String
        @Option(help: "Idempotency key (default: a new one); submitting it again changes nothing.") var creditID: String?
        @Flag(help: "Print JSON.") var json = false
    }

    static func submit(_ signal: BillingCredits.Signal, _ options: HostOptions, _ credit: CreditOptions) async throws {
        let (host, billing) = try await BillingCommands.open(options)
        let workspace = try await BillingCommands.workspace(host, credit.workspace)
        let request = BillingCredits.Request(
            creditID: credit.creditID ?? PromoCreditRoutes.newCreditID(), amount: credit.amount, reason: credit.reason,
            initiatedBy: credit.initiatedBy)
        let outcome = try await billing.credits.submit(signal, workspace: workspace, request)
        await host.database.close()
        switch outcome {
        case .applied(let entry, let available):
            if credit.json { return print(try JSONCoding.text(PromoCreditRoutes.Applied(entry: entry, availableMicros: available))) }
            let verb = signal == .add ? "granted" : "revoked"
            print("\(verb) \(ExactMoney.decimal(entry.amountMicros)) USD, workspace \(workspace), credit \(entry.id)")
            print("available \(ExactMoney.decimal(available)) USD")
        case .refused(let action):
            throw HostError(.rejected, "refused: \(action.detail ?? "")", reason: "exceeds_available")
        case .queued(let id):
            let workflow = BillingCredits.workflowID(workspace: workspace)
            throw HostError(.notFinished, "credit \(id) is queued: the server's workflow worker applies it (workflow \(workflow))")
        }
    }

    struct Add: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Grant promotional credit (3003): used before the card is charged.")
        @OptionGroup var options: HostOptions
        @OptionGroup var credit: CreditOptions

        func run() async throws { try await CreditsCommand.submit(.add, options, credit) }
    }

    struct Revoke: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Revoke promotional credit (3004); never more than is available.")
        @OptionGroup var options: HostOptions
        @OptionGroup var credit: CreditOptions

        func run() async throws { try await CreditsCommand.submit(.deduct, options, credit) }
    }

    struct List: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "A workspace's grants and revocations, newest first, and what is available.")
        @OptionGroup var options: HostOptions
        @Option(help: "Workspace id or slug.") var workspace: String
        @Flag(help: "Print JSON.") var json = false

        func run() async throws {
            let (host, billing) = try await BillingCommands.open(options)
            let listing = try await billing.credits.list(workspace: try await BillingCommands.workspace(host, workspace))
            await host.database.close()
            if json { return print(try JSONCoding.text(listing)) }
            print("available \(listing.available) USD")
            for c in listing.credits {
                let kind = c.kind.padding(toLength: 6, withPad: " ", startingAt: 0)
                print("\(c.createdAt)  \(kind)  \(c.amount) USD  \(c.initiatedBy)  \(c.reason)  \(c.id)")
            }
        }
    }
}
