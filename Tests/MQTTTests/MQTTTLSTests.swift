import Foundation
import Testing
import MQTT
import TestSupport

@Suite struct MQTTTLSTests {
    @Test func serverCertificateVerifiedWithCAFile() throws {
        let certificates = try TestCertificates()
        let broker = try TestBroker(TestBroker.Configuration(
            extraLines: certificates.listenerLines(requireClientCertificate: false)))
        let endpoint = MQTTEndpoint(host: "127.0.0.1", port: broker.port, tls: true)

        var options = testOptions("tls")
        options.tls = MQTTTLS(caFile: certificates.caFile)
        let subscriber = try TestSubscriber(endpoint: endpoint, filters: ["tls/#"], options: options)
        options.clientID += "-pub"
        let publisher = try connected(endpoint, options)
        defer { publisher.stop() }
        try publisher.publish(topic: "tls/x", payload: bytes("secret"), qos: 1, retain: false)
        #expect(subscriber.waitFor(count: 1).first?.payloadText == "secret")

        // The system trust store does not know our test CA: every attempt fails
        // the handshake, says so, and is retried (libmosquitto's own thread
        // would have ended silently after the first).
        let events = Recorder<String>()
        let stranger = try MQTTConnection(endpoint: endpoint, options: testOptions("stranger"))
        stranger.onConnectionChange = { _, reason in events.append(reason) }
        try stranger.start()
        let reasons = events.waitFor(count: 3)
        #expect(reasons.count >= 3)
        #expect(reasons.allSatisfy { $0.contains("certificate verify failed") }, "\(reasons)")
        #expect(!stranger.isConnected)
        stranger.stop()
    }

    @Test func clientCertificate() throws {
        let certificates = try TestCertificates()
        let broker = try TestBroker(TestBroker.Configuration(
            extraLines: certificates.listenerLines(requireClientCertificate: true)))
        let endpoint = MQTTEndpoint(host: "127.0.0.1", port: broker.port, tls: true)

        var options = testOptions("mtls")
        options.tls = MQTTTLS(caFile: certificates.caFile, certFile: certificates.clientCertFile,
                              keyFile: certificates.clientKeyFile)
        let client = try connected(endpoint, options)
        client.stop()

        options.tls = MQTTTLS(caFile: certificates.caFile)
        let events = Recorder<String>()
        let anonymous = try MQTTConnection(endpoint: endpoint, options: options)
        anonymous.onConnectionChange = { _, reason in events.append(reason) }
        try anonymous.start()
        #expect(events.waitFor(count: 2).count >= 2, "attempts are retried")
        #expect(!anonymous.isConnected)
        anonymous.stop()
    }
}
