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

    /// What waits costs bytes per meter, not a message per command: with
    /// 10,000 meters discovered and two commands in flight, the only messages
    /// held are the two sent; the 29,998 waiting are a meter id and two bytes
    /// each, in no allocation of their own.
    @Test func theQueueHoldsNoMessagePerWaitingCommand() throws {
        var p = try planner(maxInFlight: 2, minSpacingMs: 0)
        let meters = (0..<10_000).map { "33B12\(10_000_000 + $0)" }
        for id in meters { _ = p.discovered(id, clockOffsetSeconds: nil, now: senderT0) }
        #expect(p.queuedCount == 29_998)
        #expect(p.pendingCount == 30_000)
        #expect(p.window.count == 2, "a message is held for each command sent, and only for those")
        #expect(p.pacer.spilledMeters == 0)
        #expect(MemoryLayout<MeterCommandQueue>.size <= 16)
        // The status lists the first pending commands by meter without building the others.
        let listed = p.pending(first: ConfigSenderStatus.pendingListLimit)
        #expect(listed.map(\.meter) == Array(meters.prefix(4).flatMap { Array(repeating: $0, count: 3) }.prefix(10)))
        #expect(listed.prefix(2).allSatisfy { $0.awaitingReply && $0.message != nil })
        #expect(listed.dropFirst(2).allSatisfy { $0.queued && $0.message == nil && $0.reason == .discovery })
    }
}

/// `CommandPacer`'s own contract: the order of its three lines, the spacing,
/// commands resolved while queued, a forgotten meter, new packs.
@Suite struct CommandPacerTests {
    let t0 = MonotonicInstant(nanoseconds: 1_000_000_000)

    func pacer(spacing: Double) -> CommandPacer { CommandPacer(commandNames: ["a", "b", "c"], minSpacingSeconds: spacing) }

    /// Everything `next` hands out at `now`, as `meter:command`.
    func drain(_ pacer: inout CommandPacer, at now: MonotonicInstant) -> [String] {
        var out: [String] = []
        while let (meter, command, _) = pacer.next(now: now) { out.append("\(meter):\(command)") }
        return out
    }

    @Test func aBegunMeterIsFinishedFirstAndRetriesGoBeforeNewMeters() {
        var pacer = pacer(spacing: 0)
        pacer.enqueue("a", for: "M1", reason: .discovery, first: false, now: t0)
        pacer.enqueue("b", for: "M1", reason: .discovery, first: false, now: t0)
        pacer.enqueue("a", for: "M2", reason: .discovery, first: false, now: t0)
        pacer.enqueue("a", for: "M3", reason: .discovery, first: true, now: t0)  // a retry
        #expect(pacer.count == 4)
        #expect(drain(&pacer, at: t0) == ["M3:a", "M1:a", "M1:b", "M2:a"])
        let none = pacer.next(now: t0)
        #expect(none == nil)
        #expect(pacer.count == 0)
    }

    @Test func spacingHoldsAMetersNextCommandAndOthersGoMeanwhile() {
        var pacer = pacer(spacing: 0.5)
        pacer.enqueue("a", for: "M1", reason: .discovery, first: false, now: t0)
        pacer.enqueue("b", for: "M1", reason: .discovery, first: false, now: t0)
        pacer.enqueue("a", for: "M2", reason: .discovery, first: false, now: t0)
        #expect(drain(&pacer, at: t0) == ["M1:a", "M2:a"])
        #expect(pacer.nextSpacingEnd == t0.adding(seconds: 0.5))
        #expect(drain(&pacer, at: t0.adding(seconds: 0.4)).isEmpty)
        #expect(drain(&pacer, at: t0.adding(seconds: 0.5)) == ["M1:b"])
        #expect(pacer.nextSpacingEnd == nil)
        // A command queued within the spacing of the last one sent waits for it.
        pacer.sent("M2", at: t0.adding(seconds: 1))
        pacer.enqueue("b", for: "M2", reason: .discovery, first: false, now: t0.adding(seconds: 1.1))
        #expect(drain(&pacer, at: t0.adding(seconds: 1.1)).isEmpty)
        #expect(drain(&pacer, at: t0.adding(seconds: 1.5)) == ["M2:b"])
    }

    @Test func resolvedCommandsLeaveTheQueueAndAForgottenMeterLeavesTheLines() {
        var pacer = pacer(spacing: 0)
        pacer.enqueue("a", for: "M1", reason: .discovery, first: false, now: t0)
        pacer.enqueue("b", for: "M1", reason: .clockOffset, first: false, now: t0)
        pacer.enqueue("a", for: "M2", reason: .discovery, first: false, now: t0)
        let forgotten = pacer.forget("M2")
        #expect(forgotten == ["a"])
        let removed = pacer.remove("a", of: "M1"), removedAgain = pacer.remove("a", of: "M1")
        #expect(removed && !removedAgain)
        #expect(pacer.isQueued("b", of: "M1") && !pacer.isQueued("a", of: "M1"))
        #expect(pacer.queued(of: "M1").map(\.reason) == [.clockOffset])
        #expect(drain(&pacer, at: t0) == ["M1:b"])
        // Queued again after being forgotten: a new place in line, the old one is stale.
        pacer.enqueue("c", for: "M2", reason: .discovery, first: false, now: t0)
        #expect(drain(&pacer, at: t0) == ["M2:c"])
        #expect(pacer.count == 0)
    }

    @Test func aCommandWaitsOnceAndAnUnknownOneIsRefused() {
        var pacer = pacer(spacing: 0)
        let queued = pacer.enqueue("a", for: "M1", reason: .discovery, first: false, now: t0)
        let again = pacer.enqueue("a", for: "M1", reason: .periodic, first: false, now: t0)
        let unknown = pacer.enqueue("z", for: "M1", reason: .discovery, first: false, now: t0)
        #expect(queued && again && !unknown)
        #expect(pacer.count == 1)
        #expect(pacer.queued(of: "M1").map(\.reason) == [.discovery])
    }

    @Test func newPacksKeepTheQueuesAndDropWhatTheyNoLongerHave() {
        var pacer = pacer(spacing: 0)
        pacer.enqueue("c", for: "M1", reason: .clockOffset, first: false, now: t0)
        pacer.enqueue("a", for: "M1", reason: .discovery, first: false, now: t0)
        pacer.enqueue("b", for: "M2", reason: .discovery, first: false, now: t0)
        let dropped = pacer.replaceCommandNames(["c", "x", "a"])
        #expect(dropped.map { "\($0.meter):\($0.command)" } == ["M2:b"])
        #expect(pacer.count == 2)
        #expect(pacer.queued(of: "M1").map { "\($0.command)/\($0.reason.name)" } == ["c/clock_offset", "a/discovery"])
        #expect(drain(&pacer, at: t0) == ["M1:c", "M1:a"])
    }
}

/// `MeterCommandQueue`: first in first out, each command once, four in a
/// word and the rest in an array, in order.
@Suite struct MeterCommandQueueTests {
    @Test func keepsItsOrderInTheWordAndBeyondIt() {
        var queue = MeterCommandQueue()
        let entries = (0..<7).map { MeterCommandQueue.Entry(command: $0 * 3, reason: CommandReason.allCases[$0 % 5]) }
        for entry in entries.prefix(4) { queue.append(entry) }
        #expect(!queue.spilled && queue.count == 4)
        for entry in entries.dropFirst(4) { queue.append(entry) }
        #expect(queue.spilled && queue.count == 7)
        #expect(queue.entries == entries)
        #expect(queue.contains(command: 18) && !queue.contains(command: 1))
        let removed = queue.remove(command: 3)
        #expect(removed == entries[1])
        #expect(queue.entries == [entries[0]] + entries[2...])
        var popped: [MeterCommandQueue.Entry] = []
        while let entry = queue.popFirst() { popped.append(entry) }
        #expect(popped == [entries[0]] + entries[2...])
        #expect(queue.isEmpty && !queue.spilled)
    }

    @Test func anIndexBeyondAByteStillKeepsItsPlace() {
        var queue = MeterCommandQueue()
        let entries = [0, 300, 2].map { MeterCommandQueue.Entry(command: $0, reason: .periodic) }
        for entry in entries { queue.append(entry) }
        #expect(queue.entries == entries)
        var popped: [MeterCommandQueue.Entry] = []
        while let entry = queue.popFirst() { popped.append(entry) }
        #expect(popped == entries)
    }
}
