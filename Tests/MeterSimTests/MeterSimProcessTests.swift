import Foundation
import Testing
import JSON
import MQTT
import TestSupport
@testable import meter_sim

/// The built `meter-sim` binary against a real broker.
@Suite struct MeterSimProcessTests {
    final class Run {
        let directory: URL
        let process: ChildProcess
        var journalPath: String { directory.appendingPathComponent("journal.log").path }
        var journal: String { (try? String(contentsOfFile: journalPath, encoding: .utf8)) ?? "" }
        var output: String {
            (try? String(contentsOfFile: directory.appendingPathComponent("out.log").path, encoding: .utf8)) ?? ""
        }

        init(_ arguments: [String], environment: [String: String?] = [:]) throws {
            let binary = try #require(builtProduct(named: "meter-sim"),
                                      "meter-sim was not built next to the test bundle (swift build --build-tests)")
            directory = FileManager.default.temporaryDirectory.appendingPathComponent("meter-sim-\(UUID().uuidString.prefix(8))")
            try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
            process = try ChildProcess(executable: binary,
                                       arguments: arguments + ["--journal", directory.appendingPathComponent("journal.log").path],
                                       environment: environment,
                                       outputFile: directory.appendingPathComponent("out.log").path)
        }

        deinit {
            process.kill()
            try? FileManager.default.removeItem(at: directory)
        }

        func waitForJournal(_ text: String, timeout: Double = 10) -> Bool {
            waitUntil(timeout: timeout) { journal.contains(text) }
        }
    }

    static let oprid = "0123456789abcdef0123456789abcdef"

    func reply(_ messages: [MQTTMessage], oprid: String) -> JSONValue? {
        messages.lazy.compactMap { try? JSONValue.parse($0.payload) }.first { $0["oprid"]?.stringValue == oprid }
    }

    @Test func payloadsAndCommands() throws {
        let broker = try TestBroker()
        let watcher = try TestSubscriber(broker: broker, filters: [
            "MQTT_RT_DATA", "MQTT_ENY_NOW", "MQTT_COMMOD_SET_REP", "MQTT_COMMOD_READ_REP"])
        let run = try Run(["--broker", broker.url, "--ids", "33B1225950027", "--seconds", "30", "--minutes", "1",
                           "--time-scale", "60", "--seed", "42", "--for", "60", "--quiet"])
        try #require(run.waitForJournal("subscribed 33B1225950027"), "journal: \(run.journal)\noutput: \(run.output)")

        // Data: the real meter's keys, order and decimals.
        let rt = try #require(watcher.waitFor { $0.topic == "MQTT_RT_DATA" })
        #expect(shape(rt.payloadText) == shape(RealCapture.realTime))
        #expect(rt.qos == 1)
        let energy = try #require(watcher.waitFor { $0.topic == "MQTT_ENY_NOW" })
        #expect(shape(energy.payloadText) == shape(RealCapture.energy))
        #expect(run.journal.contains("sent MQTT_RT_DATA \(rt.payloadText)"))

        // Commands, in order on one topic: the meter answers in order, so once
        // the last reply is in, the first command was decided too.
        let platform = try connected(broker.endpoint, testOptions("platform"))
        defer { platform.stop() }
        let short31 = String(Self.oprid.dropLast())
        let disallowed = "b" + Self.oprid.dropFirst(), valid = "c" + Self.oprid.dropFirst(), read = "d" + Self.oprid.dropFirst()
        for payload in [#"{"oprid":"\#(short31)","Cmd":"0000","value":"300","types":"1"}"#,
                        #"{"oprid":"\#(disallowed)","Cmd":"0000","value":"45","types":"1"}"#,
                        #"{"oprid":"\#(valid)","Cmd":"0000","value":"300","types":"1"}"#] {
            try platform.publish(topic: "MQTT_COMMOD_SET_25950027", payload: bytes(payload), qos: 1, retain: false)
        }
        try platform.publish(topic: "MQTT_COMMOD_READ_25950027",
                             payload: bytes(#"{"oprid":"\#(read)","Cmd":"0000","types":"1"}"#), qos: 1, retain: false)
        _ = watcher.waitFor { $0.topic == "MQTT_COMMOD_READ_REP" }
        let replies = watcher.messages.filter { $0.topic.hasSuffix("_REP") }

        let ok = try #require(reply(replies, oprid: valid))
        #expect(ok == .object([("id", .string("33B1225950027")), ("oprid", .string(valid)), ("code", .string("01"))]))
        let refused = try #require(reply(replies, oprid: disallowed))
        #expect(refused["code"]?.stringValue == "02")
        #expect(refused["msg"]?.stringValue?.contains("45") == true)
        #expect(reply(replies, oprid: short31) == nil)
        #expect(run.journal.contains("ignored MQTT_COMMOD_SET_25950027 oprid has 31 characters"))
        #expect(reply(replies, oprid: read)?["value"]?.stringValue == "300")
        #expect(run.journal.contains("applied 33B1225950027 seconds interval 300"))

        // SIGTERM: a clean stop.
        run.process.terminate()
        #expect(run.process.exitStatus == 0)
        #expect(run.journal.split(separator: "\n").last?.hasPrefix("stopped signal SIGTERM") == true)
    }

    @Test func credentialsFromIdAndEnvironmentWithBrokerACL() throws {
        let broker = try TestBroker(TestBroker.Configuration(
            users: ["25950027": "meter-secret", "platform": "platform-secret"],
            acl: ["user platform", "topic readwrite #",
                  "pattern write MQTT_RT_DATA", "pattern write MQTT_ENY_NOW",
                  "pattern write MQTT_COMMOD_SET_REP", "pattern write MQTT_METER_TIME_REP",
                  "pattern write MQTT_COMMOD_READ_REP",
                  "pattern read MQTT_COMMOD_SET_%u", "pattern read MQTT_SETTIME_%u", "pattern read MQTT_COMMOD_READ_%u"]))
        let platformOptions = testOptions("platform", username: "platform", password: "platform-secret")
        let watcher = try TestSubscriber(broker: broker, filters: ["MQTT_ENY_NOW", "MQTT_METER_TIME_REP"],
                                         options: platformOptions)
        let run = try Run(["--broker", broker.url, "--ids", "33B1225950027", "--username-from-id",
                           "--password-env", "TEST_METER_PASSWORD", "--wrong-clock", "33B1225950027",
                           "--minutes", "1", "--time-scale", "60", "--for", "30", "--quiet"],
                          environment: ["TEST_METER_PASSWORD": "meter-secret"])
        try #require(run.waitForJournal("subscribed 33B1225950027"), "journal: \(run.journal)\noutput: \(run.output)")
        let early = try #require(watcher.waitFor { $0.topic == "MQTT_ENY_NOW" })
        #expect(early.payloadText.contains(#""time":"2005"#))

        var options = platformOptions
        options.clientID += "-pub"
        let platform = try connected(broker.endpoint, options)
        defer { platform.stop() }
        try platform.publish(topic: "MQTT_SETTIME_25950027",
                             payload: bytes(#"{"oprid":"\#(Self.oprid)","time":"20260117211500"}"#), qos: 1, retain: false)
        let answer = try #require(watcher.waitFor { $0.topic == "MQTT_METER_TIME_REP" })
        #expect(answer.payloadText == #"{"id":"33B1225950027","oprid":"\#(Self.oprid)","code":"01","msg":"time set"}"#)
        // From now on the meter's clock is right.
        let later = try #require(watcher.waitFor { $0.topic == "MQTT_ENY_NOW" && $0.payloadText.contains(#""time":"2026011721"#) })
        #expect(later.payloadText.hasPrefix(#"{"id":"33B1225950027""#))
        run.process.terminate()
        #expect(run.process.exitStatus == 0)
    }
}
