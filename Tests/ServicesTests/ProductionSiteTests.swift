import Foundation
import Glibc
import JSON
import MQTT
import Testing
import TestSupport
@testable import Services
@testable import ServicesFixtures

/// The whole system on the production configurations: both brokers run the
/// shipped configs and ACLs (`broker/internal`, `broker/central/mosquitto-production.conf`)
/// with throwaway accounts from `tools/broker-accounts`; `kpm33b-proxy`,
/// `config-sender` and `meter-sim` (three KPM33B and a KPM37 with its relay)
/// log in with them, as on a site. Home Assistant is a client with the
/// `homeassistant` account. Once without and once with TLS on every broker
/// link (the configs' shipped TLS listener, a CA made here with openssl).
@Suite(.serialized) struct ProductionSiteTests {
    static let meters = ["33B1225950027", "33B1225950028", "33B1225950029"]
    static let kpm37 = "37A1225950001"
    static let retired = "33B1225950029"

    @Test(.timeLimit(.minutes(4))) func theWholeSiteWorksOnTheProductionBrokerConfigurations() throws {
        try runSite(tls: nil)
    }

    @Test(.timeLimit(.minutes(4))) func theWholeSiteWorksWithTLSOnBothBrokerLinks() throws {
        try runSite(tls: try TestCertificates())
    }

    func runSite(tls: TestCertificates?) throws {
        let all = Self.meters + [Self.kpm37]
        let internalBroker = try TestBroker(.init(shipped: .init(.internal, accounts: all, tls: tls)))
        let centralBroker = try TestBroker(.init(shipped: .init(.central, tls: tls)))
        let directory = try senderTemporaryDirectory("production-site")
        defer { try? FileManager.default.removeItem(at: directory) }
        let configFile = directory.appendingPathComponent("config.yaml")
        func writeConfig(exclude: [String] = []) throws {
            func broker(_ b: TestBroker, _ name: String) -> String {
                """
                  \(name):
                    host: 127.0.0.1
                    port: \(tls == nil ? b.port : b.tlsPort!)
                    protocol: 5\(tls.map { "\n    tls: { ca_file: \($0.caFile) }" } ?? "")
                    clients:
                      proxy: { client_id: site-proxy, username: kpm33b-proxy, password_env: TEST_\(name.uppercased())_PROXY_PASSWORD }
                      config_sender: { client_id: site-config-sender, username: kpm33b-config, password_env: TEST_\(name.uppercased())_CONFIG_PASSWORD }
                """
            }
            try """
                root_topic: kpm33b
                brokers:
                \(broker(internalBroker, "internal"))
                \(broker(centralBroker, "central"))
                meters:
                  defaults:
                    settings: { upload_interval_seconds: 30, upload_interval_minutes: 1 }
                  "\(Self.kpm37)": { pack: kpm37 }
                exclude: [\(exclude.map { "\"\($0)\"" }.joined(separator: ", "))]
                homeassistant: { enabled: true }
                proxy:
                  status_interval_s: 1
                  clock_skew_threshold_s: 86400
                config_sender:
                  reply_timeout_s: 5

                """.write(to: configFile, atomically: true, encoding: .utf8)
        }
        try writeConfig()
        let passwords: [String: String?] = [
            "TEST_INTERNAL_PROXY_PASSWORD": internalBroker.password("kpm33b-proxy"),
            "TEST_INTERNAL_CONFIG_PASSWORD": internalBroker.password("kpm33b-config"),
            "TEST_CENTRAL_PROXY_PASSWORD": centralBroker.password("kpm33b-proxy"),
            "TEST_CENTRAL_CONFIG_PASSWORD": centralBroker.password("kpm33b-config"),
            "TEST_METER_PASSWORD": internalBroker.configuration.shipped?.meterPassword,
        ]
        #expect(!centralBroker.password("homeassistant").isEmpty)
        func log(_ name: String) -> String {
            (try? String(contentsOf: directory.appendingPathComponent(name), encoding: .utf8)) ?? ""
        }
        func options(_ user: String, _ broker: TestBroker) -> MQTTOptions {
            MQTTOptions(clientID: "test-\(user)-\(UUID().uuidString.prefix(6))", protocolVersion: .v5,
                        username: user, password: broker.password(user))
        }
        func meterOptions(_ id: String) -> MQTTOptions {
            MQTTOptions(clientID: "spy-\(UUID().uuidString.prefix(6))", protocolVersion: .v5,
                        username: String(id.suffix(8)), password: internalBroker.configuration.shipped?.meterPassword)
        }

        // Home Assistant, and a meter's account listening to everything it may.
        let homeAssistant = try TestSubscriber(endpoint: centralBroker.endpoint, filters: ["homeassistant/#", "kpm33b/#"],
                                               options: options("homeassistant", centralBroker))
        let meterSpy = try TestSubscriber(endpoint: internalBroker.endpoint, filters: ["#"], options: meterOptions(Self.meters[0]))

        let rules = senderPackageRoot.appendingPathComponent("rules").path
        let internalURL = tls == nil ? internalBroker.url : internalBroker.tlsURL!
        let proxy = try ChildProcess(executable: try #require(ProxyHarness.binary), arguments: [
            "--rules", rules, "--config", configFile.path, "--state-dir", directory.appendingPathComponent("proxy-state").path,
            "--log-level", "debug",
        ], environment: passwords, outputFile: directory.appendingPathComponent("proxy.log").path)
        defer { proxy.kill() }
        let sender = try ChildProcess(executable: try senderExecutable(), arguments: [
            "--rules", rules, "--config", configFile.path, "--state-dir", directory.appendingPathComponent("sender-state").path,
            "--log-level", "debug",
        ], environment: passwords, outputFile: directory.appendingPathComponent("config-sender.log").path)
        defer { sender.kill() }
        let cafile = tls.map { ["--cafile", $0.caFile] } ?? []
        let sim = try ChildProcess(executable: try senderBuiltExecutable("meter-sim"), arguments: [
            "--broker", internalURL, "--ids", Self.meters.joined(separator: ","), "--username-from-id",
            "--password-env", "TEST_METER_PASSWORD", "--seconds", "30", "--minutes", "1", "--time-scale", "30",
            "--journal", directory.appendingPathComponent("meters.journal").path, "--quiet",
        ] + cafile, environment: passwords, outputFile: directory.appendingPathComponent("meter-sim.log").path)
        defer { sim.kill() }
        // The KPM37's clock starts 20 s before midnight: its daily totals come within a second.
        let sim37 = try ChildProcess(executable: try senderBuiltExecutable("meter-sim"), arguments: [
            "--broker", internalURL, "--model", "kpm37", "--ids", Self.kpm37, "--username-from-id",
            "--password-env", "TEST_METER_PASSWORD", "--seconds", "30", "--minutes", "1", "--time-scale", "30",
            "--clock", "\(senderLocalDate().replacingOccurrences(of: "-", with: ""))235940",
            "--journal", directory.appendingPathComponent("kpm37.journal").path, "--quiet",
        ] + cafile, environment: passwords, outputFile: directory.appendingPathComponent("meter-sim-kpm37.log").path)
        defer { sim37.kill() }

        // The read-back completes at once (its echo arrives), long before the 15 s give-up.
        #expect(senderEventually(timeout: 12) { log("proxy.log").contains("msg=discovery_read_back") },
                     "\(log("proxy.log").suffix(3000))")
        if let tls {
            // Every service link is TLS: the services connected to the brokers' TLS listeners.
            #expect(log("proxy.log").contains("url=mqtts://127.0.0.1:\(internalBroker.tlsPort!)"))
            #expect(log("proxy.log").contains("url=mqtts://127.0.0.1:\(centralBroker.tlsPort!)"))
            #expect(FileManager.default.fileExists(atPath: tls.caFile))
        }

        // Every clean stream, one device config per meter, every meter configured.
        func received(_ topic: String) -> Bool { homeAssistant.messages.contains { $0.topic == topic && !$0.payload.isEmpty } }
        var streams = Self.meters.flatMap { ["kpm33b/\($0)/seconds", "kpm33b/\($0)/minutes"] }
        streams += ["seconds", "minutes", "daily", "io"].map { "kpm33b/\(Self.kpm37)/\($0)" }
        try #require(senderEventually(timeout: 60) { streams.allSatisfy(received) },
                     "missing: \(streams.filter { !received($0) }); \(log("proxy.log").suffix(3000))")
        try #require(senderEventually(timeout: 20) {
            all.allSatisfy { id in homeAssistant.messages.contains { $0.topic.hasPrefix("homeassistant/device/") && $0.topic.hasSuffix("_\(id)/config") } }
        }, "\(homeAssistant.messages.map(\.topic).filter { $0.hasPrefix("homeassistant/device/") })")
        for id in all {
            let configs = Set(homeAssistant.messages.filter { $0.topic.hasPrefix("homeassistant/device/") && $0.topic.hasSuffix("_\(id)/config") }
                .map(\.topic))
            #expect(configs.count == 1, "\(id): \(configs)")
            let config = try #require(homeAssistant.messages.last { configs.contains($0.topic) }?.json)
            #expect(config["dev"]?["serial_number"]?.stringValue == id)
        }
        func acknowledged(_ id: String) -> Bool {
            ["set_upload_interval_seconds", "set_upload_interval_minutes", "set_clock"].allSatisfy {
                log("config-sender.log").contains("msg=command_acknowledged meter=\(id) command=\($0) ")
            }
        }
        try #require(senderEventually(timeout: 60) { all.allSatisfy(acknowledged) }, "\(log("config-sender.log").suffix(3000))")

        // The health devices of both services, in full.
        for (device, node) in [(HealthDevice.proxy, "kpm33b_proxy"), (HealthDevice.configSender, "kpm33b_config_sender")] {
            for entity in device.entities {
                let topic = "homeassistant/\(entity.component)/\(node)/\(entity.object)/config"
                #expect(senderEventually(timeout: 10) { received(topic) }, "\(topic)")
            }
        }
        #expect(senderEventually(timeout: 10) { received("kpm33b/status") && received("kpm33b/config-sender/status") })

        // The relay path: Home Assistant asks, config-sender commands the meter, the confirmed state comes back.
        try #require(senderEventually(timeout: 20) { log("config-sender.log").contains("msg=meter_discovered meter=\(Self.kpm37)") })
        let haClient = try TestClient(endpoint: centralBroker.endpoint, options: options("homeassistant", centralBroker))
        try haClient.start()
        defer { haClient.stop() }
        try #require(haClient.waitUntilConnected(timeout: 10))
        _ = try haClient.publish(topic: "kpm33b/\(Self.kpm37)/relay/set", payload: Array("ON".utf8), qos: 1, retain: false)
        #expect(homeAssistant.waitFor(timeout: 30) { $0.topic == "kpm33b/\(Self.kpm37)/relay" && $0.payloadText == "ON" } != nil,
                "\(log("config-sender.log").suffix(2000))")

        // A meter's account reads its own commands and no other meter's.
        let spied = meterSpy.messages.map(\.topic)
        let own = String(Self.meters[0].suffix(8))
        #expect(spied.contains("MQTT_COMMOD_SET_\(own)"), "\(spied)")
        #expect(spied.allSatisfy { $0.hasSuffix("_\(own)") }, "\(spied)")

        // A service account cannot write what it does not own: the broker says no (MQTT 5).
        func refused(_ user: String, on broker: TestBroker, _ topic: String) throws -> Bool {
            let rejections = Recorder<String>()
            let connection = try TestClient(endpoint: broker.endpoint, options: options(user, broker))
            connection.onPublishRejected = { _, reason in rejections.append(reason) }
            try connection.start()
            defer { connection.stop() }
            guard connection.waitUntilConnected(timeout: 10) else { return false }
            _ = try connection.publish(topic: topic, payload: Array("forged-by-\(user)".utf8), qos: 1, retain: false)
            return senderEventually(timeout: 5) { rejections.values.contains { $0.lowercased().contains("not authori") } }
        }
        #expect(try refused("kpm33b-proxy", on: centralBroker, "kpm33b/\(Self.kpm37)/relay/set"))
        #expect(try refused("kpm33b-proxy", on: centralBroker, "kpm33b/\(Self.kpm37)/relay"))
        #expect(try refused("kpm33b-proxy", on: centralBroker, "homeassistant/status"))
        #expect(try refused("kpm33b-config", on: centralBroker, "kpm33b/\(Self.meters[0])/seconds"))
        #expect(try refused("kpm33b-config", on: centralBroker, "kpm33b/discovery/\(Self.meters[0])"))
        #expect(try refused("kpm33b-config", on: centralBroker, "homeassistant/device/kpm33b_\(Self.meters[0])/config"))
        #expect(try refused("kpm33b-proxy", on: internalBroker, "MQTT_COMMOD_SET_\(own)"))
        #expect(try refused("kpm33b-config", on: internalBroker, "MQTT_RT_DATA"))
        #expect(!homeAssistant.messages.contains { $0.payloadText.hasPrefix("forged-by-") })
        #expect(!meterSpy.messages.contains { $0.payloadText.hasPrefix("forged-by-") })

        // Nothing the services did was refused.
        for name in ["proxy.log", "config-sender.log"] {
            for word in ["read_back_incomplete", "subscription_refused", "publish_rejected", "command_refused", "not authori"] {
                #expect(!log(name).contains(word), "\(name): \(word)")
            }
        }

        // Retire a meter: the proxy stops, the meter is excluded, `retire` clears its configs.
        proxy.signal(SIGTERM)
        #expect(proxy.wait(timeout: 15) && proxy.exitStatus == 0)
        try writeConfig(exclude: [Self.retired])
        let retireLog = directory.appendingPathComponent("retire.log")
        let retire = try ChildProcess(executable: try #require(ProxyHarness.binary), arguments: [
            "retire", Self.retired, "--rules", rules, "--config", configFile.path,
        ], environment: passwords, outputFile: retireLog.path)
        #expect(retire.wait(timeout: 30) && retire.exitStatus == 0, "\(log("retire.log"))")
        #expect(log("retire.log").contains("msg=retired"))
        // config-sender forgets the meter once its discovery message is gone, and clears its Problem sensor.
        #expect(homeAssistant.waitFor(timeout: 10) {
            $0.topic.hasSuffix("_\(Self.retired)/problem/config") && $0.payload.isEmpty
        } != nil, "\(log("config-sender.log"))")
        #expect(homeAssistant.waitFor(timeout: 10) { $0.topic == "kpm33b/\(Self.retired)/problem" && $0.payload.isEmpty } != nil)
        #expect(homeAssistant.waitFor(timeout: 10) { $0.topic == "kpm33b/\(Self.retired)/configuration" && $0.payload.isEmpty } != nil)
        let afterwards = try TestSubscriber(endpoint: centralBroker.endpoint,
                                            filters: ["homeassistant/#", "kpm33b/discovery/+", "kpm33b/+/problem", "kpm33b/+/configuration", "kpm33b/+/silent"],
                                            options: options("homeassistant", centralBroker))
        // The retained messages of the other meters arrive; none of the retired one's.
        #expect(afterwards.waitFor(timeout: 10) { $0.topic.hasSuffix("_\(Self.meters[0])/config") } != nil)
        usleep(500_000)
        let left = afterwards.messages.filter { $0.topic.contains(Self.retired) }.map(\.topic)
        #expect(left.isEmpty, "retained after retire: \(left)")
        #expect(homeAssistant.messages.contains { $0.topic == "kpm33b/discovery/\(Self.retired)" && $0.payload.isEmpty })

        sender.signal(SIGTERM)
        #expect(sender.wait(timeout: 15) && sender.exitStatus == 0)
    }
}
