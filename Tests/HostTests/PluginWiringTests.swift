import Foundation
import Host
import TestSupport
import Testing

/// A part one plugin builds and another uses.
private final class SharedPart: Sendable {}

private struct Provider: Plugin {
    static let name = "provider"
    let part = SharedPart()
    init(context: HostContext) async throws {}
}

private struct Consumer: Plugin {
    static let name = "consumer"
    static var dependencies: [any Plugin.Type] { [Provider.self] }
    let part: SharedPart
    init(context: HostContext) async throws {
        part = try context.plugins.require(Provider.self).part
    }
}

/// Asks for a plugin it did not declare.
private struct Undeclared: Plugin {
    static let name = "undeclared"
    init(context: HostContext) async throws {
        _ = try context.plugins.require(Provider.self)
    }
}

@Suite("Plugins wired explicitly: declared dependencies, one shared part, a typed lookup")
struct PluginWiringTests {
    @Test("a plugin is built after those it depends on and gets their parts, not copies")
    func sharedParts() async throws {
        let host = try await TestHosts.open(try TestDatabase.make(.sqlite), plugins: [Provider.self, Consumer.self])
        let provider = try #require(host.plugin(Provider.self))
        let consumer = try host.require(Consumer.self)
        #expect(consumer.part === provider.part)
        #expect(host.plugins.map { type(of: $0).name } == ["provider", "consumer"])
        await host.database.close()
    }

    @Test("a list that puts a plugin before its dependency, or twice, is refused by name")
    func orderChecked() async throws {
        #expect(throws: Never.self) { try PluginCatalog.checkOrder([Provider.self, Consumer.self]) }
        let reversed = #expect(throws: HostError.self) { try PluginCatalog.checkOrder([Consumer.self, Provider.self]) }
        #expect(reversed?.code == .badConfiguration)
        #expect(reversed?.message == "plugin consumer depends on provider, which must be listed before it")
        let twice = #expect(throws: HostError.self) { try PluginCatalog.checkOrder([Provider.self, Provider.self]) }
        #expect(twice?.message == "plugin provider is listed twice")
        // Opening a host checks the list before anything is built.
        await #expect(throws: HostError.self) {
            _ = try await TestHosts.open(try TestDatabase.make(.sqlite), plugins: [Consumer.self, Provider.self])
        }
    }

    @Test("a plugin asking for one it did not declare fails with a configuration error")
    func undeclared() async throws {
        let error = await #expect(throws: HostError.self) {
            _ = try await TestHosts.open(try TestDatabase.make(.sqlite), plugins: [Undeclared.self])
        }
        #expect(error?.code == .badConfiguration)
        #expect(error?.message.contains("provider plugin is not built yet") == true)
    }

    @Test("the typed lookup finds a built plugin and reports a missing one")
    func typedLookup() async throws {
        let host = try await TestHosts.open(try TestDatabase.make(.sqlite), plugins: [Provider.self])
        #expect(host.plugin(Provider.self) != nil)
        #expect(host.plugin(Consumer.self) == nil)
        #expect(throws: HostError.self) { try host.require(Consumer.self) }
        await host.database.close()
    }
}
