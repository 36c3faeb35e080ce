import Foundation
import JSON
import RuleEngine

/// The proxy's counters, connection states and meters seen; the status
/// document is made from them. Written by the pipeline, both network
/// threads and the publisher; read by the status timer. One lock.
final class ProxyStatistics: @unchecked Sendable {
    /// Reasons the proxy itself adds to the engine's `DropReason`s.
    static let tooLarge = "too_large"
    static let outboxOverflow = "outbox_overflow"
    static let publishFailed = "publish_failed"
    static let dropReasons = DropReason.allCases.map(\.rawValue) + [tooLarge, outboxOverflow, publishFailed]

    private let lock = NSLock()
    // Guarded by `lock`.
    private var received = 0
    private var forwarded = 0
    private var announced = 0
    private var dropped: [String: Int] = [:]
    private var lastSeen: [String: Instant] = [:]
    private var internalConnected = false
    private var centralConnected = false

    func countReceived() { locked { received += 1 } }

    func countDrop(_ reason: String, _ n: Int = 1) { locked { dropped[reason, default: 0] += n } }

    /// A message the central broker acknowledged.
    func countAcknowledged(_ kind: Outgoing.Kind) {
        locked {
            if kind == .data { forwarded += 1 } else { announced += 1 }
        }
    }

    func seen(_ id: String, at now: Instant) { locked { lastSeen[id] = now } }

    func setConnected(internal value: Bool) { locked { internalConnected = value } }
    func setConnected(central value: Bool) { locked { centralConnected = value } }

    var forwardedCount: Int { locked { forwarded } }
    var receivedCount: Int { locked { received } }

    /// The status document: `{"state", "version", "started", "connections",
    /// "counters": {"received", "forwarded", "announced", "dropped": {reason: n}},
    /// "outbox", "meters": {id: last seen}}`. Every drop reason is listed, zero or not,
    /// so a dashboard sees the full set.
    func document(state: String, version: String, started: Instant, now: Instant, outbox: Int) -> JSONValue {
        locked {
            var drops = JSONObject()
            for reason in Self.dropReasons { drops[reason] = .integer(Int64(dropped[reason] ?? 0)) }
            var meters = JSONObject()
            for id in lastSeen.keys.sorted() { meters[id] = .string(lastSeen[id]!.iso8601) }
            return [
                "state": .string(state),
                "version": .string(version),
                "started": .string(started.iso8601),
                "time": .string(now.iso8601),
                "connections": [
                    "internal": .string(internalConnected ? "connected" : "disconnected"),
                    "central": .string(centralConnected ? "connected" : "disconnected"),
                ],
                "counters": [
                    "received": .integer(Int64(received)),
                    "forwarded": .integer(Int64(forwarded)),
                    "announced": .integer(Int64(announced)),
                    "dropped": .object(drops),
                ],
                "outbox": .integer(Int64(outbox)),
                "meters": .object(meters),
            ]
        }
    }

    private func locked<T>(_ body: () -> T) -> T {
        lock.lock()
        defer { lock.unlock() }
        return body()
    }
}
