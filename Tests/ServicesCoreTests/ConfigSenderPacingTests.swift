import Clock
import Foundation
@testable import MQTT
import RuleEngine
import Testing
@testable import Services
@testable import ServicesFixtures

/// The planner's pacing: at most `max_in_flight` commands awaiting
/// a reply, `min_spacing_ms` between two commands to one meter, a meter once
/// begun finished first, the reply timeout counted from the send.
@Suite struct ConfigSenderPacingTests {
    func planner(maxInFlight: Int?, minSpacingMs: Int?, timeout: Double = 1) throws -> ConfigPlanner {
        try makePlanner(senderConfigText(timeout: timeout, maxInFlight: maxInFlight, minSpacingMs: minSpacingMs))
    }

    @Test func siteDefaultsArePaced() throws {
        let p = try planner(maxInFlight: nil, minSpacingMs: nil)
        #expect(p.options.maxInFlight == 100)
        #expect(p.options.minSpacingSeconds == 0.2)
    }

    @Test func atMostMaxInFlightAwaitReplies() throws {
        var p = try planner(maxInFlight: 2, minSpacingMs: 0)
        let meters = (0..<5).map { "33B12259500\(30 + $0)" }
        var sent: [CommandMessage] = []
        for id in meters { sent += p.discovered(id, clockOffsetSeconds: nil, now: senderT0).sent }
        // The first meter's first two commands; the rest wait.
        #expect(sent.map(\.deviceID) == [meters[0], meters[0]])
        #expect(p.awaitingReplyCount == 2)
        #expect(p.queuedCount == 13)
        #expect(p.pending.filter(\.queued).allSatisfy { $0.attempt == 0 })
        // Each reply frees a slot: the meter begun is finished before the next one starts.
        var order: [String] = sent.map { "\($0.deviceID.suffix(2)):\($0.command)" }
        var t = senderT0
        while let next = sent.first {
            sent.removeFirst()
            t = t.adding(seconds: 0.01)
            let more = p.answer(next, now: t).sent
            #expect(p.awaitingReplyCount <= 2)
            order += more.map { "\($0.deviceID.suffix(2)):\($0.command)" }
            sent += more
        }
        #expect(order.count == 15)
        #expect(Array(order.prefix(4)) == ["30:set_upload_interval_seconds", "30:set_upload_interval_minutes",
                                           "30:set_clock", "31:set_upload_interval_seconds"])
        #expect(meters.allSatisfy { p.records[$0]?.acknowledgedDate == "2026-01-12" })
        #expect(p.awaitingReplyCount == 0 && p.queuedCount == 0 && p.pending.isEmpty)
    }

    @Test func spacingBetweenTwoCommandsToOneMeter() throws {
        var p = try planner(maxInFlight: 0, minSpacingMs: 200)
        let first = p.discovered(senderMeterA, clockOffsetSeconds: nil, now: senderT0).sent
        #expect(first.map(\.command) == ["set_upload_interval_seconds"])
        // Another meter is not held up by the first one's spacing.
        #expect(p.discovered(senderMeterB, clockOffsetSeconds: nil, now: senderT0).sent.map(\.deviceID) == [senderMeterB])
        #expect(p.nextDeadline == ConfigTime(testing: senderT0).monotonic.adding(seconds: 0.2))
        #expect(p.tick(now: senderT0.adding(seconds: 0.15)).sent.isEmpty)
        let second = p.tick(now: senderT0.adding(seconds: 0.2)).sent
        #expect(second.map(\.command) == ["set_upload_interval_minutes", "set_upload_interval_minutes"])
        #expect(second.map(\.deviceID) == [senderMeterA, senderMeterB])
        // The clock command carries the time it leaves, not the time it was decided.
        let third = p.tick(now: senderT0.adding(seconds: 0.4)).sent
        #expect(third.map(\.command) == ["set_clock", "set_clock"])
        #expect(String(decoding: third[0].payload, as: UTF8.self).hasSuffix(#""time":"20260112110000"}"#))
        #expect(p.awaitingReplyCount == 6)
    }

    @Test func theReplyTimeoutCountsFromTheSendNotTheQueue() throws {
        var p = try planner(maxInFlight: 1, minSpacingMs: 0, timeout: 1)
        var sent = p.discovered(senderMeterA, clockOffsetSeconds: nil, now: senderT0).sent
        #expect(sent.count == 1)
        // Each reply comes after 0.9 s: the last command was decided 1.8 s before it left, yet none times out.
        var t = senderT0
        var events: [ConfigEvent] = []
        while let next = sent.first {
            sent.removeFirst()
            t = t.adding(seconds: 0.9)
            events += p.tick(now: t).events
            let actions = p.answer(next, now: t)
            events += actions.events
            sent += actions.sent
        }
        #expect(!events.contains { $0.name == "reply_timeout" || $0.level == .alert })
        #expect(events.filter { $0.name == "command_acknowledged" }.count == 3)
    }

    @Test func retriesGoBeforeNewMetersAndTimeoutsFreeTheirSlot() throws {
        var p = try planner(maxInFlight: 1, minSpacingMs: 0, timeout: 1)
        let a = p.discovered(senderMeterA, clockOffsetSeconds: nil, now: senderT0).sent
        #expect(p.discovered(senderMeterB, clockOffsetSeconds: nil, now: senderT0).sent.isEmpty)
        // No reply: the timeout frees the slot for the next queued command (the meter begun).
        let t1 = senderT0.adding(seconds: 1)
        let afterTimeout = p.tick(now: t1)
        #expect(afterTimeout.events.contains { $0.name == "reply_timeout" })
        #expect(afterTimeout.sent.map(\.command) == ["set_upload_interval_minutes"])
        #expect(afterTimeout.sent.map(\.deviceID) == [senderMeterA])
        // Its answer frees the slot; A's third command goes, then the backoff ends (0.5 s) and the retry waits for a slot.
        let third = p.answer(afterTimeout.sent[0], now: t1.adding(seconds: 0.1)).sent
        #expect(third.map(\.command) == ["set_clock"])
        #expect(p.tick(now: t1.adding(seconds: 0.6)).sent.isEmpty)
        let retry = p.answer(third[0], now: t1.adding(seconds: 0.7)).sent
        #expect(retry.map(\.command) == ["set_upload_interval_seconds"])
        #expect(retry.map(\.deviceID) == [senderMeterA])
        #expect(retry[0].operationID != a[0].operationID)
        #expect(p.pending.first { $0.meter == senderMeterA }?.attempt == 2)
    }
}

/// `CommandPacer`'s own contract: the order of its three lines, the spacing,
/// names resolved while queued, a forgotten meter.
@Suite struct CommandPacerTests {
    let t0 = MonotonicInstant(nanoseconds: 1_000_000_000)

    /// Everything `next` hands out at `now`, as `meter:command`.
    func drain(_ pacer: inout CommandPacer, at now: MonotonicInstant, skipping: Set<String> = []) -> [String] {
        var out: [String] = []
        while let (meter, command) = pacer.next(now: now, isQueued: { !skipping.contains("\($0):\($1)") }) { out.append("\(meter):\(command)") }
        return out
    }

    @Test func aBegunMeterIsFinishedFirstAndRetriesGoBeforeNewMeters() {
        var pacer = CommandPacer(minSpacingSeconds: 0)
        pacer.enqueue("a", for: "M1", first: false, now: t0)
        pacer.enqueue("b", for: "M1", first: false, now: t0)
        pacer.enqueue("a", for: "M2", first: false, now: t0)
        pacer.enqueue("a", for: "M3", first: true, now: t0)  // a retry
        #expect(drain(&pacer, at: t0) == ["M3:a", "M1:a", "M1:b", "M2:a"])
        #expect(pacer.next(now: t0, isQueued: { _, _ in true }) == nil)
    }

    @Test func spacingHoldsAMetersNextCommandAndOthersGoMeanwhile() {
        var pacer = CommandPacer(minSpacingSeconds: 0.5)
        pacer.enqueue("a", for: "M1", first: false, now: t0)
        pacer.enqueue("b", for: "M1", first: false, now: t0)
        pacer.enqueue("a", for: "M2", first: false, now: t0)
        #expect(drain(&pacer, at: t0) == ["M1:a", "M2:a"])
        #expect(pacer.nextSpacingEnd == t0.adding(seconds: 0.5))
        #expect(drain(&pacer, at: t0.adding(seconds: 0.4)).isEmpty)
        #expect(drain(&pacer, at: t0.adding(seconds: 0.5)) == ["M1:b"])
        #expect(pacer.nextSpacingEnd == nil)
        // A command queued within the spacing of the last one sent waits for it.
        pacer.sent("M2", at: t0.adding(seconds: 1))
        pacer.enqueue("b", for: "M2", first: false, now: t0.adding(seconds: 1.1))
        #expect(drain(&pacer, at: t0.adding(seconds: 1.1)).isEmpty)
        #expect(drain(&pacer, at: t0.adding(seconds: 1.5)) == ["M2:b"])
    }

    @Test func resolvedNamesAreSkippedAndAForgottenMeterLeavesTheLines() {
        var pacer = CommandPacer(minSpacingSeconds: 0)
        pacer.enqueue("a", for: "M1", first: false, now: t0)
        pacer.enqueue("b", for: "M1", first: false, now: t0)
        pacer.enqueue("a", for: "M2", first: false, now: t0)
        pacer.forget("M2")
        #expect(drain(&pacer, at: t0, skipping: ["M1:a"]) == ["M1:b"])
        // Queued again after being forgotten: a new place in line, the old one is stale.
        pacer.enqueue("c", for: "M2", first: false, now: t0)
        #expect(drain(&pacer, at: t0) == ["M2:c"])
    }
}
