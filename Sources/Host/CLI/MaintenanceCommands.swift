import ArgumentParser
import CCurl
import CLibPQ
import CLua
import CSQLite
import Foundation

/// The version of this build.
package enum TenkiVersion {
    package static let current = "0.1.0"
}

/// `tenki migrate`: applies pending migrations and says which.
package struct MigrateCommand: AsyncParsableCommand {
    package static let configuration = CommandConfiguration(commandName: "migrate", abstract: "Apply pending database migrations.")

    @OptionGroup package var options: HostOptions

    package init() {}

    package func run() async throws {
        let configuration = try options.configuration()
        let database = try DatabaseOpener.open(configuration)
        let applied = try await TenkiHost.migrate(database, plugins: PluginCatalog.plugins)
        for (owner, versions) in applied {
            print(versions.isEmpty ? "\(owner): up to date" : "\(owner): applied \(versions.map(String.init).joined(separator: ", "))")
        }
        await database.close()
    }
}

/// `tenki version`: this build and the C libraries it runs on.
package struct VersionCommand: ParsableCommand {
    package static let configuration = CommandConfiguration(commandName: "version", abstract: "Print versions.")

    @Flag(help: "Print JSON.") package var json = false

    package init() {}

    package func run() throws {
        let versions: [(String, String)] = [
            ("tenki", TenkiVersion.current),
            ("lua", "\(LUA_VERSION_MAJOR).\(LUA_VERSION_MINOR).\(LUA_VERSION_RELEASE)"),
            ("sqlite", String(cString: sqlite3_libversion())),
            ("libpq", String(PQlibVersion())),
            ("libcurl", String(cString: curl_version())),
        ]
        if json {
            let object = Dictionary(uniqueKeysWithValues: versions)
            let data = try JSONSerialization.data(withJSONObject: object, options: [.sortedKeys])
            print(String(decoding: data, as: UTF8.self))
        } else {
            for (name, version) in versions { print("\(name) \(version)") }
        }
    }
}
