import CLua
import CLuaShim

/// A field name that Swift pushes on every evaluation. Each state interns it once and keeps it
/// in its registry, so a push is an array read instead of hashing and looking up the string
/// again (which was a tenth of a price evaluation). Declare keys as `static let`s: each
/// `LuaKey(...)` takes a new process-wide slot.
package struct LuaKey: Sendable, CustomStringConvertible {
    package let name: String
    let slot: Int32

    package init(_ name: String) {
        self.name = name
        self.slot = tenki_lua_new_key_slot()
    }

    package var description: String { name }

    /// Pushes the key string onto `L`'s stack.
    @inline(__always)
    func push(_ L: OpaquePointer) {
        if tenki_lua_push_cached_key(L, slot) != 0 { return }
        var name = name
        name.withUTF8 { $0.withMemoryRebound(to: CChar.self) { tenki_lua_push_key(L, slot, $0.baseAddress, $0.count) } }
    }
}
