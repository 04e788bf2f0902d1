import Hummingbird

/// Browsers on the origins in `cors_allowed_origins` may call the API (off when empty; `*`
/// allows any). A preflight (`OPTIONS` with `Access-Control-Request-Method`) from an allowed
/// origin is answered here, before routing's 404 and without a key; other answers to an allowed
/// origin carry `Access-Control-Allow-Origin`. A request from any other origin is served as if
/// CORS did not exist (the browser then refuses to hand its answer to the page).
struct HostCORSMiddleware: RouterMiddleware {
    typealias Context = HostRequestContext
    let origins: Set<String>

    static let methods = "GET, POST, PUT, PATCH, DELETE"
    static let headers = "Authorization, Content-Type"
    /// How long a browser may cache a preflight's answer.
    static let maxAgeSeconds = "600"

    func allowed(_ origin: String) -> String? {
        if origins.contains("*") { return "*" }
        return origins.contains(origin) ? origin : nil
    }

    func handle(_ request: Request, context: Context, next: (Request, Context) async throws -> Response) async throws -> Response {
        guard let origin = request.headers[.origin], let allow = allowed(origin) else { return try await next(request, context) }
        if request.method == .options, request.headers[.accessControlRequestMethod] != nil {
            return Response(
                status: .noContent,
                headers: [
                    .accessControlAllowOrigin: allow, .accessControlAllowMethods: Self.methods, .accessControlAllowHeaders: Self.headers,
                    .accessControlMaxAge: Self.maxAgeSeconds, .vary: "Origin",
                ])
        }
        // Outside HostErrorMiddleware: every error is an answer by now.
        var response = try await next(request, context)
        response.headers[.accessControlAllowOrigin] = allow
        response.headers[.vary] = "Origin"
        return response
    }
}
