import Foundation
import Glibc
import JSON
import MQTT
import SiteSettings
import Testing
import RuleEngine
import TestSupport
@testable import Services
@testable import ServicesFixtures

/// Several deployments side by side: `instance:` names each.
@Suite(.serialized)
struct ScaleOutTests {
    /// Two proxies, one per shard (each with its own internal broker), one
    /// central broker and one --state-dir: neither takes the other's session,
    /// status, health device, state or meters. The central broker runs its
    /// production config and ACL: both proxies log in as `kpm33b-proxy` and
    /// read each other's status (`kpm33b/status/+`).
    @Test func twoInstancesRunSideBySide() throws {
        // Shard a: its internal broker, and the central one.
        let h = try ProxyHarness(central: .init(shipped: .init(.central)))
        let internalB = try TestBroker(TestBroker.Configuration(extraLines: ["log_type subscribe"]))
        defer { internalB.stop() }
        let state = h.directory.appendingPathComponent("state").path
        func config(_ instance: String, internalPort: Int) throws -> String {
            let path = h.directory.appendingPathComponent("\(instance).yaml").path
            try """
                root_topic: kpm33b
                instance: \(instance)
                brokers:
                  internal: { host: 127.0.0.1, port: \(internalPort), protocol: 5, keepalive_s: 30 }
                  central:
                    host: 127.0.0.1
                    port: \(h.centralBroker.port)
                    protocol: 3.1.1
                    clients: { proxy: { username: kpm33b-proxy, password_env: TEST_CENTRAL_PROXY_PASSWORD } }
                meters:
                  defaults:
                    settings: { upload_interval_seconds: 60, upload_interval_minutes: 5 }
                homeassistant: { enabled: true }
                proxy: { status_interval_s: 1 }

                """.write(toFile: path, atomically: true, encoding: .utf8)
            return path
        }
        let central = try TestSubscriber(broker: h.centralBroker, filters: ["kpm33b/#", "homeassistant/#"], options: MQTTOptions(
            clientID: "ha-\(UUID().uuidString.prefix(6))", username: "homeassistant", password: h.centralBroker.password("homeassistant")))
        var proxies: [ChildProcess] = []
        defer { for p in proxies { p.kill() } }
        for (instance, broker) in [("a", h.internalBroker), ("b", internalB)] {
            proxies.append(try ChildProcess(
                executable: try #require(ProxyHarness.binary),
                arguments: ["--rules", h.rules, "--config", try config(instance, internalPort: broker.port), "--state-dir", state],
                environment: ["TEST_CENTRAL_PROXY_PASSWORD": h.centralBroker.password("kpm33b-proxy")],
                outputFile: h.directory.appendingPathComponent("\(instance).log").path))
        }
        for (instance, broker) in [("a", h.internalBroker), ("b", internalB)] {
            let deadline = Date(timeIntervalSinceNow: 10)
            while !broker.log.contains("kpm33b-proxy-\(instance) 1 MQTT_ENY_NOW") && Date() < deadline { usleep(10_000) }
        }
        // One meter on each shard.
        try h.publish("MQTT_RT_DATA", try ProxyHarness.rtData(second: 0, id: "33B1225950027"))
        let meterB = try TestClient(endpoint: internalB.endpoint, options: MQTTOptions(clientID: "meter-b"))
        try meterB.start()
        #expect(meterB.waitUntilConnected(timeout: 5))
        _ = try meterB.publish(topic: "MQTT_RT_DATA", payload: Array(try ProxyHarness.rtData(second: 0, id: "33B1225950028").utf8),
                               qos: 1, retain: false)
        #expect(central.waitForData(count: 2).count == 2)

        // Their own statuses, online, and their own health devices.
        for instance in ["a", "b"] {
            let status = central.waitFor(timeout: 5) { $0.topic == "kpm33b/status/\(instance)" && $0.json?["state"] == "online" }
            #expect(status != nil, "kpm33b/status/\(instance)")
            #expect(central.waitFor(timeout: 5) { $0.topic.hasPrefix("homeassistant/sensor/kpm33b_proxy_\(instance)/") } != nil)
        }
        #expect(!central.messages.contains { $0.topic == "kpm33b/status" })
        // Each meter announced by its instance, its entities available with that instance's status.
        for (id, instance) in [("33B1225950027", "a"), ("33B1225950028", "b")] {
            let discovery = central.waitFor(timeout: 5) { $0.topic == "kpm33b/discovery/\(id)" && !$0.payload.isEmpty }
            #expect(discovery?.json?["instance"] == .string(instance))
            let device = central.waitFor(timeout: 5) { $0.topic == "homeassistant/device/kpm33b_\(id)/config" && !$0.payload.isEmpty }
            #expect(device?.json?["availability"]?.arrayValue?.first?["topic"] == .string("kpm33b/status/\(instance)"))
        }
        // Separate state, and no session taken over: each client id connected once, never kicked.
        for instance in ["a", "b"] {
            #expect(FileManager.default.fileExists(atPath: "\(state)/\(instance)/journal"))
        }
        #expect(!FileManager.default.fileExists(atPath: "\(state)/journal"))
        let centralLog = h.centralBroker.log
        for instance in ["a", "b"] {
            #expect(centralLog.components(separatedBy: "as kpm33b-proxy-\(instance) ").count == 2, "\(centralLog)")
        }
        #expect(!centralLog.contains("already connected"))
        // Neither cleared the other's meter.
        #expect(!central.messages.contains { $0.payload.isEmpty })
        for p in proxies {
            p.signal(SIGTERM)
            #expect(p.wait(timeout: 5) && p.exitStatus == 0)
        }
        meterB.stop()
    }

    /// `config_sender.partition`: N config senders split the meters with no
    /// coordination, each meter to exactly one, by FNV-1a 64 of its id.
    @Test func partitionsSplitTheMetersExactlyOnce() throws {
        #expect(FNV1a64.hash("a".utf8) == 0xaf63_dc4c_8601_ec8c)  // the published test vector
        #expect(Partition("1/3") == Partition("1/3") && Partition("1/3")?.count == 3)
        for bad in ["3/3", "-1/3", "1/0", "1", "a/b", "1/3/4"] { #expect(Partition(bad) == nil, "\(bad)") }
        let ids = (0..<3000).map { String(format: "33B12259%05d", $0) }
        let partitions = (0..<3).map { Partition("\($0)/3")! }
        var sizes = [0, 0, 0]
        for id in ids {
            let owners = partitions.indices.filter { partitions[$0].contains(id) }
            #expect(owners.count == 1)
            sizes[owners[0]] += 1
        }
        #expect(sizes.allSatisfy { $0 > 900 }, "\(sizes)")
    }

    /// The hand-over rule: a meter whose retained discovery names another
    /// instance stays that instance's while it hears the meter; readings are
    /// forwarded all along; it is taken over once the owner declares the
    /// meter silent (`<root>/<id>/silent`) or the owner has no status. The
    /// new owner declares it silent in turn when it stops hearing it, and
    /// clears that when it hears it again.
    @Test func aMeterOfAnotherInstanceIsTakenOverOnlyWhenItsOwnerStopsHearingIt() throws {
        let f = try CoreFixture(homeAssistant: true)
        let program = try loadProgram("""
            root_topic: kpm33b
            instance: b
            homeassistant: { enabled: true }
            meters:
              defaults:
                settings: { upload_interval_seconds: 60, upload_interval_minutes: 5 }

            """, in: f.directory, file: "b.yaml")
        f.core.journal.close()
        f.core = try CoreFixture.makeCore(program: program, directory: f.directory + "/b", maxBytes: 1 << 30)
        f.core.transport = f.transport
        let (meter, orphan) = ("33B1225950027", "33B1225950028")
        f.connectCentral(retained: [
            ("kpm33b/discovery/\(meter)", #"{"id":"\#(meter)","pack":"kpm33b","instance":"a"}"#),
            ("kpm33b/discovery/\(orphan)", #"{"id":"\#(orphan)","pack":"kpm33b","instance":"c"}"#),
        ])
        var online = ProxyStatus(state: "online")
        online.started = "2026-01-12T16:00:00Z"
        online.time = "2026-01-12T16:40:00Z"
        #expect(ProxyStatus(payload: online.payload) == online)
        let now = Instant(epochMillis: 1_768_235_940_000)
        f.core.peerStatus(instance: "a", PeerStatus(document: online.payload), now: now)
        try f.receive(second: 0)
        try f.receive(second: 0, id: orphan)
        f.endIteration()
        #expect(f.transport.data.count == 2, "readings are forwarded whoever announces the meter")
        #expect(!f.transport.published.contains { $0.retain && $0.topic.contains(meter) }, "a's meter is not announced: \(f.transport.published.filter { $0.retain }.map { $0.topic + " " + $0.payload.prefix(60) })")
        #expect(f.transport.published.contains { $0.topic == "kpm33b/discovery/\(orphan)" && $0.payload.contains(#""instance":"b""#) },
                "c has no status: its meter is taken over")
        #expect(f.core.statistics.ownedElsewhere == 1)
        // Another instance's word on a meter it does not own changes nothing.
        f.core.meterSilence(id: meter, MeterSilence(instance: "c", lastSeen: nil), now: now)
        f.endIteration()
        #expect(!f.transport.published.contains { $0.topic == "kpm33b/discovery/\(meter)" })

        // a says it has not heard the meter for longer than allowed (60 s × 3): taken over.
        let silence = MeterSilence(instance: "a", lastSeen: "2026-01-12T16:39:00Z")
        #expect(MeterSilence(payload: silence.payload) == silence)
        #expect(MeterSilence.id(inTopic: MeterSilence.topic(root: "kpm33b", id: meter), root: "kpm33b") == meter)
        f.core.meterSilence(id: meter, silence, now: now)
        f.endIteration()
        let discovery = f.transport.published.first { $0.topic == "kpm33b/discovery/\(meter)" }
        #expect(discovery?.payload.contains(#""instance":"b""#) == true)
        let device = f.transport.published.first { $0.topic == "homeassistant/device/kpm33b_\(meter)/config" }
        #expect(device?.payload.contains(#""topic":"kpm33b/status/b""#) == true, "its availability follows b now")

        // b owns both now; heard at 16:39, allowed 180 s: nothing to say at 16:40, both silent at 16:45.
        f.connectCentral(false)
        f.connectCentral(retained: f.transport.published.filter { $0.retain && $0.topic.hasPrefix("kpm33b/discovery/") }
            .map { ($0.topic, $0.payload) })
        #expect(f.core.silenceChanges(now: now.adding(seconds: 60), started: now).isEmpty)
        let silent = f.core.silenceChanges(now: now.adding(seconds: 360), started: now)
        #expect(silent.map(\.topic) == ["kpm33b/\(meter)/silent", "kpm33b/\(orphan)/silent"])
        #expect(silent.first.flatMap { MeterSilence(payload: $0.payload) } == MeterSilence(instance: "b", lastSeen: "2026-01-12T16:39:00Z"))
        #expect(f.core.silenceChanges(now: now.adding(seconds: 420), started: now).isEmpty, "said once")
        // The meter is heard again: its declaration is cleared.
        let again = Array(try ProxyHarness.rtData(second: 1, id: meter).utf8)
        again.withUnsafeBytes { f.core.received(topic: "MQTT_RT_DATA", payload: $0, now: now.adding(seconds: 480)) }
        f.endIteration()
        let heard = f.core.silenceChanges(now: now.adding(seconds: 490), started: now)
        #expect(heard.map(\.topic) == ["kpm33b/\(meter)/silent"] && heard.first?.payload.isEmpty == true)
    }
}
