import JSON

/// One meter's configuration as config-sender sees it, on the meter's own
/// retained topic beside its `problem` (`<root>/<id>/configuration`):
/// `{"last_result":"success","acknowledged_date":"2026-01-12","digest":"…",
/// "last_error":"…","commands":{"set_clock":"success",…}}`. Published when
/// it changes; cleared (an empty retained payload) when the meter is
/// forgotten. The status document holds only totals; this is the detail.
public struct MeterConfigurationState: Sendable, Equatable {
    /// `pending`, `success`, `failure`, `timeout` or `none` (`ConfigPlanner.lastResult`).
    public var lastResult: String
    public var acknowledgedDate: String?
    public var digest: String?
    public var lastError: String?
    /// Command name → its last outcome, sorted by name.
    public var commands: [(name: String, outcome: String)]

    public init(lastResult: String, acknowledgedDate: String? = nil, digest: String? = nil, lastError: String? = nil,
                commands: [(name: String, outcome: String)] = []) {
        self.lastResult = lastResult
        self.acknowledgedDate = acknowledgedDate
        self.digest = digest
        self.lastError = lastError
        self.commands = commands
    }

    public static func == (a: Self, b: Self) -> Bool {
        a.lastResult == b.lastResult && a.acknowledgedDate == b.acknowledgedDate && a.digest == b.digest
            && a.lastError == b.lastError && a.commands.elementsEqual(b.commands) { $0.name == $1.name && $0.outcome == $1.outcome }
    }

    /// The meter's topic: `<root>/<id>/configuration`.
    public static func topic(root: String, id: String) -> String { "\(root)/\(id)/configuration" }

    public var payload: [UInt8] {
        var doc = JSONObject()
        doc["last_result"] = .string(lastResult)
        if let acknowledgedDate { doc["acknowledged_date"] = .string(acknowledgedDate) }
        if let digest { doc["digest"] = .string(digest) }
        if let lastError { doc["last_error"] = .string(lastError) }
        doc["commands"] = .object(JSONObject(commands.map { ($0.name, JSONValue.string($0.outcome)) }))
        return JSONValue.object(doc).serialized()
    }

    /// A payload as published; nil when it is not one (an empty payload: the meter was forgotten).
    public init?(payload: [UInt8]) {
        guard let doc = (try? JSONValue.parse(payload))?.objectValue, let result = doc["last_result"]?.stringValue else { return nil }
        lastResult = result
        acknowledgedDate = doc["acknowledged_date"]?.stringValue
        digest = doc["digest"]?.stringValue
        lastError = doc["last_error"]?.stringValue
        commands = (doc["commands"]?.objectValue ?? [:]).compactMap { key, value in value.stringValue.map { (key, $0) } }
    }
}
