import BlockingPool
import CCurl
import CCurlShim
import Foundation

/// An outbound HTTP request.
package struct OutboundRequest: Sendable {
    package var method: String
    package var url: String
    package var headers: [(name: String, value: String)]
    package var body: [UInt8]?
    /// Whole-request timeout.
    package var timeoutMilliseconds: Int
    package var connectTimeoutMilliseconds: Int
    /// A PEM bundle of trusted CAs; nil uses the system's.
    package var caBundlePath: String?
    /// Turning this off is for tests against self-signed peers only.
    package var verifyTLS: Bool

    package init(
        method: String = "GET", url: String, headers: [(name: String, value: String)] = [], body: [UInt8]? = nil,
        timeoutMilliseconds: Int = HTTPClientLimits.defaultTimeoutMilliseconds,
        connectTimeoutMilliseconds: Int = HTTPClientLimits.defaultConnectTimeoutMilliseconds,
        caBundlePath: String? = nil, verifyTLS: Bool = true
    ) {
        self.method = method
        self.url = url
        self.headers = headers
        self.body = body
        self.timeoutMilliseconds = timeoutMilliseconds
        self.connectTimeoutMilliseconds = connectTimeoutMilliseconds
        self.caBundlePath = caBundlePath
        self.verifyTLS = verifyTLS
    }
}

/// A response: status, headers in arrival order, and the body.
package struct OutboundResponse: Sendable {
    package let status: Int
    package let headers: [(name: String, value: String)]
    package let body: [UInt8]

    /// The first header with this name, compared case-insensitively.
    package func header(_ name: String) -> String? {
        headers.first { $0.name.caseInsensitiveCompare(name) == .orderedSame }?.value
    }

    package var bodyText: String { String(decoding: body, as: UTF8.self) }
}

/// A failed exchange (no HTTP status to report), classified.
package struct HTTPClientError: Error, CustomStringConvertible, Sendable {
    package enum Kind: String, Sendable {
        case invalidRequest, connection, timeout, tls, responseTooLarge, other
    }
    package let kind: Kind
    package let message: String
    package let url: String

    package var description: String { "\(kind.rawValue): \(message) (\(url))" }
}

/// An HTTP/1.1 and HTTPS client over libcurl. Each request runs `curl_easy_perform` on a
/// thread of the client's own pool, never on an event loop or the cooperative pool, so any number of tasks can
/// await requests concurrently; at most `maxConcurrentRequests` are in flight at once.
/// Unchecked Sendable: `idleHandles` is touched only under `idleLock`, and a curl handle is used by
/// one request at a time on a pool thread.
package final class HTTPClient: @unchecked Sendable {
    /// Largest response body accepted before the transfer is aborted.
    package let maxResponseBytes: Int
    package let userAgent: String
    private let pool: BlockingThreadPool
    /// Idle easy handles, kept (reset) between requests so their connection caches stay warm:
    /// a later request to the same host reuses the open connection (HTTP keep-alive).
    private var idleHandles: [UnsafeMutableRawPointer] = []
    private let idleLock = NSLock()
    private let maxIdleHandles: Int

    private static let globalInit: Void = { curl_global_init(Int(CURL_GLOBAL_ALL)) }()

    package init(maxConcurrentRequests: Int = 32, maxResponseBytes: Int = 32 << 20, userAgent: String = "tenki-host") {
        _ = HTTPClient.globalInit
        self.maxResponseBytes = maxResponseBytes
        self.userAgent = userAgent
        self.pool = BlockingThreadPool(name: "tenki-http", maxThreads: maxConcurrentRequests)
        self.maxIdleHandles = maxConcurrentRequests
    }

    deinit {
        for handle in idleHandles { curl_easy_cleanup(handle) }
    }

    private func takeHandle() -> UnsafeMutableRawPointer? {
        if let handle = idleLock.withLock({ idleHandles.popLast() }) { return handle }
        return curl_easy_init()
    }

    /// Resets a used handle (options and callbacks cleared; connections, DNS and TLS sessions
    /// kept) and keeps it for the next request.
    private func returnHandle(_ handle: UnsafeMutableRawPointer) {
        curl_easy_reset(handle)
        let kept = idleLock.withLock { () -> Bool in
            guard idleHandles.count < maxIdleHandles else { return false }
            idleHandles.append(handle)
            return true
        }
        if !kept { curl_easy_cleanup(handle) }
    }

    package func send(_ request: OutboundRequest) async throws -> OutboundResponse {
        try await pool.run { try self.perform(request) }
    }

    package func get(_ url: String, headers: [(name: String, value: String)] = []) async throws -> OutboundResponse {
        try await send(OutboundRequest(url: url, headers: headers))
    }

    package func post(_ url: String, headers: [(name: String, value: String)] = [], body: [UInt8]) async throws -> OutboundResponse {
        try await send(OutboundRequest(method: "POST", url: url, headers: headers, body: body))
    }

    private func perform(_ request: OutboundRequest) throws -> OutboundResponse {
        guard let handle = takeHandle() else {
            throw HTTPClientError(kind: .other, message: "curl_easy_init failed", url: request.url)
        }
        defer { returnHandle(handle) }
        let transfer = CurlTransfer(limit: maxResponseBytes)
        let context = Unmanaged.passUnretained(transfer).toOpaque()
        var headerList: UnsafeMutablePointer<curl_slist>?
        defer { curl_slist_free_all(headerList) }

        func set(_ option: CURLoption, _ value: Int) throws {
            let rc = tenki_curl_setopt_long(handle, option, value)
            if rc != CURLE_OK { throw error(rc, request) }
        }
        func set(_ option: CURLoption, _ value: String) throws {
            let rc = tenki_curl_setopt_string(handle, option, value)  // libcurl copies strings
            if rc != CURLE_OK { throw error(rc, request) }
        }

        try set(CURLOPT_URL, request.url)
        try set(CURLOPT_PROTOCOLS_STR, "http,https")
        try set(CURLOPT_NOSIGNAL, 1)
        try set(CURLOPT_TIMEOUT_MS, request.timeoutMilliseconds)
        try set(CURLOPT_CONNECTTIMEOUT_MS, request.connectTimeoutMilliseconds)
        try set(CURLOPT_USERAGENT, userAgent)
        try set(CURLOPT_SSL_VERIFYPEER, request.verifyTLS ? 1 : 0)
        try set(CURLOPT_SSL_VERIFYHOST, request.verifyTLS ? 2 : 0)
        if let ca = request.caBundlePath { try set(CURLOPT_CAINFO, ca) }
        let method = request.method.uppercased()
        if method == "HEAD" {
            try set(CURLOPT_NOBODY, 1)
        } else if method != "GET" || request.body != nil {
            try set(CURLOPT_CUSTOMREQUEST, method)
        }
        for header in request.headers {
            headerList = curl_slist_append(headerList, "\(header.name): \(header.value)")
        }
        headerList = curl_slist_append(headerList, "Expect:")
        _ = tenki_curl_setopt_pointer(handle, CURLOPT_HTTPHEADER, headerList)
        _ = tenki_curl_setopt_write_callback(handle, CURLOPT_WRITEFUNCTION, curlWriteBody)
        _ = tenki_curl_setopt_pointer(handle, CURLOPT_WRITEDATA, context)
        _ = tenki_curl_setopt_write_callback(handle, CURLOPT_HEADERFUNCTION, curlWriteHeader)
        _ = tenki_curl_setopt_pointer(handle, CURLOPT_HEADERDATA, context)

        let body = request.body ?? []
        let rc: CURLcode = body.withUnsafeBytes { raw in
            if request.body != nil {
                _ = tenki_curl_setopt_off_t(handle, CURLOPT_POSTFIELDSIZE_LARGE, curl_off_t(raw.count))
                _ = tenki_curl_setopt_pointer(
                    handle, CURLOPT_POSTFIELDS,
                    UnsafeMutableRawPointer(mutating: raw.baseAddress ?? UnsafeRawPointer(bitPattern: 1)!))
            }
            return curl_easy_perform(handle)
        }
        if transfer.overLimit {
            throw HTTPClientError(kind: .responseTooLarge, message: "response body exceeds \(maxResponseBytes) bytes", url: request.url)
        }
        guard rc == CURLE_OK else { throw error(rc, request) }
        var status = 0
        _ = tenki_curl_getinfo_long(handle, CURLINFO_RESPONSE_CODE, &status)
        return OutboundResponse(status: status, headers: transfer.headers, body: transfer.body)
    }

    private func error(_ rc: CURLcode, _ request: OutboundRequest) -> HTTPClientError {
        let message = String(cString: curl_easy_strerror(rc))
        let kind: HTTPClientError.Kind
        switch rc {
        case CURLE_OPERATION_TIMEDOUT: kind = .timeout
        case CURLE_COULDNT_CONNECT, CURLE_COULDNT_RESOLVE_HOST, CURLE_COULDNT_RESOLVE_PROXY, CURLE_GOT_NOTHING,
            CURLE_SEND_ERROR, CURLE_RECV_ERROR:
            kind = .connection
        case CURLE_SSL_CONNECT_ERROR, CURLE_PEER_FAILED_VERIFICATION, CURLE_SSL_CERTPROBLEM, CURLE_SSL_CIPHER,
            CURLE_SSL_CACERT_BADFILE:
            kind = .tls
        case CURLE_URL_MALFORMAT, CURLE_UNSUPPORTED_PROTOCOL, CURLE_BAD_FUNCTION_ARGUMENT: kind = .invalidRequest
        default: kind = .other
        }
        return HTTPClientError(kind: kind, message: message, url: request.url)
    }
}

/// What one transfer has received so far; libcurl's callbacks append to it.
private final class CurlTransfer {
    var body: [UInt8] = []
    var headers: [(name: String, value: String)] = []
    let limit: Int
    var overLimit = false
    init(limit: Int) { self.limit = limit }
}

private let curlWriteBody: tenki_curl_write_callback = { data, size, count, context in
    let transfer = Unmanaged<CurlTransfer>.fromOpaque(context!).takeUnretainedValue()
    let length = size * count
    guard transfer.body.count + length <= transfer.limit else {
        transfer.overLimit = true
        return 0  // makes libcurl abort the transfer
    }
    if let data, length > 0 {
        transfer.body.append(contentsOf: UnsafeRawBufferPointer(start: data, count: length))
    }
    return length
}

private let curlWriteHeader: tenki_curl_write_callback = { data, size, count, context in
    let transfer = Unmanaged<CurlTransfer>.fromOpaque(context!).takeUnretainedValue()
    let length = size * count
    guard let data else { return length }
    let line = String(decoding: UnsafeRawBufferPointer(start: data, count: length), as: UTF8.self)
        .trimmingCharacters(in: .whitespacesAndNewlines)
    if line.hasPrefix("HTTP/") {
        transfer.headers.removeAll()  // a new response (after 1xx or a redirect) starts over
    } else if let colon = line.firstIndex(of: ":") {
        let name = String(line[..<colon]).trimmingCharacters(in: .whitespaces)
        let value = String(line[line.index(after: colon)...]).trimmingCharacters(in: .whitespaces)
        transfer.headers.append((name: name, value: value))
    }
    return length
}

/// The client's defaults, with their units in their names.
package enum HTTPClientLimits {
    /// Whole-request timeout when a request names none.
    package static let defaultTimeoutMilliseconds = 30_000
    /// Connection timeout when a request names none.
    package static let defaultConnectTimeoutMilliseconds = 10_000
}
