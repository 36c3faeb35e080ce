import Clock
import Testing
@testable import Services
@testable import ServicesFixtures

// The read-back protocol of the central broker's retained announcements, with no broker.

@Suite struct ProxyReadBackTests {
    let start = MonotonicInstant(nanoseconds: 1_000_000_000)

    func echo(_ readBack: inout ProxyReadBack, _ text: String) -> Bool {
        Array(text.utf8).withUnsafeBytes { readBack.echo($0) }
    }

    @Test func eachConnectionPublishesItsTokenOnceAndItsEchoEndsTheReadBack() {
        var readBack = ProxyReadBack(rootTopic: "kpm33b", clientID: "proxy-a")
        #expect(readBack.topic == "kpm33b/proxy/read-back")
        var actions = readBack.subscriptionsSettled(at: start)
        #expect(actions.isEmpty, "no connection yet")
        readBack.connected()
        actions = readBack.subscriptionsSettled(at: start)
        #expect(actions == [.publishCentral(topic: "kpm33b/proxy/read-back", payload: Array("proxy-a 1".utf8))])
        actions = readBack.subscriptionsSettled(at: start)
        #expect(actions.isEmpty, "settled again (a later subscription): not again")
        var echoed = echo(&readBack, "proxy-b 1")
        #expect(!echoed, "another proxy's token")
        echoed = echo(&readBack, "proxy-a 1")
        #expect(echoed)
        #expect(readBack.pending == nil)
        echoed = echo(&readBack, "proxy-a 1")
        #expect(!echoed, "ended once")
        readBack.connected()
        echoed = echo(&readBack, "proxy-a 1")
        #expect(!echoed, "the last connection's token")
        actions = readBack.subscriptionsSettled(at: start)
        #expect(actions == [.publishCentral(topic: "kpm33b/proxy/read-back", payload: Array("proxy-a 2".utf8))])
        echoed = echo(&readBack, "proxy-a 2")
        #expect(echoed)
    }

    @Test func withoutAnEchoTheReadBackEndsAfterItsTimeout() {
        var readBack = ProxyReadBack(rootTopic: "kpm33b", clientID: "proxy-a")
        readBack.connected()
        var over = readBack.timedOut(at: start.adding(seconds: 100))
        #expect(!over, "no deadline before the token went out")
        _ = readBack.subscriptionsSettled(at: start)
        over = readBack.timedOut(at: start.adding(seconds: ProxyReadBack.timeoutSeconds - 0.1))
        #expect(!over)
        over = readBack.timedOut(at: start.adding(seconds: ProxyReadBack.timeoutSeconds))
        #expect(over)
        over = readBack.timedOut(at: start.adding(seconds: 100))
        #expect(!over, "ended once")
        let echoed = echo(&readBack, "proxy-a 1")
        #expect(!echoed, "a late echo changes nothing")
    }
}
