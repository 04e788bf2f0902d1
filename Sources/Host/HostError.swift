/// An operational error of the host, with one HTTP status and one CLI exit code.
public struct HostError: Error, CustomStringConvertible, Sendable {
    public enum Code: String, Sendable {
        case badConfiguration = "bad_configuration"
        case notFound = "not_found"
        case badRequest = "bad_request"
        case unauthorized
        case payloadTooLarge = "payload_too_large"
        case unavailable
        case `internal`
    }

    public let code: Code
    public let message: String

    public init(_ code: Code, _ message: String) {
        self.code = code
        self.message = message
    }

    public var description: String { message }

    /// The HTTP status this error answers with.
    public var httpStatus: Int {
        switch code {
        case .badConfiguration, .internal: return 500
        case .notFound: return 404
        case .badRequest: return 400
        case .unauthorized: return 401
        case .payloadTooLarge: return 413
        case .unavailable: return 503
        }
    }

    /// The process exit code a CLI command ends with.
    public var exitCode: Int32 {
        switch code {
        case .badRequest: return 64        // EX_USAGE
        case .notFound: return 66          // EX_NOINPUT
        case .unavailable: return 69       // EX_UNAVAILABLE
        case .badConfiguration: return 78  // EX_CONFIG
        case .unauthorized: return 77      // EX_NOPERM
        case .payloadTooLarge: return 65   // EX_DATAERR
        case .internal: return 70          // EX_SOFTWARE
        }
    }
}
