import Foundation
import Journal
import Clock
import MQTT
import RuleEngine
import RuleTesting
import SiteSettings
import Testing
@testable import Services

// The proxy core's test fixture: the rule engine, a real journal in a
// temporary directory, and a recording transport instead of brokers.

/// Records what the core asks of the brokers; the test plays the central
/// broker's part (connection changes, PUBACKs).
final class RecordingTransport: ProxyTransport {
    struct Published: Equatable { var mid: Int32; var topic: String; var payload: String; var retain: Bool }
    var isCentralConnected = false
    var published: [Published] = []
    var reading = true
    var writes = true
    /// Publishes refused with a passing error before they work again.
    var refuseNext = 0
    /// `CentralPublisher.sendWindow`: the central connection's window.
    var sendWindow = 65535
    private var nextMid: Int32 = 0

    func publishCentral(topic: UnsafeRawBufferPointer, payload: UnsafeRawBufferPointer, retain: Bool) throws(MQTTError) -> Int32 {
        if payload.count > 10_000 { throw MQTTError(.payloadTooLarge, "too large for the test broker") }
        if refuseNext > 0 {
            refuseNext -= 1
            throw MQTTError(.outOfMemory, "the client is out of memory")
        }
        nextMid += 1
        published.append(Published(mid: nextMid, topic: String(decoding: topic, as: UTF8.self),
                                   payload: String(decoding: payload, as: UTF8.self), retain: retain))
        return nextMid
    }

    func setInternalReading(_ enabled: Bool) { reading = enabled }
    func setInternalWrites(_ enabled: Bool) { writes = enabled }

    /// The copies published on the internal broker (their mid is not used).
    var internalPublished: [Published] = []

    func publishInternal(topic: String, payload: UnsafeRawBufferPointer, retain: Bool) throws(MQTTError) {
        internalPublished.append(Published(mid: 0, topic: topic, payload: String(decoding: payload, as: UTF8.self), retain: retain))
    }

    var data: [Published] { published.filter { $0.topic.hasSuffix("/seconds") } }
}

/// The shipped pack's program with the site config `yaml` (written to `file` in `directory`).
func loadProgram(_ yaml: String, in directory: String, file: String = "site.yaml") throws -> Program {
    let config = URL(fileURLWithPath: directory).appendingPathComponent(file)
    try yaml.write(to: config, atomically: true, encoding: .utf8)
    return try Site.load(rules: senderPackPath, config: config.path).program
}

/// A core over a journal in `directory`, with `transport`; HA off so that
/// only data and the discovery message come out.
final class CoreFixture {
    let directory: String
    let transport = RecordingTransport()
    var core: ProxyCore
    let program: Program
    var clock = MonotonicInstant.now()

    init(directory: String? = nil, maxBytes: Int = 1 << 30, homeAssistant: Bool = false) throws {
        if let directory {
            self.directory = directory
        } else {
            self.directory = try senderTemporaryDirectory("core").path
        }
        program = try loadProgram("""
            root_topic: kpm33b
            homeassistant: { enabled: \(homeAssistant) }
            proxy: { max_payload_bytes: 4096 }

            """, in: self.directory)
        core = try Self.makeCore(program: program, directory: self.directory, maxBytes: maxBytes)
        core.transport = transport
    }

    static func makeCore(program: Program, directory: String, maxBytes: Int) throws -> ProxyCore {
        let settings = JournalSettings(maxBytes: maxBytes, fsync: .never)
        let journal = try Journal(directory: directory + "/journal", maxBytes: maxBytes,
                                  segmentBytes: settings.segmentBytes, fsync: .never)
        let core = ProxyCore(programs: ProgramSet(single: program), journal: journal, settings: .init(maxPayloadBytes: 4096),
                             origin: Origin(name: "test", version: "0"), log: Log(level: .error, fd: -1))
        core.delivery.deadLetters = DeadLetters(directory: directory)
        core.announcements.announcedFile = directory + "/announced"
        return core
    }

    /// A process restart: a new core on the same journal directory.
    func restart(maxBytes: Int = 1 << 30) throws {
        core.journal.close()
        core = try Self.makeCore(program: program, directory: directory, maxBytes: maxBytes)
        core.transport = transport
        transport.isCentralConnected = false
        transport.published.removeAll()
    }

    func receive(second: Int, id: String = "33B1225950027") throws {
        let payload = Array(try ProxyHarness.rtData(second: second, id: id).utf8)
        payload.withUnsafeBytes { core.received(topic: "MQTT_RT_DATA", payload: $0, now: Instant(epochMillis: 1_768_235_940_000)) }
    }

    func endIteration(after seconds: Double = 0) {
        clock = clock.adding(seconds: seconds)
        core.endOfIteration(at: clock)
    }

    /// The central broker comes (or goes); when it comes, the read-back of
    /// its retained announcements finds `retained` (none by default).
    func connectCentral(_ up: Bool = true, retained: [(topic: String, payload: String)] = []) {
        transport.isCentralConnected = up
        core.centralConnectionChanged(up, at: clock)
        guard up else { return }
        for message in retained { core.observed(topic: message.topic, payload: Array(message.payload.utf8)) }
        core.readBackFinished(now: Instant(epochMillis: 1_768_235_940_000))
    }

    /// PUBACKs for every message published so far and not yet acknowledged.
    func acknowledgeAll() {
        for p in transport.published where !acknowledged.contains(p.mid) {
            acknowledged.insert(p.mid)
            core.acknowledged(p.mid)
        }
    }
    private var acknowledged: Set<Int32> = []

    deinit { try? FileManager.default.removeItem(atPath: directory) }
}
