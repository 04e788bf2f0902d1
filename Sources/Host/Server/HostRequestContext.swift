import Hummingbird
import NIOCore

/// Every route's request context: Hummingbird's core storage and the peer's address (the
/// access rules let a loopback scrape of `/metrics` in without a key).
package struct HostRequestContext: RequestContext, RemoteAddressRequestContext {
    package var coreContext: CoreRequestContextStorage
    package let remoteAddress: SocketAddress?

    package init(source: ApplicationRequestContextSource) {
        coreContext = .init(source: source)
        remoteAddress = source.channel.remoteAddress
    }

    /// Whether the peer is this machine (127.0.0.0/8 or ::1).
    package var isLoopback: Bool {
        guard let address = remoteAddress?.ipAddress else { return false }
        return address.hasPrefix("127.") || address == "::1" || address.hasPrefix("::ffff:127.")
    }
}
