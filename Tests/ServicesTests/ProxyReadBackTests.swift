import MQTT
import Testing
@testable import Services

// The read-back protocol of the central broker's retained announcements, with no broker.

@Suite struct ProxyReadBackTests {
    let start = MonotonicInstant(nanoseconds: 1_000_000_000)

    func echo(_ readBack: inout ProxyReadBack, _ text: String) -> Bool {
        Array(text.utf8).withUnsafeBytes { readBack.echo($0) }
    }

    @Test func eachConnectionPublishesItsTokenOnceAndItsEchoEndsTheReadBack() {
        var readBack = ProxyReadBack(rootTopic: "kpm33b", clientID: "proxy-a")
        #expect(readBack.topic == "kpm33b/proxy/read-back")
        #expect(readBack.subscriptionsSettled(at: start).isEmpty, "no connection yet")
        readBack.connected()
        #expect(readBack.subscriptionsSettled(at: start) == [.publishCentral(topic: "kpm33b/proxy/read-back", payload: Array("proxy-a 1".utf8))])
        #expect(readBack.subscriptionsSettled(at: start).isEmpty, "settled again (a later subscription): not again")
        #expect(!echo(&readBack, "proxy-b 1"), "another proxy's token")
        #expect(echo(&readBack, "proxy-a 1"))
        #expect(readBack.pending == nil)
        #expect(!echo(&readBack, "proxy-a 1"), "ended once")
        readBack.connected()
        #expect(!echo(&readBack, "proxy-a 1"), "the last connection's token")
        #expect(readBack.subscriptionsSettled(at: start) == [.publishCentral(topic: "kpm33b/proxy/read-back", payload: Array("proxy-a 2".utf8))])
        #expect(echo(&readBack, "proxy-a 2"))
    }

    @Test func withoutAnEchoTheReadBackEndsAfterItsTimeout() {
        var readBack = ProxyReadBack(rootTopic: "kpm33b", clientID: "proxy-a")
        readBack.connected()
        #expect(!readBack.timedOut(at: start.adding(seconds: 100)), "no deadline before the token went out")
        _ = readBack.subscriptionsSettled(at: start)
        #expect(!readBack.timedOut(at: start.adding(seconds: ProxyReadBack.timeoutSeconds - 0.1)))
        #expect(readBack.timedOut(at: start.adding(seconds: ProxyReadBack.timeoutSeconds)))
        #expect(!readBack.timedOut(at: start.adding(seconds: 100)), "ended once")
        #expect(!echo(&readBack, "proxy-a 1"), "a late echo changes nothing")
    }
}
