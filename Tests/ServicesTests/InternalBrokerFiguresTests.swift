import Foundation
import Glibc
import JSON
import MQTT
import Testing
import TestSupport
@testable import Services
@testable import ServicesFixtures

/// What "nothing lost" cannot see by itself, shown in the proxy's status: the
/// meters' broker's own drops and store (`$SYS`, read through the shipped ACL,
/// which allows the proxy exactly those figures), and readings that arrived
/// at QoS 0.
@Suite(.serialized) struct InternalBrokerFiguresTests {
    typealias Accounts = DiscoveryOnInternalTests

    @Test func theMetersBrokersDropsAndStoreAndQoS0ReadingsAreInTheStatus() throws {
        let directory = try senderTemporaryDirectory("internal-figures")
        defer { try? FileManager.default.removeItem(at: directory) }
        // A small queue limit, figures every second.
        let internalBroker = try TestBroker(.init(
            extraLines: ["sys_interval 1", "max_queued_messages 5"],
            shipped: .init(.internal, accounts: [Accounts.meter], meterPassword: Accounts.meterPassword)))
        let centralBroker = try TestBroker(.init(shipped: .init(.central)))
        func password(_ user: String) -> String { user == Accounts.short ? Accounts.meterPassword : internalBroker.password(user) }
        let configFile = directory.appendingPathComponent("config.yaml")
        try Accounts.config(internalPort: internalBroker.port, centralPort: centralBroker.port)
            .write(to: configFile, atomically: true, encoding: .utf8)
        func log() -> String { (try? String(contentsOf: directory.appendingPathComponent("proxy.log"), encoding: .utf8)) ?? "" }
        let status = try TestSubscriber(broker: centralBroker, filters: ["kpm33b/status"], options: MQTTOptions(
            clientID: "status-\(UUID().uuidString.prefix(6))", username: "homeassistant", password: centralBroker.password("homeassistant")))
        func lastStatus() -> JSONValue? { status.messages.last.flatMap { try? JSONValue.parse($0.payload) } }
        /// The health device's problem sensor reads these.
        func problems() -> [String] { lastStatus()?["problems"]?.arrayValue?.compactMap(\.stringValue) ?? [] }

        let proxy = try ChildProcess(executable: try #require(ProxyHarness.binary, "kpm33b-proxy is not built"), arguments: [
            "--rules", senderPackPath, "--config", configFile.path,
            "--state-dir", directory.appendingPathComponent("proxy-state").path, "--log-level", "debug",
        ], environment: ["TEST_PROXY_PASSWORD": password("kpm33b-proxy"),
                         "TEST_CENTRAL_PROXY_PASSWORD": centralBroker.password("kpm33b-proxy")], outputFile: directory.appendingPathComponent("proxy.log").path)
        defer { proxy.kill() }
        try #require(senderEventually { log().components(separatedBy: "msg=connected").count == 3 }, "\(log())")
        try #require(senderEventually { lastStatus()?["internal_broker"]?["stored_messages"]?.intValue != nil }, "\(log())")
        #expect(lastStatus()?["internal_broker"]?["dropped"]?.intValue == 0)
        #expect(lastStatus()?["counters"]?["received_qos0"]?.intValue == 0)
        #expect(problems().isEmpty)

        // A meter away with a persistent session: the broker queues 5 of the 20
        // commands sent to it and drops the rest.
        func connect(_ user: String, clientID: String, clean: Bool = true) throws -> TestClient {
            let c = try TestClient(endpoint: internalBroker.endpoint, options: MQTTOptions(
                clientID: clientID, cleanSession: clean, protocolVersion: .v5, username: user, password: password(user)))
            try c.start()
            try #require(c.waitUntilConnected(timeout: 5))
            return c
        }
        let away = try connect(Accounts.short, clientID: "meter-away", clean: false)
        try away.subscribe("MQTT_COMMOD_SET_\(Accounts.short)", qos: 1)
        try #require(away.waitUntilSubscribed(timeout: 5))
        away.stop()
        let sender = try connect("kpm33b-config", clientID: "sender")
        defer { sender.stop() }
        for i in 0..<20 {
            try sender.publish(topic: "MQTT_COMMOD_SET_\(Accounts.short)", payload: Array(#"{"n":\#(i)}"#.utf8), qos: 1, retain: false)
        }
        try #require(senderEventually { (lastStatus()?["internal_broker"]?["dropped"]?.intValue ?? 0) >= 15 },
                     "\(String(decoding: status.messages.last?.payload ?? [], as: UTF8.self))")
        #expect(senderEventually { log().contains("msg=internal_broker_dropped") })
        #expect(senderEventually { problems().contains { $0.hasPrefix("internal_broker_dropped: ") } }, "\(problems())")
        #expect((lastStatus()?["internal_broker"]?["stored_bytes"]?.intValue ?? 0) > 0)

        // A meter that publishes at QoS 0: counted and warned about, still forwarded.
        let meter = try connect(Accounts.short, clientID: "meter-qos0")
        defer { meter.stop() }
        let reading = #"{"id":"33B1225950027","zygsz":163.486,"fwgsz":11.085,"time":"20260112160000","isend":"1"}"#
        try meter.publish(topic: "MQTT_ENY_NOW", payload: Array(reading.utf8), qos: 0, retain: false)
        try #require(senderEventually { lastStatus()?["counters"]?["received_qos0"]?.intValue == 1 }, "\(log())")
        #expect(log().contains("msg=reading_at_qos0"))
        #expect(senderEventually { problems().contains { $0.hasPrefix("readings_qos0: 1 readings") } }, "\(problems())")

        // The proxy's account reads exactly these figures of $SYS, nothing else.
        let asProxy = try TestSubscriber(endpoint: internalBroker.endpoint, filters: ["$SYS/#"], qos: 0, options: MQTTOptions(
            clientID: "as-proxy", protocolVersion: .v5, username: "kpm33b-proxy", password: password("kpm33b-proxy")))
        usleep(2_500_000)
        #expect(Set(asProxy.messages.map(\.topic)) == [
            "$SYS/broker/publish/messages/dropped", "$SYS/broker/store/messages/count", "$SYS/broker/store/messages/bytes",
        ])
        #expect(!log().contains("msg=subscription_refused"), "\(log())")
        proxy.signal(SIGTERM)
        #expect(proxy.wait(timeout: 10) && proxy.exitStatus == 0)
    }

    /// The first `dropped` is the broker's since its start (before the proxy
    /// watched); a smaller one is a restarted broker counting from 0 again.
    @Test func dropsWhileWatchedSurviveABrokerRestart() {
        var figures = InternalBrokerFigures()
        func take(_ topic: String, _ value: String) -> (key: String, previous: Int?, value: Int)? {
            Array(value.utf8).withUnsafeBytes { figures.take(topic: topic, payload: $0) }
        }
        let dropped = "$SYS/broker/publish/messages/dropped"
        #expect(take(dropped, "40")?.previous == nil)
        #expect(figures.droppedWhileWatched == 0)
        _ = take(dropped, "45")
        _ = take(dropped, "3")  // the broker restarted
        _ = take(dropped, "10")
        #expect(figures.droppedWhileWatched == 15)
        #expect(take(dropped, "x") == nil)
        #expect(take("$SYS/broker/clients/connected", "1") == nil)
        _ = take("$SYS/broker/store/messages/bytes", "2048")
        #expect(figures.document == ["dropped": 10, "stored_messages": .null, "stored_bytes": 2048])
    }
}
