import Foundation
import MQTT

/// Every simulated meter of a run on one `EventLoop`: starts them (all at
/// once, or `connectRate` per second), counts readings sent and acknowledged,
/// and stops the run — after letting the broker acknowledge what is in flight.
///
/// Loop thread only (signals arrive through `loop.execute`). `@unchecked
/// Sendable` so that the closures posted to the loop may capture it; its
/// clients and timers check in debug builds that they run there.
final class Fleet: @unchecked Sendable {
    let meters: [SimulatedMeter]
    let loop: EventLoop
    private let journal: EventLog
    private let count: Int?
    private let connectRate: Double
    private let startedAt: Double

    private(set) var readingsSent = 0
    private(set) var readingsAcknowledged = 0
    private(set) var connected = 0
    private(set) var stopReason: String?
    private var started = 0

    init(meters: [SimulatedMeter], loop: EventLoop, journal: EventLog, count: Int?, connectRate: Double, start: Double) {
        self.meters = meters
        self.loop = loop
        self.journal = journal
        self.count = count
        self.connectRate = connectRate
        self.startedAt = start
    }

    var neverConnected: Int { meters.count - connected }

    func start() throws {
        for meter in meters {
            meter.hooks = SimulatedMeter.Hooks(
                readingSent: { [unowned self] in
                    readingsSent += 1
                    if let count, readingsSent >= count { stop("count \(count) reached") }
                },
                readingAcknowledged: { [unowned self] in readingsAcknowledged += 1 },
                firstConnected: { [unowned self] in
                    connected += 1
                    if connected == meters.count {
                        let seconds = ProcessInfo.processInfo.systemUptime - startedAt
                        journal.record("all-connected", "\(meters.count) meters", String(format: "in %.2f s", seconds))
                    }
                })
        }
        if connectRate <= 0 {
            for meter in meters { try meter.start() }
            started = meters.count
        } else {
            try startMore()
        }
    }

    /// Starts the meters due by now at `connectRate`, then again in 10 ms.
    private func startMore() throws {
        let due = min(meters.count, Int((ProcessInfo.processInfo.systemUptime - startedAt) * connectRate) + 1)
        while started < due && stopReason == nil {
            try meters[started].start()
            started += 1
        }
        guard started < meters.count, stopReason == nil else { return }
        loop.schedule(after: 0.01) { [unowned self] in
            do { try startMore() } catch { stop("start failed: \(error)") }
        }
    }

    /// Ends the run: waits up to 2 s for the broker to acknowledge what the
    /// connected meters still have in flight, then disconnects every meter.
    func stop(_ reason: String) {
        guard stopReason == nil else { return }
        stopReason = reason
        let deadline = ProcessInfo.processInfo.systemUptime + 2
        func finishWhenSettled() {
            let busy = meters.contains { $0.connection.isConnected && $0.connection.unacknowledgedCount > 0 }
            if busy && ProcessInfo.processInfo.systemUptime < deadline {
                loop.schedule(after: 0.01) { finishWhenSettled() }
                return
            }
            for meter in meters { meter.stop() }
            loop.stop()
        }
        finishWhenSettled()
    }

    /// The last words: connections and readings acknowledged by the broker.
    func summary() -> String {
        "\(readingsAcknowledged) readings acknowledged by the broker (\(readingsSent) sent); "
            + "\(connected) of \(meters.count) meters connected"
    }
}
