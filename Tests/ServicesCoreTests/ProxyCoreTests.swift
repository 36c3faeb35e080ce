import Foundation
import Journal
import Clock
import MQTT
import RuleEngine
import RuleTesting
import SiteSettings
import Testing
@testable import Services
@testable import ServicesFixtures

// Unit tests of the proxy's core over `CoreFixture` (ServicesFixtures).

@Suite struct ProxyCoreTests {
    @Test func aReadingGoesThroughTheJournalAndLeavesWithItsAcknowledgement() throws {
        let f = try CoreFixture()
        f.connectCentral()
        try f.receive(second: 0)
        #expect(f.transport.published.isEmpty, "nothing leaves before the journal write at the end of the iteration")
        #expect(f.core.journal.hasUnflushed)
        f.endIteration()
        #expect(!f.core.journal.hasUnflushed)
        #expect(f.transport.data.map(\.payload) == [ProxyHarness.cleanRTData(second: 0)])
        #expect(f.transport.published.contains { $0.topic == "kpm33b/discovery/33B1225950027" && $0.retain })
        #expect(f.core.journal.unacknowledgedCount == f.transport.published.count)
        f.acknowledgeAll()
        #expect(f.core.journal.unacknowledgedCount == 0)
        #expect(f.core.statistics.forwarded == 1)
        #expect(f.core.statistics.announced == 1)
        #expect(f.core.delivery.isDrained)
    }

    @Test func nothingIsSentWhileTheCentralBrokerIsAwayAndEverythingAfterInOrder() throws {
        let f = try CoreFixture()
        for second in 0..<50 {
            try f.receive(second: second)
            f.endIteration()
        }
        #expect(f.transport.published.isEmpty)
        // The 50 readings; the discovery message waits for the read-back of the central broker.
        #expect(f.core.journal.unacknowledgedCount == 50)
        f.connectCentral()
        #expect(f.core.journal.unacknowledgedCount == 51)
        f.endIteration()
        #expect(f.transport.data.map(\.payload) == (0..<50).map { ProxyHarness.cleanRTData(second: $0) })
        #expect(f.transport.published.last?.topic == "kpm33b/discovery/33B1225950027")
    }

    @Test func atMostAWindowIsUnacknowledgedAndEachAcknowledgementLetsMoreGo() throws {
        let f = try CoreFixture()
        f.core.settings.window = 16
        for second in 0..<40 { try f.receive(second: second) }
        f.connectCentral()
        f.endIteration()
        #expect(f.transport.published.count == 16)
        f.acknowledgeAll()
        f.endIteration()
        #expect(f.transport.published.count == 32)
        f.acknowledgeAll()
        f.endIteration()
        f.acknowledgeAll()
        #expect(f.transport.published.count == 41)
        #expect(f.core.delivery.isDrained)
    }

    /// After a reconnect libmosquitto sends the unacknowledged messages again
    /// itself: new ones wait for them, so that order survives.
    @Test func newRecordsWaitForTheResentOnesAfterAReconnect() throws {
        let f = try CoreFixture()
        f.connectCentral()
        try f.receive(second: 0)
        f.endIteration()
        let before = f.transport.published.count
        f.connectCentral(false)
        f.connectCentral(true)
        try f.receive(second: 1)
        f.endIteration()
        #expect(f.transport.published.count == before, "sent ahead of the resent messages")
        f.acknowledgeAll()
        f.endIteration()
        #expect(f.transport.data.map(\.payload).last == ProxyHarness.cleanRTData(second: 1))

        // Acknowledgements that never come: the hold ends after the grace period.
        f.connectCentral(false)
        f.connectCentral(true)
        try f.receive(second: 2)
        f.endIteration()
        #expect(f.transport.data.map(\.payload).last == ProxyHarness.cleanRTData(second: 1))
        f.endIteration(after: f.core.settings.resendGraceSeconds + 0.1)
        #expect(f.transport.data.map(\.payload).last == ProxyHarness.cleanRTData(second: 2))
    }

    /// A restart sends what the journal holds, in order, before new data;
    /// what was acknowledged is not sent again.
    @Test func aRestartReplaysTheJournalInOrderBeforeNewData() throws {
        let f = try CoreFixture()
        f.connectCentral()
        for second in 0..<10 { try f.receive(second: second) }
        f.endIteration()
        f.acknowledgeAll()
        f.endIteration(after: 0.1)  // the acknowledged position is written (at most every 50 ms)
        f.connectCentral(false)
        for second in 10..<30 { try f.receive(second: second) }
        f.endIteration()
        try f.restart()
        #expect(f.core.journal.recovery.records == 20)
        try f.receive(second: 30, id: "33B1225950031")
        f.connectCentral()
        f.endIteration()
        let sent = f.transport.data.map(\.payload)
        #expect(sent == (10..<30).map { ProxyHarness.cleanRTData(second: $0) }
                + [ProxyHarness.cleanRTData(second: 30, id: "33B1225950031")])
    }

    /// A record corrupted on disk while the proxy was stopped costs that
    /// record only: the others are sent after the restart, and the status
    /// counts the lost one (`corrupt_at_start`).
    @Test func aCorruptRecordCostsOneRecordAndIsCountedInTheStatus() throws {
        let f = try CoreFixture()
        for second in 0..<10 { try f.receive(second: second) }
        f.endIteration()
        f.core.journal.close()
        let segments = try FileManager.default.contentsOfDirectory(atPath: f.directory + "/journal").filter { $0.hasSuffix(".seg") }
        let path = f.directory + "/journal/" + segments.sorted()[0]
        var bytes = [UInt8](try Data(contentsOf: URL(fileURLWithPath: path)))
        // The 5th record's payload: skip four frames by their length fields.
        var offset = 0
        for _ in 0..<4 { offset += 8 + Int(bytes[offset]) | Int(bytes[offset + 1]) << 8 }
        bytes[offset + 8 + 40] ^= 0x10
        try Data(bytes).write(to: URL(fileURLWithPath: path))
        try f.restart()
        f.connectCentral()
        f.endIteration()
        #expect(f.transport.data.map(\.payload) == [0, 1, 2, 3, 5, 6, 7, 8, 9].map { ProxyHarness.cleanRTData(second: $0) })
        let status = f.core.delivery.journalStatus(at: f.clock, wallClock: Instant(epochMillis: 1_768_235_950_000))
        #expect(status.corruptAtStart == 1)
        let document = f.core.statistics.status(state: "online", version: "0", started: Instant(epochMillis: 0),
                                                  now: Instant(epochMillis: 0), journal: status, metersSeen: 0, metersOnline: 0, forwardedPerMinute: 0,
                                                  problems: f.core.problems).json
        #expect(document["journal"]?["corrupt_at_start"] == 1)
    }

    /// 20,000 new meters (each brings its discovery message and Home
    /// Assistant device config) into a 1 MiB journal, read up to 64 at a time
    /// as the loop reads, from a central broker that acknowledges only while
    /// reading is paused: reading stops at the message that reached the
    /// limit, the journal never passes its bound, and every reading arrives.
    @Test func newMetersNeverPushTheJournalPastItsBound() throws {
        let f = try CoreFixture(maxBytes: 1 << 20, homeAssistant: true)
        f.connectCentral()
        let total = 20_000
        func id(_ i: Int) -> String { "33B" + String(1_000_000_000 + i) }
        var next = 0
        var largest = 0
        var pauses = 0
        while next < total || f.core.journal.unacknowledgedCount > 0 {
            var read = 0
            while f.transport.reading && next < total && read < 64 {
                try f.receive(second: next % 3600, id: id(next))
                largest = max(largest, f.core.journal.bytes)
                next += 1
                read += 1
            }
            f.endIteration(after: 0.01)
            largest = max(largest, f.core.journal.bytes)
            if !f.transport.reading || next == total {
                pauses += 1
                f.acknowledgeAll()
                f.endIteration(after: 0.01)
            }
        }
        #expect(pauses > 20, "the journal filled \(pauses) times")
        #expect(largest <= 1 << 20, "the journal reached \(largest) bytes")
        #expect(f.core.statistics.dropped.isEmpty, "dropped: \(f.core.statistics.dropped)")
        let ids = Set(f.transport.data.compactMap { $0.topic.split(separator: "/").dropFirst().first.map(String.init) })
        #expect(ids.count == total)
        #expect(Set(f.transport.published.filter { $0.topic.hasPrefix("kpm33b/discovery/") }.map(\.topic)).count == total)
    }

    /// 3,000 new meters read in one loop iteration (their readings, discovery
    /// messages and Home Assistant device configs: more than 128 KiB many
    /// times over): the journal's write buffer is written whenever it passes
    /// `unflushedLimit`, so it never holds much more, yet nothing leaves
    /// before the iteration ends, and then everything does.
    @Test func aBurstInOneIterationIsWrittenAsItComesNotBuffered() throws {
        let f = try CoreFixture(homeAssistant: true)
        f.connectCentral()
        let total = 3_000
        var largest = 0
        for i in 0..<total {
            try f.receive(second: i % 3600, id: "33B" + String(1_000_000_000 + i))
            largest = max(largest, f.core.journal.unflushedBytes)
        }
        #expect(f.core.journal.bytes > 8 * ProxyCore.unflushedLimit, "the burst appended \(f.core.journal.bytes) bytes")
        #expect(largest >= ProxyCore.unflushedLimit / 2)
        #expect(largest < ProxyCore.unflushedLimit + 8192, "the write buffer held \(largest) bytes")
        #expect(f.transport.published.isEmpty, "nothing leaves before the iteration ends")
        // Then a window at a time, as the central broker acknowledges.
        for _ in 0..<1_000 where !f.core.delivery.isDrained {
            f.endIteration()
            f.acknowledgeAll()
        }
        #expect(Set(f.transport.data.map(\.topic)).count == total)
        #expect(f.core.delivery.isDrained)
    }

    /// `max_meters`: a new id past the limit is dropped (`meter_limit`) before
    /// any per-meter table holds it; the known meters go on; the problem is
    /// in the status; the ledger and the other instances' tables keep to it.
    @Test func aNewMeterPastTheLimitIsDroppedAndFlagged() throws {
        let f = try CoreFixture()
        f.core.settings.maxMeters = 3
        f.core.reload(ProgramSet(single: f.program), now: Instant(epochMillis: 1_768_235_940_000))
        f.connectCentral()
        let ids = (0..<5).map { "33B" + String(1_000_000_000 + $0) }
        for (second, id) in ids.enumerated() { try f.receive(second: second, id: id) }
        try f.receive(second: 10, id: ids[0])
        f.endIteration()
        #expect(f.core.statistics.dropped == ["meter_limit": 2])
        #expect(f.core.engine.seenDevices == Array(ids[0..<3]))
        #expect(Set(f.core.engine.heard.map(\.id)) == Set(ids[0..<3]))
        #expect(f.transport.data.count == 4, "the known meters' readings go on")
        #expect(f.core.problems.count == 1 && f.core.problems[0].hasPrefix("meter_limit"))
        let document = f.core.statistics.status(state: "online", version: "0", started: Instant(epochMillis: 0),
                                                  now: Instant(epochMillis: 0), journal: f.core.delivery.journalStatus(at: f.clock, wallClock: Instant(epochMillis: 0)),
                                                  metersSeen: f.core.engine.metersHeard, metersOnline: 0, forwardedPerMinute: 0, problems: f.core.problems).json
        #expect(document["problems"]?.arrayValue?.count == 1)
        #expect(document["meters_seen"] == 3)
        #expect(document["counters"]?["dropped"]?["meter_limit"] == 2)
        // The read-back of the central broker: announcements of more meters than the limit.
        f.connectCentral(false)
        f.connectCentral(retained: (0..<6).map { i in
            let id = "33B" + String(2_000_000_000 + i)
            return ("kpm33b/discovery/\(id)", #"{"id":"\#(id)","pack":"kpm33b"}"#)
        })
        // Three of the retained meters are held, and the proxy's own three (at most twice the limit).
        #expect(f.core.announcements.ledger.overflowed == 3)
        #expect(f.core.announcements.ledger.meters.count == 6)
        #expect(f.core.problems.contains { $0.contains("not read back") })
        // Another instance declaring more meters silent than the limit.
        for i in 0..<6 {
            f.core.meterSilence(id: "33B\(3_000_000_000 + i)", MeterSilence(instance: "other", lastSeen: nil), now: Instant(epochMillis: 0))
        }
        #expect(f.core.announcements.ownership.silentElsewhereCount == 3)
    }

    /// A full journal stops reading the internal broker instead of dropping;
    /// acknowledgements make room and reading resumes.
    @Test func aFullJournalAppliesBackPressureThenRecovers() throws {
        let f = try CoreFixture(maxBytes: 256 << 10)
        var second = 0
        while f.transport.reading && second < 5000 {
            try f.receive(second: second)
            f.endIteration()
            second += 1
        }
        #expect(!f.transport.reading, "reading never stopped")
        #expect(f.core.journal.bytes >= f.core.delivery.readLimit && f.core.journal.bytes <= f.core.journal.maxBytes)
        #expect(f.core.statistics.dropped.isEmpty, "dropped: \(f.core.statistics.dropped)")
        let status = f.core.delivery.journalStatus(at: f.clock, wallClock: Instant(epochMillis: 1_768_235_950_000))
        #expect(status.backPressureActive)

        f.connectCentral()
        while !f.transport.reading && f.core.journal.unacknowledgedCount > 0 {
            f.endIteration(after: 0.5)
            f.acknowledgeAll()
        }
        f.endIteration()
        #expect(f.transport.reading, "reading did not resume")
        #expect(f.core.delivery.journalStatus(at: f.clock, wallClock: Instant(epochMillis: 0)).backPressureSeconds > 0)
        while f.core.journal.unacknowledgedCount > 0 {
            f.endIteration()
            f.acknowledgeAll()
        }
        #expect(f.transport.data.map(\.payload) == (0..<second).map { ProxyHarness.cleanRTData(second: $0) })
    }

    @Test func aPassingPublishFailureKeepsTheRecordForTheNextTry() throws {
        let f = try CoreFixture()
        f.connectCentral()
        try f.receive(second: 0)
        f.transport.refuseNext = 1
        f.endIteration()
        #expect(f.transport.published.isEmpty)
        f.endIteration()
        #expect(f.transport.data.map(\.payload) == [ProxyHarness.cleanRTData(second: 0)])
        #expect(f.core.statistics.dropped.isEmpty)
    }

    /// No refusal is silently final: quota exceeded (0x97) sends the record
    /// again after a back-off, server busy (0x89) too, and it is delivered;
    /// not authorized (0x87) moves it to the dead letters, flagged as a problem.
    @Test func refusalsAreRetriedOrDeadLettered() throws {
        let f = try CoreFixture()
        f.connectCentral()
        try f.receive(second: 0)
        f.endIteration()
        var sent = try #require(f.transport.data.last)
        f.core.delivery.rejected(sent.mid, code: 0x97, reason: "Quota exceeded", at: f.clock)
        f.acknowledgeAll()
        #expect(!f.core.delivery.isDrained, "the record stays in the journal")
        f.endIteration(after: 0.5)
        #expect(f.transport.data.count == 1, "not before its back-off")
        f.endIteration(after: 0.6)
        #expect(f.transport.data.count == 2, "sent again after 1 s")
        sent = try #require(f.transport.data.last)
        f.core.delivery.rejected(sent.mid, code: 0x89, reason: "Server busy", at: f.clock)
        f.acknowledgeAll()
        f.endIteration(after: 1.1)
        #expect(f.transport.data.count == 2, "the second back-off is 2 s")
        f.endIteration(after: 1.0)
        #expect(f.transport.data.count == 3)
        #expect(f.core.problems.contains { $0.hasPrefix("publish_refused") } == false || f.core.statistics.refusedRetried == 2)
        f.acknowledgeAll()
        #expect(f.core.delivery.isDrained)
        #expect(f.core.statistics.forwarded == 1)
        #expect(f.core.statistics.refusedRetried == 2)
        #expect(f.core.problems.isEmpty)

        try f.receive(second: 1)
        f.endIteration()
        sent = try #require(f.transport.data.last)
        f.core.delivery.rejected(sent.mid, code: 0x87, reason: "Not authorized", at: f.clock)
        f.acknowledgeAll()
        f.endIteration(after: 120)
        #expect(f.transport.data.count == 4, "a permanent refusal is not sent again")
        #expect(f.core.delivery.isDrained)
        let letters = try DeadLetters(directory: f.directory).load().letters
        #expect(letters.map(\.topic) == ["kpm33b/33B1225950027/seconds"])
        #expect(letters.first.map { String(decoding: $0.payload, as: UTF8.self) } == ProxyHarness.cleanRTData(second: 1))
        #expect(letters.first?.code == 0x87)
        #expect(f.core.problems.contains { $0.hasPrefix("dead_letters: 1") })
    }

    /// The read-back knows whether it saw everything: it is judged against the
    /// meters this proxy announced (kept in the state directory across a
    /// restart), so a broker that drops retained messages on the way cannot
    /// make it look complete; the status and the problems say so.
    @Test func aReadBackThatMissesAnnouncementsIsIncomplete() throws {
        let f = try CoreFixture()
        f.connectCentral()
        let ids = (0..<3).map { "33B" + String(1_000_000_000 + $0) }
        for (second, id) in ids.enumerated() { try f.receive(second: second, id: id) }
        f.endIteration()
        #expect(f.core.announcements.announced == Set(ids))
        #expect(f.core.announcements.readBack?.complete == true)
        _ = f.core.announcements.saveAnnounced()
        try f.restart()
        #expect(f.core.announcements.announced == Set(ids), "kept across a restart")
        func discovery(_ id: String) -> (String, String) { ("kpm33b/discovery/\(id)", #"{"id":"\#(id)","pack":"kpm33b"}"#) }
        // The broker hands back one of the three (it dropped the rest on the way).
        f.connectCentral(retained: [discovery(ids[1])])
        #expect(f.core.announcements.readBack?.complete == false)
        #expect(f.core.announcements.readBack?.seen == 1 && f.core.announcements.readBack?.announced == 3)
        #expect(f.core.problems.contains { $0.hasPrefix("read_back_incomplete: 1 of 3") }, "\(f.core.problems)")
        let document = f.core.statistics.status(state: "online", version: "0", started: Instant(epochMillis: 0),
                                                  now: Instant(epochMillis: 0), journal: f.core.delivery.journalStatus(at: f.clock, wallClock: Instant(epochMillis: 0)),
                                                  metersSeen: f.core.engine.metersHeard, metersOnline: 0, forwardedPerMinute: 0, problems: f.core.problems, readBack: f.core.announcements.readBack).json
        #expect(document["read_back"]?["complete"] == false)
        // All three: complete again.
        f.connectCentral(false)
        f.connectCentral(retained: ids.map(discovery))
        #expect(f.core.announcements.readBack?.complete == true)
        #expect(f.core.problems.isEmpty)
    }

    @Test func refusedAndOversizedMessagesAreCountedUnderNamedReasons() throws {
        let f = try CoreFixture()
        f.connectCentral()
        try f.receive(second: 0)
        f.endIteration()
        let data = try #require(f.transport.data.first)
        f.core.delivery.rejected(data.mid, code: 0x87, reason: "Not authorized", at: f.clock)
        f.acknowledgeAll()
        #expect(f.core.statistics.deadLettered == 1)
        #expect(f.core.statistics.forwarded == 0)
        #expect(f.core.delivery.isDrained)

        let big = [UInt8](repeating: 0x20, count: 5000)
        big.withUnsafeBytes { f.core.received(topic: "MQTT_RT_DATA", payload: $0, now: Instant(epochMillis: 0)) }
        #expect(f.core.statistics.dropped[ProxyStatistics.tooLarge] == 1)
        #expect(f.core.statistics.received == 2)
    }

    /// The meters heard (the status's `meters_seen`, their silence) survive
    /// a reload: the new engine takes when each was last heard.
    @Test func theMetersHeardSurviveAReload() throws {
        let f = try CoreFixture()
        f.connectCentral()
        try f.receive(second: 0, id: "33B1225950027")
        try f.receive(second: 1, id: "33B1225950028")
        #expect(f.core.engine.metersHeard == 2)
        f.core.reload(ProgramSet(single: f.program), now: Instant(epochMillis: 1_768_235_950_000))
        #expect(f.core.engine.seenDevices.isEmpty, "a new engine")
        #expect(f.core.engine.metersHeard == 2)
        #expect(f.core.engine.lastHeard("33B1225950028") == Instant(epochMillis: 1_768_235_940_000))
        try f.receive(second: 2, id: "33B1225950027")
        #expect(f.core.engine.metersHeard == 2)
    }

    /// The energy guard's memory survives a reload and a restart (through
    /// `counters.db` in the state directory): 0.000 after 163.486 is a glitch
    /// either way.
    @Test func guardedCountersSurviveReloadAndRestart() throws {
        let f = try CoreFixture()
        f.connectCentral()
        func energy(_ value: String, minute: Int) {
            let payload = Array(#"{"id":"33B1225950027","zygsz":\#(value),"fwgsz":11.085,"time":"202601121\#(600 + minute)00","isend":"1"}"#.utf8)
            payload.withUnsafeBytes { f.core.received(topic: "MQTT_ENY_NOW", payload: $0, now: Instant(epochMillis: 1_768_235_940_000)) }
        }
        energy("163.486", minute: 0)
        f.core.reload(ProgramSet(single: f.program), now: Instant(epochMillis: 1_768_235_940_000))
        energy("0.000", minute: 1)
        #expect(f.core.statistics.dropped["counter_glitch"] == 1)

        let store = CounterStore(directory: f.directory)
        _ = try store.load(now: Instant(epochMillis: 0))
        store.submit(CounterChanges(changed: f.core.engine.counters))
        #expect(store.flush(seconds: 30))
        try f.restart()
        #expect(f.core.engine.counters.isEmpty)
        let loaded = try CounterStore(directory: f.directory).load(now: Instant(epochMillis: 0))
        #expect(loaded.problem == nil && loaded.movedAside == nil)
        let saved = loaded.counters
        #expect(saved == [CounterSnapshot(device: "33B1225950027", field: "active_energy", value: 163.486,
                                          time: saved.first?.time ?? 0)])
        f.core.engine.restore(saved)
        energy("16.349", minute: 2)
        energy("163.490", minute: 3)
        #expect(f.core.statistics.dropped["counter_glitch"] == 1)
        f.connectCentral()
        f.endIteration()
        let minutes = f.transport.published.filter { $0.topic.hasSuffix("/minutes") }.map(\.payload)
        #expect(minutes == [#"{"id":"33B1225950027","time":"20260112160300","active_energy":163.490}"#])

        try "not json".write(toFile: store.legacyPath, atomically: true, encoding: .utf8)
        #expect(try store.load(now: Instant(epochMillis: 0)).problem != nil)
    }

    /// A slow disk costs the loop nothing: the guarded counters that changed
    /// go to the counters database's writer thread by value; only the
    /// shutdown's final flush waits for them.
    @Test func aSlowDiskDoesNotHoldTheLoop() throws {
        let f = try CoreFixture()
        f.connectCentral()
        try f.core.loadCounters(ProxyCounters(stateDirectory: f.directory, writeDelaySeconds: 1.5), now: Instant(epochMillis: 0))
        let meters = ["33B1225950027", "33B1225950028"]
        var slowest = Duration.zero
        for (minute, id) in meters.enumerated() {
            let payload = Array(#"{"id":"\#(id)","zygsz":163.486,"fwgsz":11.085,"time":"202601121\#(600 + minute)00","isend":"1"}"#.utf8)
            payload.withUnsafeBytes { f.core.received(topic: "MQTT_ENY_NOW", payload: $0, now: Instant(epochMillis: 1_768_235_940_000)) }
            let start = ContinuousClock.now
            f.core.tick(now: Instant(epochMillis: 1_768_235_940_000 + Int64(minute) * 1_000))
            slowest = max(slowest, ContinuousClock.now - start)
        }
        let store = try #require(f.core.counters?.store)
        #expect(store.backlog > 0, "each transaction takes 1.5 s: the writer is still at it")
        #expect(slowest < .milliseconds(500), "the loop waited for the disk: \(slowest)")
        #expect(try CounterStore.readCounters(path: store.path).map(\.device) != meters)

        let start = ContinuousClock.now
        f.core.saveState()
        #expect(ContinuousClock.now - start >= .seconds(1), "the final flush waits for the writer")
        #expect(store.backlog == 0)
        #expect(try CounterStore.readCounters(path: store.path).map(\.device) == meters)
    }
}
