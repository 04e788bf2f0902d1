import ArgumentParser
import BillingPlugin
import GitHubPlugin
import Host
import LedgerPlugin
import RunnerPlugin
import WorkflowPlugin

/// `tenki`: the one executable. Plugins built into it are listed here.
@main
struct Tenki: AsyncParsableCommand {
    /// The construction order, declared here and only here: each plugin after those it depends
    /// on (checked by `PluginCatalog.checkOrder` when a host opens).
    static let plugins: [any Plugin.Type] = [GitHubPlugin.self, LedgerPlugin.self, WorkflowPlugin.self, RunnerPlugin.self, BillingPlugin.self]

    static let configuration = CommandConfiguration(
        commandName: "tenki",
        abstract: "Tenki Host: a GitHub Actions runner marketplace with Lua policies.",
        subcommands: [ServeCommand.self, MigrateCommand.self, KeysCommand.self, PolicyCommand.self, BenchCommand.self, VersionCommand.self]
            + plugins.flatMap { $0.commands })

    static func main() async {
        await PluginCatalog.$plugins.withValue(plugins) { await parseAndRun() }
    }

    /// Parses the command line and runs the command, with the plugin list bound.
    static func parseAndRun() async {
        do {
            var command = try parseAsRoot()
            if var asyncCommand = command as? any AsyncParsableCommand {
                try await asyncCommand.run()
            } else {
                try command.run()
            }
        } catch {
            exit(withError: CommandErrors.reported(error, by: Tenki.self))
        }
    }
}
