import JSON
import RuleEngine

/// What ownership (`ProxyOwnership`) needs of another instance's status
/// document: whether it is online and, on that instance's clock, when it
/// wrote the status, when it started, and when it last heard each meter
/// (seconds since 1970; compared with each other only, so the machines'
/// clocks may differ).
struct PeerStatus: Equatable {
    var online: Bool
    var time: Int64
    var started: Int64
    var lastSeen: [String: Int64]
}

extension PeerStatus {
    /// Parses a status document (`state`, `time`, `started`, `meters`: id →
    /// last heard, ISO 8601 UTC), keeping at most `maxMeters` meters; nil
    /// when it is not a JSON object.
    init?(document: [UInt8], maxMeters: Int) {
        guard let status = (try? JSONValue.parse(document))?.objectValue else { return nil }
        func seconds(_ value: JSONValue?) -> Int64? {
            guard let text = value?.stringValue, text.count == 20, text.hasSuffix("Z") else { return nil }
            let bytes = text.utf8.dropLast().map { $0 == UInt8(ascii: "T") ? UInt8(ascii: " ") : $0 }
            return bytes.withUnsafeBytes { Self.isoFormat.parse($0) }
        }
        var lastSeen: [String: Int64] = [:]
        for (id, value) in status["meters"]?.objectValue ?? [:] where lastSeen.count < maxMeters { lastSeen[id] = seconds(value) }
        let time = seconds(status["time"]) ?? 0
        self.init(online: status["state"]?.stringValue == "online", time: time,
                  started: seconds(status["started"]) ?? time, lastSeen: lastSeen)
    }

    private static let isoFormat = ClockFormat("yyyy-MM-dd HH:mm:ss")!
}
