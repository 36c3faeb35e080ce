import Glibc
import MQTT
import Testing
import TestSupport

/// Loop-bound objects check, in debug builds, that they are used on their
/// loop's thread (or while no thread runs the loop: setting up, tearing down).
@Suite struct LoopAffinityTests {
    @Test func onlyTheLoopsThreadMayCallWhileItRuns() throws {
        let idle = try EventLoop()
        #expect(idle.permitsCallsFromHere, "before it runs: setting up from any thread")
        let running = try TestLoop(), other = try TestLoop()
        #expect(waitUntil(timeout: 10) { running.loop.isRunning && other.loop.isRunning })
        #expect(!running.loop.permitsCallsFromHere, "the test's thread, while the loop runs")
        #expect(try running.onLoop { running.loop.permitsCallsFromHere })
        #expect(try other.onLoop { !running.loop.permitsCallsFromHere }, "another loop's thread")
        #expect(try running.onLoop { idle.permitsCallsFromHere }, "a loop nobody runs")
        running.stop()
        #expect(running.loop.permitsCallsFromHere, "after it ended: tearing down from any thread")
    }

    #if DEBUG
    /// The check fires: a client published to from a thread that is not its
    /// running loop's traps (debug builds; release builds do not check).
    @Test func aClientUsedOffItsLoopTraps() async throws {
        await #expect(processExitsWith: .failure) {
            let loop = try EventLoop()
            let thread = loop.startThread(name: "affinity")
            let client = try MQTTClient(loop: loop, endpoint: MQTTEndpoint(host: "127.0.0.1", port: 1, tls: false),
                                        options: MQTTOptions(clientID: "affinity"))
            while !loop.isRunning { usleep(1_000) }
            _ = try? client.publish(topic: "t", payload: [1], qos: 1, retain: false)  // traps
            loop.stop()
            thread.join()
        }
        // The same calls on the loop's thread pass.
        await #expect(processExitsWith: .success) {
            let loop = try EventLoop()
            let thread = loop.startThread(name: "affinity")
            let client = try MQTTClient(loop: loop, endpoint: MQTTEndpoint(host: "127.0.0.1", port: 1, tls: false),
                                        options: MQTTOptions(clientID: "affinity"))
            while !loop.isRunning { usleep(1_000) }
            loop.execute {
                _ = try? client.publish(topic: "t", payload: [1], qos: 1, retain: false)
                client.stop()
                loop.stop()
            }
            thread.join()
        }
    }

    @Test func aTimerOrARegistrationOffItsLoopTraps() async throws {
        await #expect(processExitsWith: .failure) {
            let loop = try EventLoop()
            let thread = loop.startThread(name: "affinity")
            while !loop.isRunning { usleep(1_000) }
            loop.schedule(after: 1) {}  // traps
            loop.stop()
            thread.join()
        }
        await #expect(processExitsWith: .failure) {
            let loop = try EventLoop()
            let thread = loop.startThread(name: "affinity")
            let timer = LoopTimerBox()
            loop.execute { timer.timer = loop.schedule(after: 60) {} }
            while timer.timer == nil { usleep(1_000) }
            timer.timer?.cancel()  // traps
            loop.stop()
            thread.join()
        }
    }
    #endif
}
