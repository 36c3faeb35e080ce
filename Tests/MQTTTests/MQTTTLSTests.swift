import Foundation
import Testing
import MQTT
import TestSupport

/// Client certificates (the server's certificate and its failures through the
/// loop are in `EventLoopTests`).
@Suite struct MQTTTLSTests {
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
        let anonymous = try TestClient(endpoint: endpoint, options: options)
        anonymous.onConnectionChange = { _, reason in events.append(reason) }
        try anonymous.start()
        #expect(events.waitFor(count: 2).count >= 2, "attempts are retried")
        #expect(!anonymous.isConnected)
        anonymous.stop()
    }
}
