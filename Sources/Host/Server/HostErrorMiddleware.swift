import Hummingbird
import Logging

/// The one place a route's error becomes its answer: `HostError(error)` decides the status and
/// the body `{"error": reason, "message": message}`, for every route and for no route at all
/// (404). What a client is not told (a 500's or a 503's cause) is logged.
struct HostErrorMiddleware: RouterMiddleware {
    typealias Context = HostRequestContext
    let logger: Logger

    func handle(_ request: Request, context: Context, next: (Request, Context) async throws -> Response) async throws -> Response {
        do {
            return try await next(request, context)
        } catch {
            let answer = HostError(error)
            if answer.status.code >= 500 {
                logger.error(
                    "request failed",
                    metadata: [
                        "method": .string(request.method.rawValue), "path": .string(request.uri.path), "error": .string("\(error)"),
                    ])
            }
            return answer.response
        }
    }
}
