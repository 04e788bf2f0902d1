import Foundation
import Hummingbird
import SQL

/// An operational error of the host. Its code decides, here and nowhere else, the HTTP status
/// a route answers with and the exit code a CLI command ends with (sysexits.h where one fits).
/// Like Hummingbird's `HTTPResponseError`, it knows its own response: one JSON shape,
/// `{"error": reason, "message": message}`.
package struct HostError: Error, CustomStringConvertible, Sendable {
    package enum Code: String, Sendable, CaseIterable {
        case badRequest = "bad_request"
        case unauthorized
        /// A valid key whose role or workspace does not allow the request.
        case forbidden
        case notFound = "not_found"
        /// A key over its request rate (429, with `Retry-After`).
        case tooManyRequests = "rate_limited"
        case payloadTooLarge = "payload_too_large"
        case headersTooLarge = "headers_too_large"
        /// Policies or scripts that do not load: what was handed in is not valid.
        case rejected
        /// What was asked about has not ended yet (e.g. a workflow's result).
        case notFinished = "not_finished"
        /// What was asked about ended in failure (e.g. a failed or cancelled workflow).
        case failed
        case unavailable
        case badConfiguration = "bad_configuration"
        case `internal`
    }

    package let code: Code
    package let message: String
    /// The body's `error`: the code's name, or a finer one where clients tell cases apart
    /// (`signature_mismatch`, `malformed_json`).
    package let reason: String
    /// Sent as `Retry-After` (seconds) with the answer.
    package var retryAfterSeconds: Int?

    package init(_ code: Code, _ message: String, reason: String? = nil) {
        self.code = code
        self.message = message
        self.reason = reason ?? code.rawValue
    }

    package var description: String { message }

    /// The HTTP status this error answers with.
    package var status: HTTPResponse.Status {
        switch code {
        case .badRequest: return .badRequest
        case .unauthorized: return .unauthorized
        case .forbidden: return .forbidden
        case .notFound: return .notFound
        case .tooManyRequests: return .tooManyRequests
        case .payloadTooLarge: return .contentTooLarge
        case .headersTooLarge: return .requestHeaderFieldsTooLarge
        case .rejected: return .unprocessableContent
        case .notFinished, .failed: return .conflict
        case .unavailable: return .serviceUnavailable
        case .badConfiguration, .internal: return .internalServerError
        }
    }

    /// The process exit code a CLI command ends with.
    package var exitCode: Int32 {
        switch code {
        case .badRequest: return 64  // EX_USAGE
        case .payloadTooLarge, .headersTooLarge, .rejected: return 65  // EX_DATAERR
        case .notFound: return 66  // EX_NOINPUT
        case .unavailable: return 69  // EX_UNAVAILABLE
        case .internal: return 70  // EX_SOFTWARE
        case .notFinished, .tooManyRequests: return 75  // EX_TEMPFAIL
        case .unauthorized, .forbidden: return 77  // EX_NOPERM
        case .badConfiguration: return 78  // EX_CONFIG
        case .failed: return 1
        }
    }
}

extension HostError {
    /// Any error as the host reports it: a host error as it is; Hummingbird's own (no route,
    /// a body over its limit) by their status; a database that cannot be reached, or stays
    /// busy, as unavailable; anything else as internal, its details left for the log.
    package init(_ error: any Error) {
        switch error {
        case let error as HostError:
            self = error
        case let error as any HTTPResponseError:
            self = HostError(status: error.status)
        case let error as SQLError where error.code == .connection || error.isRetryable:
            self = HostError(.unavailable, "database unavailable")
        default:
            self = HostError(.internal, "internal error")
        }
    }

    /// The code answering with `status` (400 for any other 4xx, 500 for any other 5xx).
    init(status: HTTPResponse.Status) {
        // Only codes that mean nothing more than their status: a bare 500 is internal (not a
        // configuration error), a bare 409 is not a workflow's state.
        let plain: [Code] = [.badRequest, .unauthorized, .notFound, .payloadTooLarge, .headersTooLarge, .unavailable, .internal]
        let code =
            plain.first { HostError($0, "").status == status }
            ?? (status.code < 500 ? .badRequest : .internal)
        let message = status == .contentTooLarge ? "the body is larger than this route takes" : status.reasonPhrase.lowercased()
        self.init(code, message)
    }
}

extension HostError: HTTPResponseError {
    package func response(from request: Request, context: some RequestContext) throws -> Response {
        response
    }

    /// The JSON answer: `{"error": reason, "message": message}` with the error's status.
    package var response: Response {
        struct Body: Encodable { let error, message: String }
        let data = (try? JSONCoding.encoder().encode(Body(error: reason, message: message))) ?? Data("{}".utf8)
        var headers: HTTPFields = [.contentType: "application/json"]
        if let retryAfterSeconds { headers[.retryAfter] = String(retryAfterSeconds) }
        return Response(status: status, headers: headers, body: .init(byteBuffer: ByteBuffer(bytes: data)))
    }
}
