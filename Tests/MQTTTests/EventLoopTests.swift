import Foundation
import Glibc
import Clock
import MQTT
import Testing
import TestSupport

@Suite(.serialized) struct EventLoopTests {
    @Test func timersFireInDeadlineOrderOnTheMonotonicClock() throws {
        let fixture = try TestLoop()
        defer { fixture.stop() }
        let fired = Recorder<String>()
        let start = MonotonicInstant.now()
        try fixture.onLoop {
            fixture.loop.schedule(after: 0.2) { fired.append("b") }
            fixture.loop.schedule(after: 0.1) { fired.append("a") }
            let cancelled = fixture.loop.schedule(after: 0.05) { fired.append("cancelled") }
            cancelled.cancel()
            var ticks = 0
            let repeating = LoopTimerBox()
            repeating.timer = fixture.loop.repeating(every: 0.05) {
                ticks += 1
                fired.append("tick\(ticks)")
                if ticks == 3 { repeating.timer?.cancel() }
            }
        }
        let values = fired.waitFor(count: 5, timeout: 5)
        #expect(values.filter { !$0.hasPrefix("tick") } == ["a", "b"])
        #expect(values.filter { $0.hasPrefix("tick") } == ["tick1", "tick2", "tick3"])
        #expect(MonotonicInstant.now().seconds(since: start) >= 0.2)
        usleep(200_000)
        #expect(fired.values.count == 5, "a cancelled timer fired: \(fired.values)")
    }

    @Test func postedWorkRunsInOrderOnTheLoopThread() throws {
        let fixture = try TestLoop()
        defer { fixture.stop() }
        let seen = Recorder<Int>()
        let onLoop = Recorder<Bool>()
        DispatchQueue.concurrentPerform(iterations: 4) { worker in
            for i in 0..<250 { fixture.loop.execute { seen.append(worker * 1000 + i); onLoop.append(fixture.loop.isOnLoopThread) } }
        }
        let values = seen.waitFor(count: 1000, timeout: 5)
        #expect(values.count == 1000)
        for worker in 0..<4 {
            let mine = values.filter { $0 / 1000 == worker }
            #expect(mine == mine.sorted(), "posting order kept per thread")
        }
        #expect(onLoop.values.allSatisfy { $0 })
        #expect(!fixture.loop.isOnLoopThread)
    }

    @Test(arguments: [MQTTProtocolVersion.v311, .v5])
    func clientRoundTripAndReconnect(version: MQTTProtocolVersion) throws {
        let broker = try TestBroker(persistence: true)
        let fixture = try TestLoop()
        defer { fixture.stop() }
        let received = Recorder<MQTTMessage>()
        let events = Recorder<String>()
        let acks = Recorder<Int32>()
        let client = try MQTTClient(loop: fixture.loop, endpoint: broker.endpoint,
                                    options: testOptions("loop", version: version, clean: false))
        try fixture.onLoop {
            client.onMessage = { received.append($0.copy()) }
            client.onConnectionChange = { up, reason in events.append("\(up) \(reason)") }
            client.onPublished = { acks.append($0) }
            try client.subscribe("t/#", qos: 1)
            client.start()
        }
        #expect(events.waitFor(timeout: 5) { $0 == "true connected" } != nil)
        #expect(waitUntil(timeout: 10) { (try? fixture.onLoop { client.isSubscribed }) == true })

        let mid = try fixture.onLoop { try client.publish(topic: "t/a", payload: Array("one".utf8), qos: 1, retain: false) }
        #expect(received.waitFor(count: 1).first == MQTTMessage(topic: "t/a", payload: Array("one".utf8), qos: 1))
        #expect(acks.waitFor(timeout: 5) { $0 == mid } != nil)

        // The broker goes away and comes back: the client reconnects by itself,
        // subscribes again and what was published meanwhile at QoS 1 arrives.
        broker.terminate()
        #expect(events.waitFor(timeout: 5) { $0.hasPrefix("false") } != nil)
        let queued = try fixture.onLoop { try client.publish(topic: "t/b", payload: Array("two".utf8), qos: 1, retain: false) }
        try broker.restart()
        #expect(events.waitFor(count: 3, timeout: 10).last == "true connected", "\(events.values)")
        #expect(received.waitFor(count: 2, timeout: 10).last?.payload == Array("two".utf8))
        #expect(acks.waitFor(timeout: 5) { $0 == queued } != nil)
        #expect(try fixture.onLoop { client.unacknowledgedCount } == 0)

        try fixture.onLoop { client.stop() }
        #expect(events.waitFor(timeout: 5) { $0 == "false stopped" } != nil)
    }

    /// TLS through the loop: the handshake runs in the loop's reads; a
    /// certificate the client cannot verify is reported and retried.
    @Test func tlsHandshakeAndItsFailuresThroughTheLoop() throws {
        let certificates = try TestCertificates()
        let broker = try TestBroker(TestBroker.Configuration(extraLines: certificates.listenerLines(requireClientCertificate: false)))
        let endpoint = MQTTEndpoint(host: "127.0.0.1", port: broker.port, tls: true)
        let fixture = try TestLoop()
        defer { fixture.stop() }
        var options = testOptions("tls-loop")
        options.tls = MQTTTLS(caFile: certificates.caFile)
        let client = try MQTTClient(loop: fixture.loop, endpoint: endpoint, options: options)
        let received = Recorder<String>()
        try fixture.onLoop {
            client.onMessage = { received.append(String(decoding: $0.payload, as: UTF8.self)) }
            try client.subscribe("tls/#", qos: 1)
            client.start()
        }
        #expect(waitUntil(timeout: 10) { (try? fixture.onLoop { client.isSubscribed }) == true })
        _ = try fixture.onLoop { try client.publish(topic: "tls/x", payload: Array("secret".utf8), qos: 1, retain: false) }
        #expect(received.waitFor(count: 1).first == "secret")

        let reasons = Recorder<String>()
        let stranger = try MQTTClient(loop: fixture.loop, endpoint: endpoint, options: testOptions("stranger"))
        try fixture.onLoop {
            stranger.onConnectionChange = { _, reason in reasons.append(reason) }
            stranger.start()
        }
        let failures = reasons.waitFor(count: 3, timeout: 10)
        #expect(failures.count >= 3)
        #expect(failures.allSatisfy { $0.contains("certificate verify failed") }, "\(failures)")
        try fixture.onLoop { stranger.stop(); client.stop() }
    }

    @Test func aRefusedLoginIsReportedAndRetried() throws {
        let broker = try TestBroker(TestBroker.Configuration(users: ["meter": "s3cret"]))
        let fixture = try TestLoop()
        defer { fixture.stop() }
        let events = Recorder<String>()
        let client = try MQTTClient(loop: fixture.loop, endpoint: broker.endpoint,
                                    options: testOptions("bad", version: .v5, username: "meter", password: "wrong"))
        try fixture.onLoop {
            client.onConnectionChange = { up, reason in events.append("\(up) \(reason)") }
            client.start()
        }
        let seen = events.waitFor(count: 2, timeout: 10)
        #expect(seen.count == 2)
        // The broker, its reason, and who tried: the caller gave the password directly.
        #expect(seen.allSatisfy {
            $0.hasPrefix("false connection to \(broker.endpoint) refused by the broker: Not authorized")
                && $0.hasSuffix("(user 'meter', password from the caller)")
        }, "\(seen)")
        try fixture.onLoop { client.stop() }
    }

    /// The journal's guarantee: a QoS 1 message's PUBACK leaves only after the
    /// iteration hooks of the iteration that read it have returned.
    @Test func pubackWaitsForTheIterationHooks() throws {
        let broker = try TestBroker(TestBroker.Configuration(extraLines: ["log_type all"]))
        defer { broker.stop() }  // the loop's hook holds the broker, so its deinit may never run
        let fixture = try TestLoop()
        defer { fixture.stop() }
        let client = try MQTTClient(loop: fixture.loop, endpoint: broker.endpoint, options: testOptions("held"))
        let brokerLogInHook = Recorder<String>()
        let arrived = Recorder<Bool>()
        try fixture.onLoop {
            var pending = false
            client.onMessage = { _ in pending = true; arrived.append(true) }
            fixture.loop.addIterationHook {
                guard pending else { return }
                pending = false
                usleep(300_000)  // a slow journal write
                brokerLogInHook.append(broker.log)
            }
            try client.subscribe("held", qos: 1)
            client.start()
        }
        #expect(waitUntil(timeout: 10) { (try? fixture.onLoop { client.isSubscribed }) == true })
        let publisher = try connected(broker.endpoint, testOptions("pub"))
        defer { publisher.stop() }
        try publisher.publish(topic: "held", payload: Array("x".utf8), qos: 1, retain: false)
        #expect(arrived.waitFor(count: 1).count == 1)
        let during = try #require(brokerLogInHook.waitFor(count: 1).first)
        let subscriberID = client.options.clientID
        #expect(during.contains("Sending PUBLISH to \(subscriberID)"), "the broker sent the message")
        #expect(!during.contains("Received PUBACK from \(subscriberID)"), "PUBACK left before the hook returned")
        #expect(waitUntil(timeout: 10) { broker.log.contains("Received PUBACK from \(subscriberID)") }, "PUBACK after the hook")
        try fixture.onLoop { client.stop() }
    }

    /// Back-pressure: a paused client reads nothing; the broker keeps the
    /// messages and delivers them once reading resumes.
    @Test func pausedReadingLeavesMessagesWithTheBroker() throws {
        let broker = try TestBroker()
        let fixture = try TestLoop()
        defer { fixture.stop() }
        let received = Recorder<String>()
        let client = try MQTTClient(loop: fixture.loop, endpoint: broker.endpoint, options: testOptions("paused", clean: false))
        try fixture.onLoop {
            client.onMessage = { received.append(String(decoding: $0.payload, as: UTF8.self)) }
            try client.subscribe("p", qos: 1)
            client.start()
        }
        #expect(waitUntil(timeout: 10) { (try? fixture.onLoop { client.isSubscribed }) == true })
        try fixture.onLoop { client.pauseReading() }
        let publisher = try connected(broker.endpoint, testOptions("pub"))
        defer { publisher.stop() }
        for i in 0..<100 { try publisher.publish(topic: "p", payload: Array("\(i)".utf8), qos: 1, retain: false) }
        usleep(500_000)
        #expect(received.values.isEmpty, "read while paused: \(received.values.count)")
        try fixture.onLoop { client.resumeReading() }
        let all = received.waitFor(count: 100, timeout: 10)
        #expect(all == (0..<100).map(String.init))
        try fixture.onLoop { client.stop() }
    }

    /// More clients than select() can watch (descriptors past FD_SETSIZE,
    /// 1024): one loop, one thread, all connected and all delivering.
    @Test func oneLoopDrivesMoreClientsThanSelectCan() throws {
        var limit = rlimit()
        getrlimit(Int32(RLIMIT_NOFILE.rawValue), &limit)
        let needed: rlim_t = 5000
        try #require(limit.rlim_max >= needed, "the hard descriptor limit \(limit.rlim_max) is below \(needed)")
        if limit.rlim_cur < needed {
            limit.rlim_cur = needed
            setrlimit(Int32(RLIMIT_NOFILE.rawValue), &limit)
        }
        let count = 1100
        let broker = try TestBroker(TestBroker.Configuration(extraLines: ["max_connections -1"]))
        let fixture = try TestLoop()
        defer { fixture.stop() }
        let connectedCount = Recorder<Int>()
        let received = Recorder<Int>()
        let clients = try (0..<count).map { i in
            try MQTTClient(loop: fixture.loop, endpoint: broker.endpoint, options: testOptions("many\(i)"))
        }
        try fixture.onLoop {
            for (i, client) in clients.enumerated() {
                client.onConnectionChange = { up, _ in if up { connectedCount.append(i) } }
                client.onMessage = { _ in received.append(i) }
                try client.subscribe("fleet/\(i)", qos: 0)
                client.start()
            }
        }
        #expect(connectedCount.waitFor(count: count, timeout: 60).count == count)
        #expect(waitUntil(timeout: 30) { (try? fixture.onLoop { clients.allSatisfy(\.isSubscribed) }) == true })
        let highest = try fixture.onLoop { clients.count }
        #expect(highest == count)
        try fixture.onLoop {
            for (i, client) in clients.enumerated() {
                try client.publish(topic: "fleet/\((i + 1) % count)", payload: Array("hi".utf8), qos: 0, retain: false)
            }
        }
        #expect(Set(received.waitFor(count: count, timeout: 30)).count == count)
        try fixture.onLoop { for client in clients { client.stop() } }
    }
}

/// Holds a timer created inside its own callback.
final class LoopTimerBox: @unchecked Sendable {
    var timer: LoopTimer?
}
