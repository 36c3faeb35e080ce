/// One thing worth a log line, produced by the pure parts of the config sender.
///
/// The service renders each as exactly one line; the planner never writes
/// anything itself, which keeps it testable.
public struct ConfigEvent: Sendable, Equatable, CustomStringConvertible {
    public enum Level: Int, Sendable, Comparable, CaseIterable {
        case debug, info, warning, error
        /// A condition an operator must act on (a meter that never answers). Rendered `ALERT`.
        case alert

        public var name: String {
            switch self {
            case .debug: "debug"
            case .info: "info"
            case .warning: "warning"
            case .error: "error"
            case .alert: "ALERT"
            }
        }

        public init?(name: String) {
            guard let level = Level.allCases.first(where: { $0.name.lowercased() == name.lowercased() }) else { return nil }
            self = level
        }

        public static func < (a: Level, b: Level) -> Bool { a.rawValue < b.rawValue }
    }

    public struct Field: Sendable, Equatable {
        public var key: String
        public var value: String
        public init(_ key: String, _ value: String) {
            self.key = key
            self.value = value
        }
    }

    public var level: Level
    /// A stable snake_case name (`command_sent`, `reply_failure`, …).
    public var name: String
    public var fields: [Field]

    public init(_ level: Level, _ name: String, _ fields: [(String, String?)] = []) {
        self.level = level
        self.name = name
        self.fields = fields.compactMap { key, value in value.map { Field(key, $0) } }
    }

    public subscript(key: String) -> String? { fields.first { $0.key == key }?.value }

    /// `event=NAME key=value …`, values quoted as every log line quotes them
    /// (`Log.quoted`: spaces, `=`, quotes and control characters).
    public var description: String {
        var out = "event=\(name)"
        for field in fields { out += " \(field.key)=\(Log.quoted(field.value))" }
        return out
    }
}
