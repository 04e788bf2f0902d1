import ArgumentParser
import Foundation

/// `tenki keys`: API keys, straight on the database (the break-glass path when no key works).
package struct KeysCommand: AsyncParsableCommand {
    package static let configuration = CommandConfiguration(
        commandName: "keys", abstract: "Create, list and revoke API keys.", subcommands: [Create.self, List.self, Revoke.self])

    package init() {}

    /// `tenki keys create --role R [--workspace W] [--expires 90d] [--name N]`: prints the key once.
    package struct Create: AsyncParsableCommand {
        package static let configuration = CommandConfiguration(
            commandName: "create", abstract: "Make a key; its secret is printed once and stored only as a hash.")
        @OptionGroup var options: HostOptions
        @Option(help: "ops, sales, finance or member.") var role: String
        @Option(help: "The workspace (id or slug) a member key is bound to.") var workspace: String?
        @Option(help: "Lifetime: e.g. 90d, 12h or 30m. Default: no expiry.") var expires: String?
        @Option(help: "What the key is for; finance actions record it as initiated_by.") var name: String?
        @Flag(help: "Print JSON.") var json = false

        package init() {}

        package func run() async throws {
            guard let role = APIRole(rawValue: role) else {
                throw HostError(.badRequest, "--role is one of \(APIRole.allCases.map(\.rawValue).joined(separator: ", "))")
            }
            let now = Timestamp.ms(Date())
            let lifetime = try expires.map(KeysCommand.milliseconds)
            let host = try await options.openHost()
            var workspaceID: String?
            if let workspace {
                guard let id = try await host.workspaces.lookup(workspace) else { throw HostError(.notFound, "no workspace '\(workspace)'") }
                workspaceID = id
            }
            let made = try await host.apiKeys.create(
                name: name ?? "\(role.rawValue)-key", role: role, workspaceID: workspaceID, expiresAt: lifetime.map { now + $0 }, nowMs: now)
            if json {
                print(String(decoding: try JSONSerialization.data(withJSONObject: try made.shown(), options: [.sortedKeys]), as: UTF8.self))
            } else {
                print(made.token)
                FileHandle.standardError.write(Data("key \(made.key.id) (\(role.rawValue)) made; the line above is shown this once\n".utf8))
            }
        }
    }

    /// `tenki keys list [--workspace W] [--json]`: never a secret.
    package struct List: AsyncParsableCommand {
        package static let configuration = CommandConfiguration(commandName: "list", abstract: "List keys (never their secrets).")
        @OptionGroup var options: HostOptions
        @Option(help: "Only this workspace's keys (id or slug).") var workspace: String?
        @Flag(help: "Print JSON.") var json = false

        package init() {}

        package func run() async throws {
            let host = try await options.openHost()
            var workspaceID: String?
            if let workspace { workspaceID = try await host.workspaces.resolve(workspace) }
            let keys = try await host.apiKeys.list(workspaceID: workspaceID)
            if json { return print(try JSONCoding.text(keys)) }
            let now = Timestamp.ms(Date())
            for key in keys {
                let state = key.revokedAt != nil ? "revoked" : key.isLive(at: now) ? "live" : "expired"
                print([key.id, key.role.rawValue, key.workspaceID ?? "-", state, key.name].joined(separator: "  "))
            }
        }
    }

    /// `tenki keys revoke ID`: the key stops working at once.
    package struct Revoke: AsyncParsableCommand {
        package static let configuration = CommandConfiguration(commandName: "revoke", abstract: "Revoke a key by its id.")
        @OptionGroup var options: HostOptions
        @Argument(help: "The key's id (the part after tk_, before the second _).") var id: String

        package init() {}

        package func run() async throws {
            let host = try await options.openHost()
            guard let key = try await host.apiKeys.revoke(id: id, nowMs: Timestamp.ms(Date())) else {
                throw HostError(.notFound, "no key '\(id)'")
            }
            print("revoked \(key.id) (\(key.role.rawValue), \(key.name))")
        }
    }

    /// A lifetime (`90d`, `12h`, `30m`, as workflow durations are written) in milliseconds.
    static func milliseconds(_ text: String) throws -> Int64 {
        guard let duration = WorkflowDurations.parse(text), WorkflowDurations.milliseconds(duration) > 0 else {
            throw HostError(.badRequest, "--expires is a positive duration such as 90d, 12h or 30m, not '\(text)'")
        }
        return WorkflowDurations.milliseconds(duration)
    }
}
