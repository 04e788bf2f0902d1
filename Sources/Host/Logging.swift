import Foundation
import Logging

/// Log lines on standard error: `text` (logfmt-like) or `json` (one object per line).
package struct HostLogHandler: LogHandler {
    package var logLevel: Logger.Level
    package var metadata: Logger.Metadata = [:]
    let label: String
    let json: Bool
    private static let lock = NSLock()

    package init(label: String, level: Logger.Level, json: Bool) {
        self.label = label
        self.logLevel = level
        self.json = json
    }

    package subscript(metadataKey key: String) -> Logger.Metadata.Value? {
        get { metadata[key] }
        set { metadata[key] = newValue }
    }

    package func log(event: LogEvent) {
        let level = event.level
        let message = event.message
        var all = metadata
        if let extra = event.metadata { all.merge(extra) { $1 } }
        if let error = event.error { all["error"] = .string("\(error)") }
        let time = Date().formatted(.iso8601.year().month().day().time(includingFractionalSeconds: true))
        var text: String
        if json {
            var object: [String: String] = ["time": time, "level": level.rawValue, "logger": label, "message": "\(message)"]
            for (key, value) in all { object[key] = "\(value)" }
            let data = (try? JSONSerialization.data(withJSONObject: object, options: [.sortedKeys])) ?? Data()
            text = String(decoding: data, as: UTF8.self)
        } else {
            text = "\(time) \(level.rawValue) \(label): \(message)"
            for (key, value) in all.sorted(by: { $0.key < $1.key }) { text += " \(key)=\(value)" }
        }
        text += "\n"
        HostLogHandler.lock.withLock { FileHandle.standardError.write(Data(text.utf8)) }
    }

    /// Installs the handler for the whole process (once).
    package static func bootstrap(_ configuration: HostConfiguration) {
        let level = configuration.logLevel
        let json = configuration.logFormat == "json"
        LoggingSystem.bootstrap { HostLogHandler(label: $0, level: level, json: json) }
    }
}
