import Foundation
import SQL

/// One Prometheus metric family: a name, its help and type, and its samples. Plugins return
/// these from `Plugin.metrics()`; `GET /metrics` renders all of them in the text exposition
/// format (version 0.0.4), computed from the database at scrape time so every replica answers
/// the same.
package struct MetricFamily: Sendable, Equatable {
    package enum Kind: String, Sendable { case gauge, counter, summary }

    package struct Sample: Sendable, Equatable {
        /// Appended to the family name (`_count`, `_sum`), or empty.
        package var suffix: String
        package var labels: [(String, String)]
        package var value: Double

        package init(suffix: String = "", labels: [(String, String)] = [], value: Double) {
            self.suffix = suffix
            self.labels = labels
            self.value = value
        }

        package static func == (a: Sample, b: Sample) -> Bool {
            a.suffix == b.suffix && a.value == b.value && a.labels.map(\.0) == b.labels.map(\.0) && a.labels.map(\.1) == b.labels.map(\.1)
        }
    }

    package var name: String
    package var help: String
    package var kind: Kind
    package var samples: [Sample]

    package init(name: String, help: String, kind: Kind, samples: [Sample]) {
        precondition(MetricFamily.isValidName(name), "metric name \(name)")
        self.name = name
        self.help = help
        self.kind = kind
        self.samples = samples
    }

    static func isValidName(_ name: String) -> Bool {
        guard let first = name.unicodeScalars.first, first == "_" || first == ":" || (first.isASCII && first.properties.isAlphabetic) else {
            return false
        }
        return name.unicodeScalars.allSatisfy { $0 == "_" || $0 == ":" || ($0.isASCII && ($0.properties.isAlphabetic || ("0"..."9").contains($0))) }
    }

    /// The family in the text exposition format.
    package var text: String {
        var out = "# HELP \(name) \(MetricFamily.escapeHelp(help))\n# TYPE \(name) \(kind.rawValue)\n"
        for sample in samples {
            out += name + sample.suffix
            if !sample.labels.isEmpty {
                out += "{" + sample.labels.map { "\($0.0)=\"\(MetricFamily.escapeLabel($0.1))\"" }.joined(separator: ",") + "}"
            }
            out += " " + MetricFamily.format(sample.value) + "\n"
        }
        return out
    }

    static func escapeHelp(_ text: String) -> String {
        text.replacingOccurrences(of: "\\", with: "\\\\").replacingOccurrences(of: "\n", with: "\\n")
    }

    /// Label values escape backslash, double quote and line feed (the format's only escapes).
    static func escapeLabel(_ text: String) -> String {
        var out = ""
        for scalar in text.unicodeScalars {
            switch scalar {
            case "\\": out += "\\\\"
            case "\"": out += "\\\""
            case "\n": out += "\\n"
            default: out.unicodeScalars.append(scalar)
            }
        }
        return out
    }

    static func format(_ value: Double) -> String {
        if value.isNaN { return "NaN" }
        if value.isInfinite { return value > 0 ? "+Inf" : "-Inf" }
        if value == value.rounded(), abs(value) < 1e15 { return String(Int64(value)) }
        return String(value)
    }
}

/// The kernel's own families: the durable inbox's backlog (both read through its partial index).
enum KernelMetrics {
    static func families(_ database: any Database) async throws -> [MetricFamily] {
        let row = try await database.query("SELECT COUNT(*) AS n, MIN(created_at_ms) AS oldest FROM event_inbox WHERE status = 'pending'").first
        let pending = try row?.int("n") ?? 0
        let oldest = try row?.optionalInt("oldest")
        let age = oldest.map { max(0, Double(Int64(Date().timeIntervalSince1970 * 1000) - $0) / 1000) } ?? 0
        return [
            MetricFamily(
                name: "tenki_inbox_pending_events", help: "Events stored and not yet handled by every subscriber.", kind: .gauge,
                samples: [.init(value: Double(pending))]),
            MetricFamily(
                name: "tenki_inbox_oldest_pending_age_seconds", help: "Age of the oldest unhandled event (0 when none).",
                kind: .gauge, samples: [.init(value: age)]),
        ]
    }
}
