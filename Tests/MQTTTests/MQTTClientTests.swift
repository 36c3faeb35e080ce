import Foundation
import Testing
import MQTT
import TestSupport

/// The event-loop client through `TestClient` (each on a loop of its own):
/// what `EventLoopTests` does not already cover.
@Suite struct MQTTClientTests {
    @Test(arguments: [MQTTProtocolVersion.v311, .v5])
    func roundTripQoS0AndQoS1(version: MQTTProtocolVersion) throws {
        let broker = try TestBroker()
        let subscriber = try TestSubscriber(broker: broker, filters: ["t/#"],
                                            options: testOptions("sub", version: version))
        let publisher = try connected(broker.endpoint, testOptions("pub", version: version))
        defer { publisher.stop() }
        let acks = Recorder<Int32>()
        publisher.onPublished = { acks.append($0) }

        try publisher.publish(topic: "t/zero", payload: bytes("q0"), qos: 0, retain: false)
        let mid = try publisher.publish(topic: "t/one", payload: [0, 1, 2, 255], qos: 1, retain: false)

        let got = subscriber.waitFor(count: 2)
        try #require(got.count == 2)
        #expect(got[0] == MQTTMessage(topic: "t/zero", payload: bytes("q0"), qos: 0, retain: false))
        #expect(got[1] == MQTTMessage(topic: "t/one", payload: [0, 1, 2, 255], qos: 1, retain: false))
        #expect(acks.waitFor(timeout: 5) { $0 == mid } != nil)
        #expect(publisher.unacknowledgedCount == 0)
    }

    /// The client reuses the previous message's topic `String` when the bytes
    /// repeat: topics of one length that differ, and repeats, arrive as sent.
    @Test func receivedTopicsFollowTheirBytes() throws {
        let broker = try TestBroker()
        let subscriber = try TestSubscriber(broker: broker, filters: ["r/#"])
        let publisher = try connected(broker.endpoint, testOptions("pub"))
        defer { publisher.stop() }
        let topics = ["r/a1", "r/a2", "r/a2", "r/a1", "r/a1/b", "r/a1", "r/a", "r/a1", "r/€", "r/€"]
        for topic in topics { try publisher.publish(topic: topic, payload: bytes(topic), qos: 1, retain: false) }
        let got = subscriber.waitFor(count: topics.count)
        #expect(got.map(\.topic) == topics)
        #expect(got.map(\.payloadText) == topics)
    }

    /// On plain TCP a read stops when the socket is empty, without asking
    /// libmosquitto for a packet that is not there: messages that arrive one
    /// at a time cost one `mosquitto_loop_read` each, not two (the second
    /// finding EAGAIN), and none is left unread.
    @Test func oneReadPerMessageWhenTheyArriveOneByOne() throws {
        let broker = try TestBroker()
        let fixture = try TestLoop()
        defer { fixture.stop() }
        let received = Recorder<String>()
        let client = try MQTTClient(loop: fixture.loop, endpoint: broker.endpoint, options: testOptions("reader"),
                                    dropSocketPair: true)
        try fixture.onLoop {
            client.onMessage = { message in received.append(String(decoding: message.payload, as: UTF8.self)) }
            try client.subscribe("one/by/one", qos: 0)
            client.start()
        }
        #expect(waitUntil(timeout: 10) { (try? fixture.onLoop { client.isSubscribed }) == true })
        let publisher = try connected(broker.endpoint, testOptions("pub"))
        defer { publisher.stop() }
        let before = try fixture.onLoop { fixture.loop.figures }
        let count = 40
        for i in 0..<count {
            try publisher.publish(topic: "one/by/one", payload: bytes("\(i)"), qos: 0, retain: false)
            #expect(received.waitFor(count: i + 1, timeout: 5).count == i + 1)
        }
        let after = try fixture.onLoop { fixture.loop.figures }
        #expect(received.values == (0..<count).map { "\($0)" })
        // Each message its own read; a few more for keepalive on a slow machine.
        let reads = after.reads - before.reads
        #expect(reads >= UInt64(count) && reads <= UInt64(count + 5), "\(reads) reads for \(count) messages")
        try fixture.onLoop { client.stop() }
    }

    @Test func retainedMessageReachesLateSubscriber() throws {
        let broker = try TestBroker()
        let publisher = try connected(broker.endpoint, testOptions("pub"))
        defer { publisher.stop() }
        let acks = Recorder<Int32>()
        publisher.onPublished = { acks.append($0) }
        let mid = try publisher.publish(topic: "status/proxy", payload: bytes("online"), qos: 1, retain: true)
        #expect(acks.waitFor(timeout: 5) { $0 == mid } != nil)

        let subscriber = try TestSubscriber(broker: broker, filters: ["status/#"])
        let got = subscriber.waitFor(count: 1)
        #expect(got.first == MQTTMessage(topic: "status/proxy", payload: bytes("online"), qos: 1, retain: true))
    }

    @Test(arguments: [MQTTProtocolVersion.v311, .v5])
    func passwordAuthentication(version: MQTTProtocolVersion) throws {
        let broker = try TestBroker(TestBroker.Configuration(users: ["meter": "s3cret"]))

        let good = try connected(broker.endpoint,
                                 testOptions("good", version: version, username: "meter", password: "s3cret"))
        good.stop()

        for (user, password) in [("meter", "wrong"), (nil, nil)] as [(String?, String?)] {
            let events = Recorder<String>()
            let client = try TestClient(endpoint: broker.endpoint,
                                        options: testOptions("bad", version: version, username: user, password: password))
            client.onConnectionChange = { up, reason in events.append("\(up) \(reason)") }
            try client.start()
            let refused = events.waitFor(timeout: 5) { $0.hasPrefix("false connection to \(broker.endpoint) refused by the broker: ") }
            #expect(refused != nil, "events: \(events.values)")
            #expect(!client.isConnected)
            // It keeps retrying with backoff, and stops cleanly while doing so.
            #expect(events.waitFor(count: 2, timeout: 5).count >= 2)
            client.stop()
            #expect(!events.values.contains { $0.hasPrefix("true") })
        }
    }

    @Test func lastWillOnAbruptLossButNotOnStop() throws {
        let broker = try TestBroker()
        let watcher = try TestSubscriber(broker: broker, filters: ["will/#"])
        let relay = try TCPRelay(targetPort: broker.port)
        defer { relay.stop() }
        let will = MQTTWill(topic: "will/device", payload: bytes("offline"), qos: 1, retain: false)

        // A connection that vanishes without DISCONNECT: the broker publishes the will.
        let client = try connected(relay.endpoint, testOptions("dev", will: will))
        relay.refusing = true
        relay.cutAll()
        let got = watcher.waitFor(count: 1)
        #expect(got.first?.topic == "will/device")
        #expect(got.first?.payloadText == "offline")
        client.stop()

        // A clean stop sends DISCONNECT: no will.
        watcher.clear()
        relay.refusing = false
        let polite = try connected(relay.endpoint, testOptions("dev2", will: will))
        polite.stop()
        Thread.sleep(forTimeInterval: 0.5)
        #expect(watcher.messages.isEmpty)
    }

    @Test(arguments: [MQTTProtocolVersion.v311, .v5])
    func persistentSessionReceivesWhatWasPublishedWhileAway(version: MQTTProtocolVersion) throws {
        let broker = try TestBroker()
        var options = testOptions("persist", version: version, clean: false)
        let first = try TestClient(endpoint: broker.endpoint, options: options)
        try first.subscribe("p/#", qos: 1)
        try first.start()
        #expect(first.waitUntilSubscribed(timeout: 5))
        first.stop()

        let publisher = try connected(broker.endpoint, testOptions("pub"))
        defer { publisher.stop() }
        let acks = Recorder<Int32>()
        publisher.onPublished = { acks.append($0) }
        for i in 1...3 { try publisher.publish(topic: "p/\(i)", payload: bytes("m\(i)"), qos: 1, retain: false) }
        #expect(acks.waitFor(count: 3).count == 3)

        // Same client id, no subscribe call: the broker kept the session.
        options.reconnectMinSeconds = 0.1
        let second = try TestClient(endpoint: broker.endpoint, options: options)
        let received = Recorder<MQTTMessage>()
        second.onMessage = { received.append($0) }
        try second.start()
        defer { second.stop() }
        let got = received.waitFor(count: 3)
        #expect(got.map(\.topic) == ["p/1", "p/2", "p/3"])
        #expect(got.allSatisfy { $0.qos == 1 })
    }

    @Test func publishWhileDisconnectedQueuesQoS1AndRefusesQoS0() throws {
        let broker = try TestBroker()
        let subscriber = try TestSubscriber(broker: broker, filters: ["q/#"])
        let relay = try TCPRelay(targetPort: broker.port)
        defer { relay.stop() }
        let publisher = try connected(relay.endpoint, testOptions("pub"))
        defer { publisher.stop() }
        let acks = Recorder<Int32>()
        publisher.onPublished = { acks.append($0) }

        relay.refusing = true
        relay.cutAll()
        #expect(waitUntil(timeout: 5) { !publisher.isConnected })

        let mid = try publisher.publish(topic: "q/queued", payload: bytes("later"), qos: 1, retain: false)
        #expect(mid > 0)
        #expect(publisher.unacknowledgedCount == 1)
        do {
            try publisher.publish(topic: "q/lost", payload: bytes("now"), qos: 0, retain: false)
            Issue.record("QoS 0 publish while disconnected did not throw")
        } catch {
            #expect(error.code == .noConnection)
        }

        relay.refusing = false
        #expect(publisher.waitUntilConnected(timeout: 5))
        let got = subscriber.waitFor(count: 1)
        #expect(got.map(\.topic) == ["q/queued"])
        #expect(acks.waitFor(timeout: 5) { $0 == mid } != nil)
        #expect(publisher.unacknowledgedCount == 0)
        Thread.sleep(forTimeInterval: 0.2)
        #expect(subscriber.messages.count == 1)  // the QoS 0 message was not queued
    }

    @Test func stopFromHandlerAndTwiceDoesNotDeadlock() throws {
        let broker = try TestBroker()
        let client = try TestClient(endpoint: broker.endpoint, options: testOptions("self-stop"))
        let stopped = Recorder<Bool>()
        client.onMessage = { [client] _ in
            client.stop()  // on its loop's thread, inside its own message callback
            stopped.append(true)
        }
        try client.subscribe("s/#", qos: 0)
        try client.start()
        #expect(client.waitUntilSubscribed(timeout: 5))
        let publisher = try connected(broker.endpoint, testOptions("pub"))
        defer { publisher.stop() }
        try publisher.publish(topic: "s/x", payload: [], qos: 0, retain: false)
        #expect(stopped.waitFor(count: 1).count == 1)
        client.stop()
        #expect(waitUntil(timeout: 5) { !client.isConnected })
        #expect(throws: MQTTError.self) { try client.start() }
        #expect(throws: MQTTError.self) { try client.publish(topic: "s/y", payload: [], qos: 1, retain: false) }
    }

    @Test func stopWhileRetryingAgainstNothing() throws {
        let port = freePort()  // nobody listens here
        let events = Recorder<String>()
        let client = try TestClient(endpoint: MQTTEndpoint(host: "127.0.0.1", port: port, tls: false),
                                        options: testOptions("nothing"))
        client.onConnectionChange = { _, reason in events.append(reason) }
        try client.start()
        #expect(events.waitFor(count: 3, timeout: 5).count >= 3)
        #expect(events.values.first?.contains("Connection refused") == true, "\(events.values)")
        let began = Date()
        client.stop()
        #expect(Date().timeIntervalSince(began) < 1)
    }

    @Test func invalidOptionsThrow() throws {
        let endpoint = MQTTEndpoint(host: "127.0.0.1", port: 1883, tls: false)
        let loop = try EventLoop()  // never run: nothing here needs it
        #expect(throws: MQTTError.self) {
            _ = try MQTTClient(loop: loop, endpoint: endpoint, options: MQTTOptions(clientID: "", cleanSession: false))
        }
        #expect(throws: MQTTError.self) {
            _ = try MQTTClient(loop: loop, endpoint: endpoint, options: MQTTOptions(
                clientID: "w", will: MQTTWill(topic: "a/#", payload: [])))
        }
        #expect(throws: MQTTError.self) {
            _ = try MQTTClient(loop: loop, endpoint: endpoint, options: MQTTOptions(
                clientID: "t", tls: MQTTTLS(caFile: "/nonexistent/ca.pem")))
        }
        #expect(throws: MQTTError.self) {
            _ = try MQTTClient(loop: loop, endpoint: endpoint, options: MQTTOptions(clientID: "k", keepAliveSeconds: 2))
        }
        #expect(throws: MQTTError.self) {
            let c = try MQTTClient(loop: loop, endpoint: endpoint, options: MQTTOptions(clientID: "s"))
            try c.subscribe("a/#/b", qos: 1)
        }
        #expect(throws: MQTTError.self) {
            let c = try MQTTClient(loop: loop, endpoint: endpoint, options: MQTTOptions(clientID: "q"))
            try c.subscribe("a/#", qos: 3)
        }
    }
}
