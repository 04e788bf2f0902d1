import Foundation
import HTTPClient
import Logging
import Lua

/// The host's own functions for Lua scripts: `log.info|warning|error` and `http.request`. Scripts are replayed from
/// the top for each durable call, so call both inside `workflow.step` to do them once.
package enum ScriptFunctions {
    static func logFunction(_ name: String, _ level: Logger.Level, _ logger: Logger) -> LuaHostFunction {
        LuaHostFunction(module: "log", name: name, readOnly: false) { arguments in
            guard let message = arguments.first?.stringValue else {
                throw LuaError(kind: .runtime, message: "log.\(name)(message[, fields]) expects a string")
            }
            var metadata: Logger.Metadata = ["source": "script"]
            if arguments.count > 1, case .table(let fields) = arguments[1] {
                for (key, value) in fields.fieldPairs { if let key = key.stringValue { metadata[key] = "\(LuaJSON.text(value))" } }
            }
            logger.log(level: level, "\(message)", metadata: metadata)
            return []
        }
    }

    package static func all(configuration: HostConfiguration, http: HTTPClient, logger: Logger) -> [LuaHostFunction] {
        let allowed = Set(configuration.scriptHTTPAllowedHosts.map { $0.lowercased() })
        return [
            // log.info / log.warning / log.error(message[, fields]): a line in the server's log.
            logFunction("info", .info, logger), logFunction("warning", .warning, logger), logFunction("error", .error, logger),
            // http.request{method=, url=, headers={...}, body=, timeout=} -> {status, headers, body}, only to
            // hosts listed in `script_http_allowed_hosts`, over libcurl.
            LuaHostFunction.waiting(module: "http", name: "request") { arguments in
                guard case .table = arguments.first else {
                    throw LuaError(kind: .runtime, message: "http.request{method=, url=, headers=, body=} expects a table")
                }
                let options = arguments[0]
                guard let url = options["url"].stringValue, let parts = URLComponents(string: url),
                    let scheme = parts.scheme?.lowercased(), scheme == "http" || scheme == "https", let host = parts.host?.lowercased()
                else {
                    throw LuaError(kind: .runtime, message: "http.request: url must be an http or https URL")
                }
                guard allowed.contains(host) else {
                    throw LuaError(kind: .runtime, message: "http.request: host '\(host)' is not in script_http_allowed_hosts")
                }
                var headers: [(name: String, value: String)] = []
                if case .table(let table) = options["headers"] {
                    for (key, value) in table.fieldPairs {
                        // By scalar: "\r\n" is one Character in Swift, equal to neither "\r" nor "\n".
                        func breaks(_ s: String) -> Bool { s.unicodeScalars.contains { $0 == "\r" || $0 == "\n" || $0 == "\0" } }
                        guard let name = key.stringValue, let text = value.stringValue, !name.isEmpty, !breaks(name), !breaks(text) else {
                            throw LuaError(kind: .runtime, message: "http.request: headers must be strings without line breaks")
                        }
                        headers.append((name: name, value: text))
                    }
                }
                let body = options["body"].stringValue.map { Array($0.utf8) }
                let timeout = Int(options["timeout"].integerValue ?? Int64(HostLimits.scriptHTTPDefaultTimeoutSeconds)) * 1_000
                let response = try await http.send(
                    OutboundRequest(
                        method: (options["method"].stringValue ?? "GET").uppercased(), url: url,
                        headers: headers, body: body,
                        timeoutMilliseconds: max(
                            HostLimits.scriptHTTPMinTimeoutMilliseconds,
                            min(timeout, HostLimits.scriptHTTPMaxTimeoutMilliseconds))))
                var responseHeaders: [LuaValue: LuaValue] = [:]
                for (name, value) in response.headers { responseHeaders[.string(name.lowercased())] = .string(value) }
                return [
                    .table(
                        LuaTable(fields: [
                            "status": .integer(Int64(response.status)), "headers": .table(LuaTable(fields: responseHeaders)),
                            "body": .string(String(decoding: response.body, as: UTF8.self)),
                        ]))
                ]
            },
        ]
    }
}
