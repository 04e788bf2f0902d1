import Hummingbird

extension Request {
    /// The whole body, at most `limit` bytes: a larger one, declared or streamed, is a 413
    /// naming the limit, before more than `limit` bytes are read.
    package mutating func collectBody(atMost limit: Int) async throws -> ByteBuffer {
        let tooLarge = HostError(.payloadTooLarge, "body exceeds \(limit) bytes")
        if let length = headers[.contentLength].flatMap({ Int($0) }), length > limit { throw tooLarge }
        do {
            return try await collectBody(upTo: limit)
        } catch is any HTTPResponseError {
            throw tooLarge
        }
    }
}
