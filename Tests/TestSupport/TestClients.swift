import Foundation
import MQTT
import Testing

/// The tests' MQTT clients and waits, shared by the MQTT and meter-sim tests.

/// Options for a test client: a unique id and fast reconnects.
public func testOptions(_ name: String, version: MQTTProtocolVersion = .v311, clean: Bool = true,
                        will: MQTTWill? = nil, username: String? = nil, password: String? = nil) -> MQTTOptions {
    MQTTOptions(clientID: "\(name)-\(UUID().uuidString.prefix(6))", cleanSession: clean, protocolVersion: version,
                keepAliveSeconds: 10, username: username, password: password, will: will,
                reconnectMinSeconds: 0.1, reconnectMaxSeconds: 0.5)
}

/// A started client that is connected (or the test fails).
public func connected(_ endpoint: MQTTEndpoint, _ options: MQTTOptions) throws -> TestClient {
    let connection = try TestClient(endpoint: endpoint, options: options)
    try connection.start()
    try #require(connection.waitUntilConnected(timeout: 5), "client \(options.clientID) did not connect")
    return connection
}

public func bytes(_ text: String) -> [UInt8] { Array(text.utf8) }

/// Polls `condition` every 10 ms until it holds or `timeout` seconds passed.
public func waitUntil(timeout: Double, _ condition: () -> Bool) -> Bool {
    let deadline = Date(timeIntervalSinceNow: timeout)
    while Date() < deadline {
        if condition() { return true }
        Thread.sleep(forTimeInterval: 0.01)
    }
    return condition()
}
