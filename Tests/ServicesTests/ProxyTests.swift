import Foundation
import Glibc
import JSON
import MQTT
import RuleEngine
import RuleTesting
import SiteSettings
import Testing
import TestSupport
@testable import Services
@testable import ServicesFixtures

/// `kpm33b-proxy` end to end: real Mosquitto brokers on loopback, the built
/// binary as a child process, a meter publishing on the internal broker and a
/// subscriber on the central one.
@Suite(.serialized)
struct ProxyTests {
    @Test func rtDataEndToEnd() throws {
        let h = try ProxyHarness()
        let central = try TestSubscriber(broker: h.centralBroker, filters: ["kpm33b/#"])
        // The central broker comes from the command line; the config's port leads nowhere.
        try h.writeConfig(centralPort: freePort())
        try h.startProxy(arguments: ["--central", h.centralBroker.url])
        try h.publish("MQTT_RT_DATA", try ProxyHarness.sample("MQTT_RT_DATA"))
        let data = central.waitForData(count: 1)
        #expect(data == [#"kpm33b/33B1225950027/seconds {"id":"33B1225950027","time":"20260112163900","active_power":6.6905}"#])
        let discovery = central.waitFor { $0.topic == "kpm33b/discovery/33B1225950027" }
        #expect(discovery?.json?["topics"]?["seconds"] == "kpm33b/33B1225950027/seconds")
        try stop(h)
    }

    @Test func enyNowEndToEnd() throws {
        let h = try ProxyHarness()
        let central = try TestSubscriber(broker: h.centralBroker, filters: ["kpm33b/#"])
        try h.startProxy()
        try h.publish("MQTT_ENY_NOW", try ProxyHarness.sample("MQTT_ENY_NOW"))
        // The sample without its main tag: the clean message carries null.
        try h.publish("MQTT_ENY_NOW", try ProxyHarness.sample("MQTT_ENY_NOW_missing_data")
            .replacingOccurrences(of: "20260117211500", with: "20260117212000"))
        let data = central.waitForData(count: 2)
        #expect(data == [
            #"kpm33b/33B1225950027/minutes {"id":"33B1225950027","time":"20260117211500","active_energy":163.486}"#,
            #"kpm33b/33B1225950027/minutes {"id":"33B1225950027","time":"20260117212000","active_energy":null}"#,
        ])
        try stop(h)
    }

    /// The real capture through both brokers gives exactly the data lines of
    /// `rulecheck run` (the same Replay, in process).
    @Test func captureThroughBrokersMatchesReplay() throws {
        let h = try ProxyHarness()
        let file = ProxyHarness.packDirectory.appendingPathComponent("tests/capture-eny-now.in")
        let input = try [UInt8](Data(contentsOf: file))
        var expected: [String] = []
        let program = try Site.load(rules: h.rules, config: h.configFile).program
        var replay = Replay(router: PackRouter(programs: ProgramSet(single: program), origin: Origin(name: "test", version: "0")), now: Replay.instant(Replay.defaultClock)!)
        replay.showDrops = false
        try replay.run(input) { line in if !line.hasPrefix("+ ") { expected.append(line) } }
        #expect(expected.count > 100)

        // `RECEIVE-TIME TOPIC PAYLOAD` (mosquitto_sub -F '%U %t %p'): the proxy gets TOPIC and PAYLOAD.
        let messages = String(decoding: input, as: UTF8.self).split(separator: "\n").compactMap { line -> (String, [UInt8])? in
            guard !line.hasPrefix("#"), !line.hasPrefix("@") else { return nil }
            var rest = line[...]
            if let first = rest.split(separator: " ", maxSplits: 1).first, Double(first) != nil {
                rest = rest.dropFirst(first.count + 1)
            }
            guard let space = rest.firstIndex(of: " ") else { return nil }
            return (String(rest[..<space]), Array(rest[rest.index(after: space)...].utf8))
        }
        #expect(messages.count == 2072)
        let central = try TestSubscriber(broker: h.centralBroker, filters: ["kpm33b/#"])
        try h.startProxy()
        try h.publish(messages)
        let data = central.waitForData(count: expected.count, timeout: 20)
        #expect(data == expected)
        let status = central.waitForStatus { ($0["counters"]?["forwarded"]?.intValue ?? 0) >= Int64(expected.count) }
        #expect(status?["counters"]?["received"] == .integer(2072))
        #expect(status?["meters_seen"] == 3)
        #expect(status?["meters"] == nil, "the status holds totals, not a list of the meters")
        try stop(h)
    }

    /// One retained device config per meter, carrying the entities of its
    /// enabled groups; Home Assistant's `online` gets one message per meter.
    @Test func homeAssistantDeviceConfigsRetainedAndRepublishedOnOnline() throws {
        let h = try ProxyHarness(groups: ["current"])
        try h.startProxy()
        let ids = (0..<25).map { String(format: "33B12259%05d", 50100 + $0) }
        let first = try TestSubscriber(broker: h.centralBroker, filters: ["kpm33b/#", "homeassistant/device/#", "homeassistant/sensor/#"])
        try h.publish(ids.map { ("MQTT_RT_DATA", Array(try ProxyHarness.rtData(second: 0, id: $0).utf8)) })
        #expect(first.waitForData(count: ids.count).count == ids.count)
        let announced = first.waitFor(count: ids.count + 100, timeout: 1.5).filter { $0.topic.hasPrefix("homeassistant/") }
        #expect(announced.filter { $0.topic.hasPrefix("homeassistant/device/") }.count == ids.count, "one config per meter")
        #expect(!announced.contains { $0.payload.isEmpty }, "no clears for groups never announced")
        #expect(!announced.contains { $0.topic.contains("kpm33b_33B") && $0.topic.hasPrefix("homeassistant/sensor/") })

        // A late subscriber gets it as a retained message.
        let topic = "homeassistant/device/kpm33b_\(ids[0])/config"
        let late = try TestSubscriber(broker: h.centralBroker, filters: [topic])
        let config = try #require(late.waitFor(count: 1).first)
        #expect(config.retain)
        #expect(HomeAssistantSchema.problems(topic: config.topic, payload: config.payload) == [])
        let json = try #require(config.json)
        #expect(json["cmps"]?.objectValue?.keys == ["active_power", "current_l1", "current_l2", "current_l3", "active_energy"])
        #expect(json["cmps"]?["active_power"]?["unique_id"] == .string("kpm33b_\(ids[0])_active_power"))
        #expect(json["cmps"]?["active_power"]?["state_topic"] == .string("kpm33b/\(ids[0])/seconds"))
        #expect(json["cmps"]?["active_power"]?["expire_after"] == 180)
        #expect(json["availability"]?.arrayValue?.first?["topic"] == "kpm33b/status")
        #expect(json["dev"]?["identifiers"] == .array([.string("kpm33b_\(ids[0])")]))
        #expect(json["o"]?["name"] == "kpm33b-proxy")

        let again = try TestSubscriber(broker: h.centralBroker, filters: ["homeassistant/device/+/config"])
        _ = again.waitFor(count: ids.count, timeout: 2)  // the retained copies
        again.clear()
        let homeAssistant = try TestClient(endpoint: h.centralBroker.endpoint, options: MQTTOptions(clientID: "ha"))
        try homeAssistant.start()
        #expect(homeAssistant.waitUntilConnected(timeout: 5))
        try homeAssistant.publish(topic: "homeassistant/status", payload: Array("online".utf8), qos: 1, retain: false)
        let live = again.waitFor(count: ids.count + 10, timeout: 2)
        #expect(live.count == ids.count, "one message per meter")
        #expect(Set(live.map(\.topic)).count == ids.count)
        #expect(live.allSatisfy { !$0.retain && !$0.payload.isEmpty })  // live, not the retained copies
        homeAssistant.stop()
        try stop(h)
    }

    /// At start-up the proxy reads back the broker: the device config of a
    /// meter whose field is gone loses that component, an excluded meter
    /// loses everything, and another program's configs are not touched —
    /// before any reading arrives.
    @Test func startUpConvergesWhatTheBrokerRetains() throws {
        let h = try ProxyHarness(groups: ["current"])
        let kept = "33B1225950027", excluded = "33B1225950030"  // the harness excludes …030
        let seed = try TestClient(endpoint: h.centralBroker.endpoint, options: MQTTOptions(clientID: "seed"))
        try seed.start()
        #expect(seed.waitUntilConnected(timeout: 5))
        func device(_ id: String, origin: String, components: String) -> [UInt8] {
            Array(#"{"dev":{"identifiers":["kpm33b_\#(id)"],"serial_number":"\#(id)"},"o":{"name":"\#(origin)"},"cmps":{\#(components)}}"#.utf8)
        }
        let component = #"{"p":"sensor","unique_id":"u","state_topic":"kpm33b/x/seconds"}"#
        let foreign = "homeassistant/device/kpm33b_33B1225950029/config"
        for (topic, payload) in [
            ("homeassistant/device/kpm33b_\(kept)/config", device(kept, origin: "kpm33b-proxy", components: #""active_power":\#(component),"renamed_field":\#(component)"#)),
            ("homeassistant/device/kpm33b_\(excluded)/config", device(excluded, origin: "kpm33b-proxy", components: #""active_power":\#(component)"#)),
            ("kpm33b/discovery/\(excluded)", Array(#"{"id":"\#(excluded)","pack":"kpm33b"}"#.utf8)),
            (foreign, device("33B1225950029", origin: "someone-else", components: #""a":\#(component)"#)),
        ] {
            _ = try seed.publish(topic: topic, payload: payload, qos: 1, retain: true)
        }
        let deadline = Date(timeIntervalSinceNow: 5)
        while seed.unacknowledgedCount > 0 && Date() < deadline { usleep(10_000) }
        #expect(seed.unacknowledgedCount == 0)
        seed.stop()

        let watch = try TestSubscriber(broker: h.centralBroker, filters: ["homeassistant/device/+/config", "kpm33b/discovery/+"])
        _ = watch.waitFor(count: 4, timeout: 2)
        watch.clear()
        try h.startProxy()
        #expect(h.waitForLog("msg=discovery_read_back"))
        let changes = watch.waitFor(count: 20, timeout: 2)
        let keptTopic = "homeassistant/device/kpm33b_\(kept)/config"
        let forKept = changes.filter { $0.topic == keptTopic }
        #expect(forKept.count == 2, "\(changes.map(\.topic))")
        #expect(forKept.first?.json?["cmps"] == ["renamed_field": ["p": "sensor"]])
        #expect(forKept.last?.json?["cmps"]?.objectValue?.keys == ["active_power", "current_l1", "current_l2", "current_l3", "active_energy"])
        #expect(Set(changes.filter { $0.payload.isEmpty }.map(\.topic))
                == ["homeassistant/device/kpm33b_\(excluded)/config", "kpm33b/discovery/\(excluded)"])
        #expect(!changes.contains { $0.topic == foreign })
        let retained = try TestSubscriber(broker: h.centralBroker, filters: ["homeassistant/device/+/config"])
        #expect(Set(retained.waitFor(count: 3, timeout: 1.5).map(\.topic)) == [keptTopic, foreign])
        try stop(h)
    }

    /// The central broker goes away and comes back while a burst is being
    /// forwarded (messages in flight and queued) and meters keep publishing:
    /// every clean message still arrives.
    ///
    /// SIGTERM, so that the broker keeps what it has acknowledged: SIGKILLed,
    /// Mosquitto can lose a message it already acknowledged (its autosave
    /// window; seen once in 400 under CPU load), which no client can recover.
    /// The abrupt loss of the connection is `centralConnectionCutMidStreamLosesNothing`.
    @Test func centralBrokerRestartedMidStreamLosesNothing() throws {
        let h = try ProxyHarness(central: TestBroker.Configuration(persistence: true, extraLines: ["autosave_on_changes true"]))
        let central = try persistentCounter(h.centralBroker.endpoint)
        try h.startProxy()
        try burst(h, 0..<200)
        h.centralBroker.terminate(timeout: 2)
        try burst(h, 200..<300)
        try h.centralBroker.restart()
        try burst(h, 300..<400)
        expectAll(400, central, h)
        #expect(h.proxyLog.contains("msg=disconnected broker=central"))
        try stop(h)
    }

    /// The connection to the central broker is reset (RST, no DISCONNECT) in
    /// the middle of a burst; the broker and its subscriber stay up. Whatever
    /// was unacknowledged is sent again: nothing is lost.
    @Test func centralConnectionCutMidStreamLosesNothing() throws {
        let h = try ProxyHarness()
        let relay = try TCPRelay(targetPort: h.centralBroker.port)
        try h.writeConfig(centralPort: relay.port)
        let central = try TestSubscriber(broker: h.centralBroker, filters: ["kpm33b/+/seconds"])
        try h.startProxy()
        try burst(h, 0..<200)
        relay.cutAll()
        try burst(h, 200..<300)
        expectAll(300, central, h)
        #expect(h.proxyLog.contains("msg=disconnected broker=central"))
        // In order: what was in flight goes again before anything newer (repeats aside).
        #expect(central.uniqueDataLines == (0..<300).map { "kpm33b/33B1225950027/seconds " + ProxyHarness.cleanRTData(second: $0) })
        try stop(h)
        relay.stop()
    }

    /// A subscriber whose session (and queue) the broker keeps across its restart.
    private func persistentCounter(_ endpoint: MQTTEndpoint) throws -> TestSubscriber {
        let subscriber = try TestSubscriber(endpoint: endpoint, filters: ["kpm33b/+/seconds"],
                                            options: MQTTOptions(clientID: "central-counter", cleanSession: false))
        usleep(200_000)  // the session reaches the database (saved on every change)
        return subscriber
    }

    /// RT messages for meter seconds `range`, published as fast as the internal broker takes them.
    private func burst(_ h: ProxyHarness, _ range: Range<Int>) throws {
        try h.publish(range.map { ("MQTT_RT_DATA", Array(try ProxyHarness.rtData(second: $0).utf8)) })
    }

    /// Every clean message of seconds 0..<total arrived (duplicates allowed: QoS 1 is at least once).
    private func expectAll(_ total: Int, _ central: TestSubscriber, _ h: ProxyHarness,
                           sourceLocation: SourceLocation = #_sourceLocation) {
        let expected = (0..<total).map { "kpm33b/33B1225950027/seconds " + ProxyHarness.cleanRTData(second: $0) }
        let received = Set(central.waitForUniqueData(count: total))
        let missing = (0..<total).filter { !received.contains(expected[$0]) }
        #expect(missing.isEmpty, "missing \(missing.count) of \(total): \(missing)\n\(h.proxyLog)", sourceLocation: sourceLocation)
        #expect(received.count == total, sourceLocation: sourceLocation)
    }

    /// A full journal stops the proxy reading (back-pressure): the internal
    /// broker keeps the rest in the proxy's session, nothing is dropped, and
    /// everything arrives once the central broker is back.
    @Test func fullJournalAppliesBackPressureAndLosesNothing() throws {
        let h = try ProxyHarness(central: TestBroker.Configuration(persistence: true), journalMaxBytes: 1 << 20)
        let central = try TestSubscriber(broker: h.centralBroker, filters: ["kpm33b/+/seconds", "kpm33b/status"],
                                         options: MQTTOptions(clientID: "central-counter", cleanSession: false,
                                                              reconnectMinSeconds: 0.1, reconnectMaxSeconds: 0.5))
        try h.startProxy()
        try h.publish("MQTT_RT_DATA", try ProxyHarness.rtData(second: 0))
        #expect(central.waitForData(count: 1).count == 1)
        h.centralBroker.terminate()
        #expect(h.waitForLog("msg=disconnected broker=central"))
        // A clean reading is a journal record of about 140 bytes: 10,000 are 1.4 MB.
        let total = 10_000
        try burst(h, 1..<total)
        #expect(h.waitForLog("msg=back_pressure_on", timeout: 10), "\(h.proxyLog.suffix(2000))")
        try h.centralBroker.restart()
        expectAll(total, central, h)
        #expect(h.waitForLog("msg=back_pressure_off", timeout: 10))
        let status = central.waitForStatus { $0["counters"]?["forwarded"] == .integer(Int64(total)) }
        #expect(status?["counters"]?["dropped"]?.objectValue?.allSatisfy { $0.value == 0 } == true, "\(String(describing: status))")
        #expect(status?["journal"]?["back_pressure_s"] != nil)
        try stop(h)
    }

    /// New meters (each with its discovery message and Home Assistant device
    /// config) into a 1 MiB journal while the central broker is away: the
    /// journal, sampled on disk every 2 ms, never passes its bound, and every
    /// reading and announcement arrives once the broker is back. 5,000 in the
    /// suite (about 20 MB through a 1 MiB journal); `NEW_METERS=20000` for the
    /// full case (ProxyCoreTests runs 20,000 through the core and its journal).
    @Test func newMetersNeverPushTheJournalPastItsBound() throws {
        let cap = 1 << 20
        let h = try ProxyHarness(central: TestBroker.Configuration(persistence: true), journalMaxBytes: cap)
        let central = try TestSubscriber(broker: h.centralBroker, filters: ["kpm33b/+/seconds", "kpm33b/discovery/+"],
                                         options: MQTTOptions(clientID: "central-counter", cleanSession: false,
                                                              reconnectMinSeconds: 0.1, reconnectMaxSeconds: 0.5))
        try h.startProxy()
        #expect(h.waitForLog("msg=discovery_read_back"))
        h.centralBroker.terminate()
        #expect(h.waitForLog("msg=disconnected broker=central"))
        let sampler = DirectorySizeSampler(directory: h.stateDirectory + "/journal")
        let total = Int(ProcessInfo.processInfo.environment["NEW_METERS"] ?? "5000")!
        let ids = (0..<total).map { "33B" + String(1_000_000_000 + $0) }
        try h.publish(ids.enumerated().map { ("MQTT_RT_DATA", Array(try ProxyHarness.rtData(second: $0.offset % 3600, id: $0.element).utf8)) })
        #expect(h.waitForLog("msg=back_pressure_on", timeout: 60), "\(h.proxyLog.suffix(2000))")
        try h.centralBroker.restart()
        let deadline = Date(timeIntervalSinceNow: 900)
        var seen = Set<String>()
        var announced = Set<String>()
        var counted = 0
        while (seen.count < total || announced.count < total) && Date() < deadline {
            _ = central.waitFor(count: counted + 1000, timeout: 0.5)
            let messages = central.messages
            defer { counted = messages.count }
            for message in messages[counted...] {
                let levels = message.topic.split(separator: "/")
                if message.topic.hasSuffix("/seconds") { seen.insert(String(levels[1])) } else { announced.insert(String(levels[2])) }
            }
        }
        let largest = sampler.stop()
        // The figures of the run, for the record (peak RSS from the kernel's high-water mark).
        let rss = (try? String(contentsOfFile: "/proc/\(h.proxy?.pid ?? 0)/status", encoding: .utf8))?
            .split(separator: "\n").first { $0.hasPrefix("VmHWM:") }.map { $0.dropFirst(6).trimmingCharacters(in: .whitespaces) } ?? "?"
        print("new_meters=\(total) journal_peak_bytes=\(largest) journal_max_bytes=\(cap) proxy_peak_rss=\"\(rss)\"")
        #expect(seen.count == total, "\(total - seen.count) readings missing")
        #expect(announced.count == total, "\(total - announced.count) discovery messages missing")
        #expect(largest <= cap, "the journal reached \(largest) bytes on disk")
        #expect(largest > cap / 2, "the journal never filled: \(largest) bytes")
        #expect(!h.proxyLog.contains("msg=input_dropped"), "\(h.proxyLog.split(separator: "\n").filter { $0.contains("msg=input_dropped") }.prefix(3))")
        h.signalProxy(SIGTERM)
        #expect(h.proxy?.wait(timeout: 30) == true)
    }

    /// The proxy itself is a device in Home Assistant: sensors and binary
    /// sensors over its retained status, available while it is online; the
    /// status carries every value their templates read.
    @Test func proxyHealthIsADeviceInHomeAssistant() throws {
        let h = try ProxyHarness()
        let central = try TestSubscriber(broker: h.centralBroker, filters: ["kpm33b/#", "homeassistant/+/kpm33b_proxy/+/config"])
        try h.startProxy()
        try h.publish("MQTT_RT_DATA", try ProxyHarness.sample("MQTT_RT_DATA"))
        #expect(central.waitForData(count: 1).count == 1)
        _ = central.waitFor(count: 12)
        // Retained: a late subscriber (Home Assistant starting) gets them all.
        let late = try TestSubscriber(broker: h.centralBroker, filters: ["homeassistant/+/kpm33b_proxy/+/config"])
        let configs = late.waitFor(count: HealthDevice.proxy.entities.count)
        #expect(Set(configs.map(\.topic)) == Set(HealthDevice.proxy.entities.map { "homeassistant/\($0.component)/kpm33b_proxy/\($0.object)/config" }))
        for config in configs {
            let json = try #require(config.json, "\(config.topic) is not JSON")
            #expect(config.retain)
            #expect(json["state_topic"] == "kpm33b/status")
            #expect(json["availability"]?.arrayValue?.first?["topic"] == "kpm33b/status")
            #expect(json["device"]?["identifiers"] == ["kpm33b_proxy"])
            #expect(json["unique_id"]?.stringValue?.hasPrefix("kpm33b_proxy_") == true)
            #expect(json["default_entity_id"]?.stringValue?.hasPrefix(config.topic.split(separator: "/")[1] + ".kpm33b_proxy_") == true)
        }
        let status = try #require(central.waitForStatus { $0["counters"]?["forwarded"] == 1 && $0["meters_online"] == 1 })
        #expect(status["forwarded_per_minute"]?.intValue != nil)
        #expect(status["journal"]?["messages"]?.intValue != nil)
        #expect(status["journal"]?["back_pressure"]?.boolValue == false)
        #expect(status["connections"]?["internal"] == "connected")
        #expect(status["counters"]?["dropped"]?.objectValue?.isEmpty == false)
        try stop(h)
    }

    /// A meter's energy glitch (163.486 → 0.000 → 16.349 → 163.490) with the
    /// proxy restarted in the middle: only the good readings reach the central
    /// broker, because the last forwarded value is kept in the state directory.
    @Test func energyGlitchAcrossARestartForwardsOnlyTheGoodReadings() throws {
        let h = try ProxyHarness()
        let central = try TestSubscriber(broker: h.centralBroker, filters: ["kpm33b/+/minutes", "kpm33b/status"])
        func energy(_ value: String, minute: Int) throws {
            try h.publish("MQTT_ENY_NOW", #"{"id":"33B1225950027","zygsz":\#(value),"fwgsz":11.085,"time":"2026011216\#(minute < 10 ? "0" : "")\#(minute)00","isend":"1"}"#)
        }
        try h.startProxy()
        try energy("163.486", minute: 0)
        #expect(central.waitForData(count: 1).count == 1)
        try stop(h)
        try h.startProxy()
        for (minute, value) in [(1, "0.000"), (2, "16.349"), (3, "163.490")] { try energy(value, minute: minute) }
        let data = central.waitForData(count: 2)
        #expect(data == [
            #"kpm33b/33B1225950027/minutes {"id":"33B1225950027","time":"20260112160000","active_energy":163.486}"#,
            #"kpm33b/33B1225950027/minutes {"id":"33B1225950027","time":"20260112160300","active_energy":163.490}"#,
        ])
        let status = central.waitForStatus { $0["counters"]?["dropped"]?["counter_glitch"] == 2 }
        #expect(status != nil, "\(h.proxyLog.suffix(1500))")
        usleep(300_000)
        #expect(central.dataLines.count == 2)
        try stop(h)
    }

    /// counters.db damaged while the proxy was stopped: moved aside, a
    /// `state_corrupt` warning and a line in the status's `problems`; the
    /// proxy runs on with a fresh database.
    @Test func aDamagedCountersDatabaseIsMovedAsideAndInTheStatus() throws {
        let h = try ProxyHarness()
        let central = try TestSubscriber(broker: h.centralBroker, filters: ["kpm33b/+/minutes", "kpm33b/status"])
        try h.startProxy()
        try h.publish("MQTT_ENY_NOW", #"{"id":"33B1225950027","zygsz":163.486,"fwgsz":11.085,"time":"20260112160000","isend":"1"}"#)
        #expect(central.waitForData(count: 1).count == 1)
        try stop(h)
        let database = h.stateDirectory + "/counters.db"
        #expect(FileManager.default.fileExists(atPath: database))
        for suffix in ["-wal", "-shm"] { try? FileManager.default.removeItem(atPath: database + suffix) }
        try Data("this is not a database, whatever it was".utf8).write(to: URL(fileURLWithPath: database))
        try h.startProxy()
        let status = central.waitForStatus {
            $0["problems"]?.arrayValue?.contains { $0.stringValue?.hasPrefix("state_corrupt:") == true } == true
        }
        #expect(status != nil, "\(h.proxyLog.suffix(1500))")
        #expect(h.proxyLog.contains("msg=state_corrupt"))
        let aside = try FileManager.default.contentsOfDirectory(atPath: h.stateDirectory).filter { $0.hasPrefix("counters.db.corrupt-") }
        #expect(aside.count == 1)
        // The guard starts afresh: the next total is taken as it comes.
        try h.publish("MQTT_ENY_NOW", #"{"id":"33B1225950027","zygsz":1.000,"fwgsz":11.085,"time":"20260112160100","isend":"1"}"#)
        #expect(central.waitForData(count: 2).count == 2)
        try stop(h)
    }

    /// Runs `kpm33b-proxy ARGUMENTS` (a command beside the service) to its end; returns its status and output.
    private func proxyCommand(_ h: ProxyHarness, _ arguments: [String]) throws -> (Int32?, String) {
        let output = h.directory.appendingPathComponent("command-\(UUID().uuidString.prefix(6)).log").path
        let process = try ChildProcess(executable: try #require(ProxyHarness.binary), arguments: arguments + [
            "--rules", h.rules, "--config", h.configFile,
        ], outputFile: output)
        _ = process.wait(timeout: 20)
        return (process.exitStatus, (try? String(contentsOfFile: output, encoding: .utf8)) ?? "")
    }

    /// A central broker whose ACL refuses one meter's topic (MQTT 5: 0x87 not
    /// authorized): the refused reading goes to the dead letters, the status
    /// says so, the other meter's reading is delivered; once the ACL is fixed,
    /// `kpm33b-proxy dead-letters replay` delivers it and empties the file.
    @Test func refusedReadingIsDeadLetteredAndReplayedOnceTheACLIsFixed() throws {
        let refused = "kpm33b/33B1225950027/seconds"
        let h = try ProxyHarness(central: TestBroker.Configuration(acl: ["topic deny \(refused)", "topic readwrite #"]))
        try h.writeConfig(centralProtocol: "5")
        let central = try TestSubscriber(broker: h.centralBroker, filters: ["kpm33b/+/seconds", "kpm33b/status"])
        try h.startProxy()
        try h.publish("MQTT_RT_DATA", try ProxyHarness.rtData(second: 0))
        try h.publish("MQTT_RT_DATA", try ProxyHarness.rtData(second: 0, id: "33B1225950031"))
        #expect(central.waitForData(count: 1).count == 1)
        #expect(h.waitForLog("msg=publish_dead_lettered", timeout: 10), "\(h.proxyLog.suffix(3000))")
        #expect(h.proxyLog.contains("code=0x87"))
        let status = central.waitForStatus(timeout: 10) { $0["counters"]?["dead_lettered"] == 1 }
        #expect(status?["problems"]?.arrayValue?.contains { $0.stringValue?.hasPrefix("dead_letters: 1") == true } == true,
                "\(String(describing: status?["problems"]))")
        let (listed, list) = try proxyCommand(h, ["dead-letters", "list", "--state-dir", h.stateDirectory])
        #expect(listed == 0, "\(list)")
        #expect(list.contains(refused) && list.contains("0x87"), "\(list)")

        // Still refused: it stays.
        var (replayed, output) = try proxyCommand(h, ["dead-letters", "replay", "--state-dir", h.stateDirectory])
        #expect(replayed == 1, "\(output)")
        #expect(output.contains("msg=dead_letter_refused_again"), "\(output)")
        // The ACL fixed and reloaded.
        try "topic readwrite #\n".write(to: h.centralBroker.directory.appendingPathComponent("acl"), atomically: true, encoding: .utf8)
        kill(try #require(h.centralBroker.pid), SIGHUP)
        usleep(300_000)
        (replayed, output) = try proxyCommand(h, ["dead-letters", "replay", "--state-dir", h.stateDirectory])
        #expect(replayed == 0, "\(output)")
        #expect(central.waitForData(count: 2).contains("\(refused) \(ProxyHarness.cleanRTData(second: 0))"))
        let (_, after) = try proxyCommand(h, ["dead-letters", "list", "--state-dir", h.stateDirectory])
        #expect(after.contains("msg=dead_letters count=0"), "\(after)")
        let clear = central.waitForStatus(timeout: 10) { $0["problems"]?.arrayValue?.isEmpty == true }
        #expect(clear != nil, "the problem is gone once the file is empty")
        try stop(h)
    }

    /// The read-back of 20,000 retained meters from a central broker with the
    /// limits of the shipped production config (its lines, less the listener,
    /// accounts, persistence and logging the test broker sets itself): every
    /// meter the proxy announced (its state directory's `announced`) comes
    /// back, and the proxy says the read-back is complete. With Mosquitto's
    /// default queue of 1000 the broker drops most on the way, and the proxy
    /// says so instead of converging on partial knowledge in silence.
    @Test(arguments: [true, false]) func readBackOfTwentyThousandRetainedMeters(shippedQueue: Bool) throws {
        let production = try String(contentsOf: ProxyHarness.root.appendingPathComponent("broker/central/mosquitto-production.conf"),
                                    encoding: .utf8)
        let setByTheTest = ["listener", "protocol", "allow_anonymous", "password_file", "acl_file", "persistence",
                            "autosave_interval", "log_", "connection_messages", "user "]
        var lines = production.split(separator: "\n").map(String.init)
            .filter { line in !line.hasPrefix("#") && !line.isEmpty && !setByTheTest.contains { line.hasPrefix($0) } }
        #expect(lines.contains { $0.hasPrefix("max_queued_messages ") }, "the shipped config sizes the queue")
        if !shippedQueue { lines = lines.filter { !$0.hasPrefix("max_queued_messages") } + ["max_queued_messages 1000"] }
        let h = try ProxyHarness(central: TestBroker.Configuration(extraLines: lines))
        let total = 20_000
        let ids = (0..<total).map { "33B" + String(1_000_000_000 + $0) }
        try FileManager.default.createDirectory(atPath: h.stateDirectory, withIntermediateDirectories: true)
        try (ids.joined(separator: "\n") + "\n").write(toFile: h.stateDirectory + "/announced", atomically: true, encoding: .utf8)
        let retainer = try TestClient(endpoint: h.centralBroker.endpoint, options: MQTTOptions(clientID: "retainer"))
        try retainer.start()
        #expect(retainer.waitUntilConnected(timeout: 5))
        for id in ids {
            try retainer.publish(topic: "kpm33b/discovery/\(id)", payload: Array(#"{"id":"\#(id)","pack":"kpm33b"}"#.utf8), qos: 1, retain: true)
        }
        let deadline = Date(timeIntervalSinceNow: 120)
        while retainer.unacknowledgedCount > 0 && Date() < deadline { usleep(10_000) }
        retainer.stop()
        try h.startProxy()
        #expect(h.waitForLog("msg=discovery_read_back", timeout: 120), "\(h.proxyLog.suffix(2000))")
        let line = h.proxyLog.split(separator: "\n").first { $0.contains("msg=discovery_read_back") }.map(String.init) ?? ""
        if shippedQueue {
            #expect(line.contains("complete=true") && line.contains("seen=\(total)") && line.contains("meters=\(total)"), "\(line)")
            #expect(!h.proxyLog.contains("msg=read_back_incomplete"))
        } else {
            #expect(line.contains("complete=false"), "\(line)")
            #expect(h.proxyLog.contains("msg=read_back_incomplete"))
            #expect(h.centralBroker.log.contains("Outgoing messages are being dropped"))
        }
        h.signalProxy(SIGTERM)
        #expect(h.proxy?.wait(timeout: 30) == true)
    }

    /// `kpm33b-proxy retire ID` clears the meter's retained discovery (both
    /// brokers) and every Home Assistant config of it; other meters keep theirs.
    @Test func retireClearsEveryRetainedMessageOfAMeter() throws {
        let h = try ProxyHarness()
        let live = try TestSubscriber(broker: h.centralBroker, filters: ["kpm33b/+/seconds"])
        try h.startProxy()
        try h.publish("MQTT_RT_DATA", try ProxyHarness.rtData(second: 0))
        try h.publish("MQTT_RT_DATA", try ProxyHarness.rtData(second: 0, id: "33B1225950031"))
        #expect(live.waitForData(count: 2).count == 2)
        let filters = ["homeassistant/device/+/config", "homeassistant/+/+/+/config", "kpm33b/discovery/+"]
        let before = try TestSubscriber(broker: h.centralBroker, filters: filters)
        let retained = before.waitFor(count: 100, timeout: 1.5).filter { $0.topic.contains("33B1225950027") }
        #expect(Set(retained.map(\.topic)) == ["kpm33b/discovery/33B1225950027", "homeassistant/device/kpm33b_33B1225950027/config"],
                "discovery and the device config of the meter are retained")

        let (status, output) = try proxyCommand(h, ["retire", "33B1225950027", "--internal", h.internalBroker.url, "--central", h.centralBroker.url])
        #expect(status == 0, "\(output)")
        #expect(output.contains("msg=retire_not_excluded"))
        let after = try TestSubscriber(broker: h.centralBroker, filters: filters)
        let remaining = after.waitFor(count: 40, timeout: 1.5)
        #expect(!remaining.contains { $0.topic.contains("33B1225950027") }, "\(remaining.map(\.topic))")
        #expect(remaining.contains { $0.topic == "kpm33b/discovery/33B1225950031" })
        let internalCopies = try TestSubscriber(broker: h.internalBroker, filters: ["kpm33b/discovery/+"])
        let copies = internalCopies.waitFor(count: 2, timeout: 1.5)
        #expect(copies.map(\.topic) == ["kpm33b/discovery/33B1225950031"])
        try stop(h)
    }

    /// `kpm33b-proxy accept-reset ID FIELD`: a replaced meter's counter, which
    /// the guard refuses, is taken as the new start.
    @Test func acceptResetTakesTheNextReadingAsTheNewStart() throws {
        let h = try ProxyHarness()
        let central = try TestSubscriber(broker: h.centralBroker, filters: ["kpm33b/+/minutes"])
        func energy(_ value: String, minute: Int) throws {
            try h.publish("MQTT_ENY_NOW", #"{"id":"33B1225950027","zygsz":\#(value),"fwgsz":11.085,"time":"2026011216\#(minute < 10 ? "0" : "")\#(minute)00","isend":"1"}"#)
        }
        try h.startProxy()
        try energy("163.486", minute: 0)
        try energy("0.500", minute: 1)  // refused: fell
        #expect(central.waitForData(count: 1).count == 1)
        let (bad, badOutput) = try proxyCommand(h, ["accept-reset", "33B1225950027", "active_power", "--state-dir", h.stateDirectory])
        #expect(bad == 64)
        #expect(badOutput.contains("not a guarded field; the pack guards active_energy"))
        let (status, output) = try proxyCommand(h, ["accept-reset", "33B1225950027", "active_energy", "--state-dir", h.stateDirectory])
        #expect(status == 0, "\(output)")
        #expect(h.waitForLog("msg=counter_reset_accepted meter=33B1225950027 field=active_energy"))
        try energy("0.600", minute: 2)
        try energy("0.700", minute: 3)
        #expect(central.waitForData(count: 3) == [
            #"kpm33b/33B1225950027/minutes {"id":"33B1225950027","time":"20260112160000","active_energy":163.486}"#,
            #"kpm33b/33B1225950027/minutes {"id":"33B1225950027","time":"20260112160200","active_energy":0.600}"#,
            #"kpm33b/33B1225950027/minutes {"id":"33B1225950027","time":"20260112160300","active_energy":0.700}"#,
        ])
        try stop(h)
    }

    /// SIGKILL: what meters publish while the proxy is gone waits in its
    /// persistent session on the internal broker.
    @Test func proxyKilledAndRestartedMissesNothing() throws {
        let h = try ProxyHarness()
        let central = try TestSubscriber(broker: h.centralBroker, filters: ["kpm33b/+/seconds", "kpm33b/status"])
        try h.startProxy()
        for i in 0..<20 { try h.publish("MQTT_RT_DATA", try ProxyHarness.rtData(second: i)) }
        #expect(central.waitForData(count: 20).count == 20)

        h.killProxy()
        // The broker publishes the last will.
        #expect(central.waitFor { $0.topic == "kpm33b/status" && $0.payloadText == #"{"state":"offline"}"# } != nil)
        for i in 20..<60 { try h.publish("MQTT_RT_DATA", try ProxyHarness.rtData(second: i)) }
        try h.startProxy(waitForSubscriptions: false)
        for i in 60..<80 { try h.publish("MQTT_RT_DATA", try ProxyHarness.rtData(second: i)) }

        // At least once: a reading acknowledged by the central broker in the
        // last moments before the kill may come again; none is missing, and
        // the first arrivals keep the meter's order.
        let data = central.waitForUniqueData(count: 80)
        #expect(data == (0..<80).map { "kpm33b/33B1225950027/seconds " + ProxyHarness.cleanRTData(second: $0) })
        try stop(h)
    }

    /// SIGHUP with a broken pack keeps the running program; a good one replaces it.
    @Test func reloadKeepsRunningProgramOnError() throws {
        let h = try ProxyHarness(copyRules: true)
        let central = try TestSubscriber(broker: h.centralBroker, filters: ["kpm33b/+/seconds"])
        try h.startProxy()
        try h.publish("MQTT_RT_DATA", try ProxyHarness.rtData(second: 0))
        #expect(central.waitForData(count: 1).count == 1)

        let pack = URL(fileURLWithPath: h.rules).appendingPathComponent("pack.yaml")
        let good = try String(contentsOf: pack, encoding: .utf8)
        try good.replacingOccurrences(of: "from: zyggl", with: "from: zygglx").write(to: pack, atomically: true, encoding: .utf8)
        h.signalProxy(SIGHUP)
        #expect(h.waitForLog("msg=reload_failed"))
        #expect(h.proxyLog.contains("error[R004]"))
        try h.publish("MQTT_RT_DATA", try ProxyHarness.rtData(second: 1))
        #expect(central.waitForData(count: 2).last == "kpm33b/33B1225950027/seconds " + ProxyHarness.cleanRTData(second: 1))

        // A good pack and a config with the current group: the new program runs.
        try good.write(to: pack, atomically: true, encoding: .utf8)
        try h.writeConfig(groups: ["current"])
        h.signalProxy(SIGHUP)
        #expect(h.waitForLog("msg=rules_reloaded"))
        try h.publish("MQTT_RT_DATA", try ProxyHarness.rtData(second: 2))
        let last = try #require(central.waitForData(count: 3).last)
        #expect(last.contains(#""active_power":6.6905,"current_l1":9.735,"current_l2":9.658,"current_l3":9.655}"#))

        // Excluding the meter clears its Home Assistant device at once: it will send nothing more through.
        let entity = "homeassistant/device/kpm33b_33B1225950027/config"
        let configs = try TestSubscriber(broker: h.centralBroker, filters: [entity])
        #expect(configs.waitFor(timeout: 5) { !$0.payload.isEmpty } != nil, "the device exists before")
        try h.writeConfig(groups: ["current"], exclude: ["33B1225950027"])
        h.signalProxy(SIGHUP)
        let cleared = configs.waitFor(timeout: 5) { $0.payload.isEmpty }
        #expect(cleared != nil, "an empty config clears the entity")
        let retained = try TestSubscriber(broker: h.centralBroker, filters: [entity])
        #expect(retained.waitFor(timeout: 1) { _ in true } == nil, "no retained config is left for the excluded meter")
        #expect(h.proxy?.isRunning == true)
        try stop(h)
    }

    /// SIGTERM drains what was taken, publishes offline and exits 0 within 5 s.
    @Test func sigtermDrainsAndExitsCleanly() throws {
        let h = try ProxyHarness()
        let central = try TestSubscriber(broker: h.centralBroker, filters: ["kpm33b/+/seconds", "kpm33b/status"])
        try h.startProxy()
        try h.publish((0..<200).map { ("MQTT_RT_DATA", Array(try ProxyHarness.rtData(second: $0).utf8)) })
        let started = Date()
        h.signalProxy(SIGTERM)
        let exited = h.proxy?.wait(timeout: 5) ?? false
        let seconds = Date().timeIntervalSince(started)
        #expect(exited, "still running after 5 s")
        #expect(h.proxy?.exitStatus == 0)
        #expect(seconds < 5)
        let offline = central.waitFor { $0.topic == "kpm33b/status" && $0.json?["state"] == "offline" }
        #expect(offline?.json?["counters"]?["forwarded"] != nil)
        // Everything the proxy took from the internal broker was forwarded before it left.
        let stopped = try #require(h.proxyLog.split(separator: "\n").first { $0.contains("msg=stopped") })
        let forwarded = Int(stopped.split(separator: " ").first { $0.hasPrefix("forwarded=") }!.dropFirst("forwarded=".count))
        let received = Int(stopped.split(separator: " ").first { $0.hasPrefix("received=") }!.dropFirst("received=".count))
        #expect(forwarded == received)
        #expect(central.dataLines.count == forwarded)
    }

    /// Every kind of bad input, interleaved with good messages: each is counted
    /// by reason in the status, and every good message is forwarded.
    @Test func badInputIsCountedAndGoodInputKeepsFlowing() throws {
        let h = try ProxyHarness(maxPayloadBytes: 4096)
        let central = try TestSubscriber(broker: h.centralBroker, filters: ["kpm33b/+/seconds", "kpm33b/status"])
        try h.startProxy()
        let good = { (i: Int) in try ProxyHarness.rtData(second: i) }
        let zero = try ProxyHarness.rtData(second: 0).replacingOccurrences(of: #"":[0-9.-]+"#, with: "\":0.000", options: .regularExpression)
        let bad: [(reason: String, payload: [UInt8])] = [
            ("malformed", Array(#"{"id":"33B1225950027","zyggl":6.6905,"#.utf8)),
            ("malformed", Array("[1,2,3]".utf8)),
            ("malformed", Array(#"{"id":"33B1225950027","note":"x"#.utf8) + [0xFF, 0xFE] + Array(#"","time":"20260112170000","isend":"1"}"#.utf8)),
            ("too_large", Array(try good(0).replacingOccurrences(of: #""isend":"1""#, with: #""isend":"1","pad":"\#(String(repeating: "x", count: 5000))""#).utf8)),
            ("invalid_id", Array(try good(0).replacingOccurrences(of: "33B1225950027", with: "33B12259500/#").utf8)),
            ("invalid_id", Array(try good(0).replacingOccurrences(of: "33B1225950027", with: "33b1225950027").utf8)),
            ("wrong_type", Array(try good(0).replacingOccurrences(of: #""zyggl":6.6905"#, with: #""zyggl":"6.6905""#).utf8)),
            ("all_zero", Array(zero.utf8)),
            ("excluded", Array(try good(0).replacingOccurrences(of: "33B1225950027", with: "33B1225950030").utf8)),
        ]
        let rounds = 10
        var messages: [(topic: String, payload: [UInt8])] = []
        for round in 0..<rounds {
            messages.append(("MQTT_RT_DATA", Array(try good(round).utf8)))
            for b in bad { messages.append(("MQTT_RT_DATA", b.payload)) }
            messages.append(("MQTT_RT_DATA", Array(try good(round).utf8)))  // a duplicate
        }
        try h.publish(messages)
        let data = central.waitForData(count: rounds)
        #expect(data == (0..<rounds).map { "kpm33b/33B1225950027/seconds " + ProxyHarness.cleanRTData(second: $0) })
        let status = try #require(central.waitForStatus { $0["counters"]?["received"] == .integer(Int64(messages.count)) })
        let dropped = try #require(status["counters"]?["dropped"])
        var expected: [String: Int64] = ["duplicate": Int64(rounds)]
        for b in bad { expected[b.reason, default: 0] += Int64(rounds) }
        for (reason, count) in expected { #expect(dropped[reason] == .integer(count), "\(reason)") }
        #expect(status["counters"]?["forwarded"] == .integer(Int64(rounds)))
        #expect(h.proxy?.isRunning == true)
        // Logged with topic and reason, rate-limited.
        let malformedLines = h.proxyLog.split(separator: "\n").filter { $0.contains("reason=malformed") }
        #expect(malformedLines.count == 5)
        #expect(malformedLines.allSatisfy { $0.contains("topic=MQTT_RT_DATA") })
        // A wrong type names its meter, as all_zero and duplicate do.
        let wrongTypeLines = h.proxyLog.split(separator: "\n").filter { $0.contains("reason=wrong_type") }
        #expect(!wrongTypeLines.isEmpty)
        #expect(wrongTypeLines.allSatisfy { $0.contains("33B1225950027: 'zyggl' is a string, expected a number") }, "\(wrongTypeLines)")
        try stop(h)
    }

    @Test func brokenRulesStopStartUp() throws {
        let h = try ProxyHarness(copyRules: true)
        let pack = URL(fileURLWithPath: h.rules).appendingPathComponent("pack.yaml")
        try "pack: kpm33b\nroutes: {}\nbogus: 1\n".write(to: pack, atomically: true, encoding: .utf8)
        try h.startProxy(waitForSubscriptions: false)
        #expect(h.proxy?.wait(timeout: 10) == true)
        #expect(h.proxy?.exitStatus == 1)
        #expect(h.proxyLog.contains("pack.yaml:3:1: error[R001]: unknown key 'bogus'"))
    }

    /// SIGTERM, exit 0 within 5 s.
    private func stop(_ h: ProxyHarness, sourceLocation: SourceLocation = #_sourceLocation) throws {
        h.signalProxy(SIGTERM)
        #expect(h.proxy?.wait(timeout: 5) == true, sourceLocation: sourceLocation)
        #expect(h.proxy?.exitStatus == 0, "\(h.proxyLog)", sourceLocation: sourceLocation)
    }
}

/// The largest total size of the files in a directory, sampled every 2 ms on a thread of its own.
final class DirectorySizeSampler: @unchecked Sendable {
    private let state = NSLock()
    private var largest = 0
    private var running = true
    private let done = DispatchSemaphore(value: 0)

    init(directory: String) {
        Thread.detachNewThread { [self] in
            while state.withLock({ running }) {
                var size = 0
                for name in (try? FileManager.default.contentsOfDirectory(atPath: directory)) ?? [] where name.hasSuffix(".seg") {
                    var info = stat()
                    if stat(directory + "/" + name, &info) == 0 { size += Int(info.st_size) }
                }
                state.withLock { largest = max(largest, size) }
                usleep(2_000)
            }
            done.signal()
        }
    }

    /// Stops sampling; the largest size seen.
    func stop() -> Int {
        state.withLock { running = false }
        done.wait()
        return state.withLock { largest }
    }
}
