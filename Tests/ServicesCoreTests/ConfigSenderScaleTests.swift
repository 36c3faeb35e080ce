import Foundation
import JSON
@testable import MQTT
import RuleEngine
import SiteSettings
import Testing
import TestSupport
@testable import Services
@testable import ServicesFixtures

// config-sender's core with many meters and no socket: discovery, commands,
// acknowledgements, a day change, a restart from the state database. The
// suite runs it with 5,000 meters; `tools/bench --scenario core` with
// 100,000 (KPM33B_SCALE_METERS). It prints one `scale:` line of figures:
// resident memory per meter, time per event, the database's
// size, the restart's load time.

/// Keeps only what answering needs: each command's topic and oprid.
final class CountingSenderTransport: ConfigSenderTransport {
    var isCentralConnected = true
    private(set) var unanswered: [(topic: String, oprid: String)] = []
    private(set) var commandsSent = 0
    /// Everything retained on the central broker (the status, each meter's topics), and the largest status.
    private(set) var retainedBytes = 0
    private(set) var largestStatus = 0
    private var nextMid: Int32 = 0

    func publishCommand(topic: String, payload: [UInt8]) throws(MQTTError) -> Int32 {
        commandsSent += 1
        unanswered.append((topic, (try? JSONValue.parse(payload))?["oprid"]?.stringValue ?? ""))
        nextMid &+= 1
        return nextMid
    }

    func subscribeReplies(_ filter: String) throws(MQTTError) {}

    func publishStatus(topic: String, payload: [UInt8]) throws(MQTTError) -> Int32 {
        retainedBytes += payload.count
        if topic == "kpm33b/config-sender/status" { largestStatus = max(largestStatus, payload.count) }
        nextMid &+= 1
        return nextMid
    }

    func takeUnanswered() -> [(topic: String, oprid: String)] {
        defer { unanswered.removeAll(keepingCapacity: true) }
        return unanswered
    }
}

@Suite(.serialized) struct ConfigSenderScaleTests {
    static var meters: Int { ProcessInfo.processInfo.environment["KPM33B_SCALE_METERS"].flatMap(Int.init) ?? 5_000 }

    /// The process's resident memory in bytes (`VmRSS`; `VmHWM`: its peak).
    static func memory(_ key: String = "VmRSS") -> Int {
        let status = (try? String(contentsOfFile: "/proc/self/status", encoding: .utf8)) ?? ""
        let line = status.split(separator: "\n").first { $0.hasPrefix(key + ":") } ?? ""
        return (Int(line.split(separator: " ").dropFirst().first ?? "") ?? 0) * 1024
    }

    /// The meters' ids: 13 characters, distinct in their last 8.
    static func id(_ i: Int) -> String { "33B12\(String(10_000_000 + i))" }

    final class Harness {
        let directory: URL
        let site: Site
        let transport = CountingSenderTransport()
        let logFD: Int32
        var store: ConfigStateStore
        var core: ConfigSenderCore
        var now = ConfigTime(testing: senderT0)
        var events = 0
        var eventTime = Duration.zero

        init(meters: Int) throws {
            directory = try senderTemporaryDirectory("sender-scale")
            // The shipped pacing: at most 200 commands awaiting a reply (the test answers them at once).
            site = try buildSenderSite(senderConfigText(timeout: 15, periodic: 600, maxInFlight: 200))
            logFD = open("/dev/null", O_WRONLY)
            store = ConfigStateStore(directory: directory.path)
            core = try Self.makeCore(site, store, logFD, transport)
        }

        deinit {
            close(logFD)
            try? FileManager.default.removeItem(at: directory)
        }

        static func makeCore(_ site: Site, _ store: ConfigStateStore, _ logFD: Int32,
                             _ transport: CountingSenderTransport) throws -> ConfigSenderCore {
            let records = try store.load(now: senderT0).records
            let planner = ConfigPlanner(programs: site.programs, options: ConfigPlanner.Options(site: site), records: records,
                                        ids: OperationIDGenerator(SplitMix(seed: 7)))
            let core = ConfigSenderCore(planner: planner, store: store,
                                        settings: .init(statusTopic: "kpm33b/config-sender/status", discoverySubscriptions: ["kpm33b/discovery/+"]),
                                        startedAt: senderT0, log: Log(level: .info, fd: logFD))
            core.transport = transport
            core.centralConnectionChanged(true)
            return core
        }

        /// One event, timed; the loop's end of iteration every 100 events.
        func event(_ body: () -> Void) {
            let start = ContinuousClock.now
            body()
            events += 1
            if events % 100 == 0 { core.endOfIteration(at: now) }
            eventTime += ContinuousClock.now - start
        }

        func discoverAll(_ n: Int) {
            for i in 0..<n {
                let payload = JSONValue.object(["id": .string(id(i)), "manufacturer": "Compere"]).serialized()
                event { core.discoveryReceived(topic: "kpm33b/discovery/\(id(i))", payload: payload, at: now) }
            }
        }

        /// Answers every command as it goes out (pacing sends the next ones) until none is left.
        func answerAll() {
            while true {
                let batch = transport.takeUnanswered()
                if batch.isEmpty {
                    now = now.adding(seconds: 0.01)
                    core.endOfIteration(at: now)
                    core.tick(at: now)
                    if transport.unanswered.isEmpty { return }
                    continue
                }
                for (topic, oprid) in batch {
                    let meter = "33B12" + topic.split(separator: "_").last!
                    let replyTopic = topic.hasPrefix("MQTT_SETTIME_") ? "MQTT_METER_TIME_REP" : "MQTT_COMMOD_SET_REP"
                    let reply = JSONValue.object(["id": .string(meter), "oprid": .string(oprid), "code": "01"]).serialized()
                    event { core.replyReceived(topic: replyTopic, payload: reply, at: now) }
                }
                now = now.adding(seconds: 0.01)
            }
        }

        func configured(on date: String) -> Int {
            core.planner.records.values.count { $0.acknowledgedDate == date }
        }

        var databaseBytes: Int {
            ["", "-wal"].reduce(0) { sum, suffix in
                sum + ((try? FileManager.default.attributesOfItem(atPath: store.path + suffix)[.size] as? Int) ?? 0)
            }
        }
    }

    @Test func manyMetersDiscoveredConfiguredRedoneNextDayAndRestarted() throws {
        let n = Self.meters
        let rss0 = Self.memory()
        let site = try Harness(meters: n)
        site.core.internalConnectionChanged(true, at: site.now)

        // Day one: every meter discovered and configured. With 200 in flight
        // and no answer yet, nearly every command waits for its turn.
        let start = ContinuousClock.now
        let rssBefore = Self.memory()
        site.discoverAll(n)
        let queuedPeak = site.core.planner.queuedCount
        let rssQueued = Self.memory() - rssBefore
        #expect(queuedPeak == 3 * n - 200)
        site.answerAll()
        site.core.endOfIteration(at: site.now)
        let dayOne = ContinuousClock.now - start
        #expect(site.configured(on: "2026-01-12") == n)
        #expect(site.core.planner.alerts.isEmpty)
        #expect(site.transport.commandsSent == 3 * n)
        let rssDayOne = Self.memory() - rss0
        let eventsDayOne = site.events, timeDayOne = site.eventTime

        // The next day: the periodic pass sends every meter its commands again.
        site.now = site.now.adding(seconds: 86_400)
        site.core.tick(at: site.now)
        site.answerAll()
        site.core.endOfIteration(at: site.now)
        #expect(site.configured(on: "2026-01-13") == n)
        #expect(site.transport.commandsSent == 6 * n)
        #expect(site.store.flush(seconds: 600))
        let rssDayTwo = Self.memory() - rss0
        let databaseBytes = site.databaseBytes

        // A restart: the records come back from the database, and nothing is sent again today.
        _ = site.core.beginDrain()
        _ = site.core.publishOffline(at: site.now)
        site.store = ConfigStateStore(directory: site.directory.path)
        let loadStart = ContinuousClock.now
        site.core = try Harness.makeCore(site.site, site.store, site.logFD, site.transport)
        let loadTime = ContinuousClock.now - loadStart
        #expect(site.core.planner.records.count == n)
        site.core.internalConnectionChanged(true, at: site.now)
        site.discoverAll(n)
        site.core.endOfIteration(at: site.now)
        #expect(site.transport.commandsSent == 6 * n, "a restart the same day sends nothing")
        #expect(site.configured(on: "2026-01-13") == n)
        #expect(site.transport.largestStatus <= 4096)

        let perEvent = site.eventTime / site.events
        print("scale: \(n) meters; \(queuedPeak) commands queued at once: RSS grew \(rssQueued / n) B per meter discovered; RSS grew \(rssDayOne / n) B per meter by the end of day one, \(rssDayTwo / n) B by day two's (peak RSS \(Self.memory("VmHWM") >> 20) MiB, the test harness included); "
            + "day one \(eventsDayOne) events in \(dayOne) (\(timeDayOne / eventsDayOne) per event); all \(site.events) events: \(perEvent) per event; "
            + "database \(databaseBytes / 1024) KiB (\(databaseBytes / n) B per meter); restart: loaded in \(loadTime); "
            + "status: largest \(site.transport.largestStatus) B; \(site.transport.retainedBytes / 1024) KiB of retained messages in all")
    }
}
