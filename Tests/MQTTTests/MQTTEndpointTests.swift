import Testing
import MQTT

@Suite struct MQTTEndpointTests {
    @Test func parsesPlainAndTLS() throws {
        #expect(try MQTTEndpoint.parse("mqtt://broker.local") == MQTTEndpoint(host: "broker.local", port: 1883, tls: false))
        #expect(try MQTTEndpoint.parse("mqtt://10.0.0.5:1884") == MQTTEndpoint(host: "10.0.0.5", port: 1884, tls: false))
        #expect(try MQTTEndpoint.parse("mqtts://central") == MQTTEndpoint(host: "central", port: 8883, tls: true))
        #expect(try MQTTEndpoint.parse("mqtts://central:443/") == MQTTEndpoint(host: "central", port: 443, tls: true))
        #expect(try MQTTEndpoint.parse("mqtt://[::1]:1883") == MQTTEndpoint(host: "::1", port: 1883, tls: false))
        #expect(try MQTTEndpoint.parse("mqtt://[fe80::1]") == MQTTEndpoint(host: "fe80::1", port: 1883, tls: false))
    }

    @Test(arguments: [
        "", "broker:1883", "tcp://broker", "http://broker", "mqtt://", "mqtt://:1883",
        "mqtt://host:0", "mqtt://host:65536", "mqtt://host:12ab", "mqtt://host:",
        "mqtt://user:secret@host", "mqtt://host/path", "mqtt://host?x=1", "mqtt://[::1",
    ])
    func rejects(url: String) {
        #expect(throws: MQTTError.self) { try MQTTEndpoint.parse(url) }
    }

    @Test func rejectionSaysWhy() {
        do {
            _ = try MQTTEndpoint.parse("mqtt://user:pw@host")
            Issue.record("expected an error")
        } catch {
            #expect(error.code == .invalidArgument)
            #expect(error.description.contains("user information"))
        }
    }

    @Test func description() throws {
        #expect(try MQTTEndpoint.parse("mqtts://h").description == "mqtts://h:8883")
        #expect(MQTTEndpoint(host: "::1", port: 1, tls: false).description == "mqtt://[::1]:1")
    }
}

@Suite struct MQTTOptionsTests {
    @Test func passwordNeverPrinted() {
        let options = MQTTOptions(clientID: "c", username: "u", password: "hunter2")
        var dumped = ""
        dump(options, to: &dumped)
        #expect(!options.description.contains("hunter2"))
        #expect(!String(describing: options).contains("hunter2"))
        #expect(!String(reflecting: options).contains("hunter2"))
        #expect(!dumped.contains("hunter2"))
        #expect(options.description.contains("<redacted>"))
    }
}
