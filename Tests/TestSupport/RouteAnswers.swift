import Foundation
import Hummingbird
import HummingbirdTesting
import Testing

/// What route tests read off an in-process answer (HummingbirdTesting's `.router` mode).
package enum RouteAnswers {
    /// The body as text.
    package static func text(_ response: TestResponse) -> String {
        String(buffer: response.body)
    }

    /// The body as a JSON value (object or array), or nil.
    package static func json(_ response: TestResponse) -> Any? {
        try? JSONSerialization.jsonObject(with: Data(response.body.readableBytesView))
    }

    /// Expects `status` and the host's one error shape, `{"error": reason, "message": text}`
    /// and nothing else; returns the message.
    @discardableResult
    package static func expectError(
        _ response: TestResponse, _ status: HTTPResponse.Status, _ reason: String,
        sourceLocation: SourceLocation = #_sourceLocation
    ) -> String {
        #expect(response.status == status, "\(text(response))", sourceLocation: sourceLocation)
        #expect(response.headers[.contentType] == "application/json", sourceLocation: sourceLocation)
        let object = json(response) as? [String: Any]
        #expect(object.map { Set($0.keys) } == ["error", "message"], "\(text(response))", sourceLocation: sourceLocation)
        #expect(object?["error"] as? String == reason, "\(text(response))", sourceLocation: sourceLocation)
        return object?["message"] as? String ?? ""
    }
}
