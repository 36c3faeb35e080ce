import Clock
@testable import MQTT
import SiteSettings
import Synchronization
import Testing
@testable import Services
@testable import ServicesFixtures

/// The shutdown phases both services go through, without a broker.
@Suite struct ServicePhasesTests {
    let t0 = MonotonicInstant(nanoseconds: 1_000_000_000)

    @Test func drainedThenAcknowledgedFinishes() {
        var phases = ServicePhases()
        #expect(phases.isRunning && phases.deadline == nil)
        let first = phases.stop(reason: "SIGTERM", drainSeconds: 3, now: t0)
        let second = phases.stop(reason: "SIGINT", drainSeconds: 3, now: t0)
        #expect(first)
        #expect(!second, "a second stop is reported")
        #expect(phases.reason == "SIGTERM")
        #expect(phases.deadline == t0.adding(seconds: 3))
        let step1 = phases.advance(drained: false, now: t0.adding(seconds: 1))
        #expect(step1 == nil)
        let step2 = phases.advance(drained: true, now: t0.adding(seconds: 1))
        #expect(step2 == .drainEnded(complete: true))
        phases.offlinePublished(mid: 7, ackSeconds: 2, now: t0.adding(seconds: 1))
        #expect(phases.phase == .offline(reason: "SIGTERM", mid: 7, deadline: t0.adding(seconds: 3)))
        phases.acknowledged(6)
        #expect(!phases.isFinished, "another message's PUBACK")
        phases.acknowledged(7)
        #expect(phases.phase == .finished(reason: "SIGTERM"))
        #expect(phases.deadline == nil)
        let step3 = phases.advance(drained: true, now: t0.adding(seconds: 9))
        #expect(step3 == nil)
    }

    @Test func deadlinesEndTheDrainAndTheWaitForTheAcknowledgement() {
        var phases = ServicePhases()
        _ = phases.stop(reason: "SIGINT", drainSeconds: 0.5, now: t0)
        let step4 = phases.advance(drained: false, now: t0.adding(seconds: 0.4))
        #expect(step4 == nil)
        let step5 = phases.advance(drained: false, now: t0.adding(seconds: 0.5))
        #expect(step5 == .drainEnded(complete: false))
        phases.offlinePublished(mid: 1, ackSeconds: 2, now: t0.adding(seconds: 0.5))
        let step6 = phases.advance(drained: true, now: t0.adding(seconds: 2.4))
        #expect(step6 == nil)
        let step7 = phases.advance(drained: true, now: t0.adding(seconds: 2.5))
        #expect(step7 == .offlineNotAcknowledged)
        #expect(phases.isFinished && phases.reason == "SIGINT")
    }

    @Test func noOfflineStatusFinishesAtOnce() {
        var phases = ServicePhases()
        _ = phases.stop(reason: "SIGTERM", drainSeconds: 5, now: t0)
        let step8 = phases.advance(drained: true, now: t0)
        #expect(step8 == .drainEnded(complete: true))
        phases.offlinePublished(mid: nil, ackSeconds: 2, now: t0)
        #expect(phases.isFinished)
    }
}

@Suite struct ServiceControlTests {
    @Test func aStopIsTakenOnceAndASecondOneIsReported() throws {
        let control = ServiceControl(loop: try EventLoop()) { _ in nil }
        let none = control.take()
        #expect(none.stop == nil && none.site == nil)
        #expect(control.requestStop(reason: "SIGTERM"))
        #expect(!control.requestStop(reason: "SIGINT"))
        #expect(control.take().stop == "SIGTERM")
        #expect(control.take().stop == nil)
    }

    @Test func aReloadIsCompiledByTheCallerAndOnlyAGoodSiteReachesTheLoop() throws {
        let compiled = Mutex(0)
        let failing = ServiceControl(loop: try EventLoop()) { trigger in
            #expect(trigger == "SIGHUP")
            compiled.withLock { $0 += 1 }
            return nil
        }
        failing.requestReload()
        #expect(compiled.withLock { $0 } == 1)
        #expect(failing.take().site == nil, "a failed compile keeps the running site")

        let site = try Site.load(rules: ProxyHarness.packDirectory.path, config: nil)
        let good = ServiceControl(loop: try EventLoop()) { _ in site }
        good.requestReload()
        #expect(good.take().site?.programs.packName == site.programs.packName)
        #expect(good.take().site == nil, "taken once")
    }
}
