import Foundation
import Glibc
import JSON
import MQTT
import Testing
import TestSupport
import Services
@testable import ServicesFixtures

/// Discovery on the meters' broker, end to end: both brokers run their shipped
/// production configs and ACLs with accounts from `tools/broker-accounts`,
/// `kpm33b-proxy`, `config-sender` (`discovery_from: internal`) and `meter-sim`
/// log in with their accounts, and the central broker is stopped.
@Suite(.serialized) struct DiscoveryOnInternalTests {
    static let meter = "33B1225950027"
    static let short = String(meter.suffix(8))
    static let topic = "kpm33b/discovery/\(meter)"
    static let meterPassword = "meter-secret"

    static func config(internalPort: Int, centralPort: Int, exclude: [String] = []) -> String {
        """
        root_topic: kpm33b
        brokers:
          internal:
            host: 127.0.0.1
            port: \(internalPort)
            protocol: 5
            clients:
              proxy: { client_id: test-proxy, username: kpm33b-proxy, password_env: TEST_PROXY_PASSWORD }
              config_sender: { client_id: test-config-sender, username: kpm33b-config, password_env: TEST_CONFIG_PASSWORD }
          central:
            host: 127.0.0.1
            port: \(centralPort)
            protocol: 5
            clients:
              proxy: { client_id: test-proxy, username: kpm33b-proxy, password_env: TEST_CENTRAL_PROXY_PASSWORD }
              config_sender: { client_id: test-config-sender, username: kpm33b-config, password_env: TEST_CENTRAL_CONFIG_PASSWORD }
        meters:
          defaults:
            settings: { upload_interval_seconds: 60, upload_interval_minutes: 5 }
        exclude: [\(exclude.map { "\"\($0)\"" }.joined(separator: ", "))]
        homeassistant: { enabled: false }
        proxy:
          status_interval_s: 1
          clock_skew_threshold_s: 86400
        config_sender:
          discovery_from: internal
          reply_timeout_s: 1
          retries: 3

        """
    }

    /// A subscriber logged in as `user` with the password `tools/broker-accounts` gave it.
    static func subscriber(_ broker: TestBroker, as user: String, _ filters: [String]) throws -> TestSubscriber {
        try TestSubscriber(endpoint: broker.endpoint, filters: filters, options: MQTTOptions(
            clientID: "test-sub-\(UUID().uuidString.prefix(8))", protocolVersion: .v5,
            username: user, password: user == short ? meterPassword : broker.password(user)))
    }

    @Test func configSenderConfiguresAMeterFromTheInternalCopyWhileTheCentralBrokerIsStopped() throws {
        let directory = try senderTemporaryDirectory("discovery-internal")
        defer { try? FileManager.default.removeItem(at: directory) }
        let internalBroker = try TestBroker(.init(shipped: .init(.internal, accounts: [Self.meter], meterPassword: Self.meterPassword)))
        let centralBroker = try TestBroker(.init(shipped: .init(.central)))
        let passwords: [String: String?] = [
            "TEST_PROXY_PASSWORD": internalBroker.password("kpm33b-proxy"), "TEST_CONFIG_PASSWORD": internalBroker.password("kpm33b-config"),
            "TEST_CENTRAL_PROXY_PASSWORD": centralBroker.password("kpm33b-proxy"),
            "TEST_CENTRAL_CONFIG_PASSWORD": centralBroker.password("kpm33b-config"),
        ]
        let configFile = directory.appendingPathComponent("config.yaml")
        try Self.config(internalPort: internalBroker.port, centralPort: centralBroker.port)
            .write(to: configFile, atomically: true, encoding: .utf8)
        func log(_ name: String) -> String {
            (try? String(contentsOf: directory.appendingPathComponent(name), encoding: .utf8)) ?? ""
        }

        // The proxy connects to both brokers; then the central one stops.
        let proxyBinary = try #require(ProxyHarness.binary, "kpm33b-proxy is not built")
        let proxy = try ChildProcess(executable: proxyBinary, arguments: [
            "--rules", senderPackPath, "--config", configFile.path,
            "--state-dir", directory.appendingPathComponent("proxy-state").path, "--log-level", "debug",
        ], environment: passwords, outputFile: directory.appendingPathComponent("proxy.log").path)
        defer { proxy.kill() }
        try #require(senderEventually { log("proxy.log").components(separatedBy: "msg=connected").count == 3 }, "\(log("proxy.log"))")
        centralBroker.terminate()
        try #require(senderEventually { log("proxy.log").contains("msg=disconnected broker=central") }, "\(log("proxy.log"))")

        // A meter (meter-sim, with its own account) sends a reading every second.
        let live = try Self.subscriber(internalBroker, as: "kpm33b-config", ["kpm33b/discovery/+"])
        let meterJournal = directory.appendingPathComponent("meter-sim.journal")
        let sim = try ChildProcess(executable: try senderBuiltExecutable("meter-sim"), arguments: [
            "--broker", internalBroker.url, "--ids", Self.meter, "--username-from-id", "--password-env", "TEST_METER_PASSWORD",
            "--seconds", "30", "--minutes", "60", "--time-scale", "30", "--journal", meterJournal.path, "--quiet",
        ], environment: ["TEST_METER_PASSWORD": Self.meterPassword], outputFile: directory.appendingPathComponent("meter-sim.log").path)
        defer { sim.terminate() }

        // The discovery message reaches the internal broker, retained, with the central broker down.
        let announced = try #require(live.waitFor(timeout: 15) { $0.topic == Self.topic }, "\(log("proxy.log"))")
        let late = try Self.subscriber(internalBroker, as: "kpm33b-config", ["kpm33b/discovery/+"])
        let retained = try #require(late.waitFor(timeout: 5) { $0.topic == Self.topic })
        #expect(retained.retain)
        #expect(retained.payload == announced.payload)
        let document = try #require(retained.json)
        #expect(document["id"]?.stringValue == Self.meter)
        #expect(document["pack"]?.stringValue == "kpm33b")
        #expect(document["topics"]?["seconds"]?.stringValue == "kpm33b/\(Self.meter)/seconds")
        #expect(!centralBroker.isRunning)

        // A meter's account: the retained message is not delivered to it, and its publish is refused.
        let asMeter = try Self.subscriber(internalBroker, as: Self.short, ["kpm33b/#"])
        let refused = Recorder<String>()
        let meterConnection = try TestClient(endpoint: internalBroker.endpoint, options: MQTTOptions(
            clientID: "forger-\(UUID().uuidString.prefix(6))", protocolVersion: .v5,
            username: Self.short, password: Self.meterPassword))
        meterConnection.onPublishRejected = { _, reason in refused.append(reason) }
        try meterConnection.start()
        defer { meterConnection.stop() }
        try #require(meterConnection.waitUntilConnected(timeout: 5))
        try meterConnection.publish(topic: Self.topic, payload: Array(#"{"id":"33B1225950027","forged":true}"#.utf8), qos: 1, retain: true)
        try #require(senderEventually(timeout: 5) { !refused.values.isEmpty })
        #expect(refused.values.first?.lowercased().contains("not authori") == true, "\(refused.values)")
        usleep(500_000)
        #expect(asMeter.messages.isEmpty, "a meter received \(asMeter.messages.map(\.line))")
        #expect(!live.messages.contains { $0.payloadText.contains("forged") })

        // config-sender reads the internal copy and configures the meter, the central broker still stopped.
        let stateDirectory = directory.appendingPathComponent("sender-state")
        let sender = try ChildProcess(executable: try senderExecutable(), arguments: [
            "--rules", senderPackPath, "--config", configFile.path, "--state-dir", stateDirectory.path,
            "--log-level", "debug",
        ], environment: passwords,
           outputFile: directory.appendingPathComponent("config-sender.log").path)
        defer { sender.kill() }
        func acknowledgedDate() -> String? {
            let path = stateDirectory.appendingPathComponent(ConfigStateStore.fileName).path
            return (try? ConfigStateStore.readRecords(path: path))?[Self.meter]?.acknowledgedDate
        }
        try #require(senderEventually(timeout: 20) { acknowledgedDate() != nil }, "\(log("config-sender.log"))")
        #expect(acknowledgedDate() == senderLocalDate())
        let senderLog = log("config-sender.log")
        #expect(senderLog.contains("discovery_from=internal"))
        #expect(senderLog.contains("msg=meter_discovered") && senderLog.contains(Self.meter))
        #expect(!senderLog.contains("msg=connected broker=central"), "the central broker was stopped")
        let applied = log("meter-sim.journal").split(separator: "\n").filter { $0.hasPrefix("applied \(Self.meter) ") }
        #expect(applied.contains { $0.hasSuffix("seconds interval 60") }, "\(applied)")
        #expect(applied.contains { $0.hasSuffix("minutes interval 5") }, "\(applied)")
        #expect(!centralBroker.isRunning)

        // The central broker comes back: the same message arrives there from the journal.
        try centralBroker.restart()
        let central = try Self.subscriber(centralBroker, as: "homeassistant", ["kpm33b/discovery/+"])
        let onCentral = try #require(central.waitFor(timeout: 15) { $0.topic == Self.topic }, "\(log("proxy.log"))")
        let lastInternal = try #require(live.messages.last { $0.topic == Self.topic })
        #expect(onCentral.payload == lastInternal.payload)

        // Excluding the meter withdraws its discovery on both brokers; config-sender forgets it.
        try Self.config(internalPort: internalBroker.port, centralPort: centralBroker.port, exclude: [Self.meter])
            .write(to: configFile, atomically: true, encoding: .utf8)
        proxy.signal(SIGHUP)
        #expect(live.waitFor(timeout: 5) { $0.topic == Self.topic && $0.payload.isEmpty } != nil, "\(log("proxy.log"))")
        #expect(central.waitFor(timeout: 5) { $0.topic == Self.topic && $0.payload.isEmpty } != nil)
        #expect(senderEventually { log("config-sender.log").contains("msg=meter_forgotten meter=\(Self.meter)") },
                "\(log("config-sender.log"))")
        let afterwards = try Self.subscriber(internalBroker, as: "kpm33b-config", ["kpm33b/discovery/+"])
        #expect(afterwards.waitFor(timeout: 1) { _ in true } == nil, "no retained discovery is left on the internal broker")

        sender.signal(SIGTERM)
        proxy.signal(SIGTERM)
        #expect(sender.wait(timeout: 10) && sender.exitStatus == 0)
        #expect(proxy.wait(timeout: 10) && proxy.exitStatus == 0)
        #expect(!log("proxy.log").contains("msg=discovery_copy_refused"))
    }
}
