import Foundation
import JSON
@testable import MQTT
import RuleEngine
import Testing
import TestSupport
@testable import Services
@testable import ServicesFixtures

// Unit tests of the config sender's core over `SenderCoreFixture`: the whole
// flow (discovery in → command out → reply in → state file → status out) and
// the shutdown, with no broker, no thread and no real clock.

@Suite struct ConfigSenderCoreTests {
    @Test func discoveryToStatusWithNoBroker() throws {
        let f = try SenderCoreFixture()
        f.connect()
        f.discover(senderMeterA)
        let short = String(senderMeterA.suffix(8))
        #expect(f.transport.commands.map(\.topic).sorted() ==
            ["MQTT_COMMOD_SET_\(short)", "MQTT_COMMOD_SET_\(short)", "MQTT_SETTIME_\(short)"])
        #expect(f.transport.commands.allSatisfy { $0.json?["oprid"]?.stringValue?.utf8.count == 32 })
        #expect(f.core.commandsInFlight.count == 3)
        #expect(f.transport.commands.first { $0.json?["Cmd"]?.stringValue == "0000" }?.json?["value"]?.stringValue == "60")

        // The end of the iteration: no result to save yet, one status with the meter pending.
        f.core.endOfIteration(at: f.now)
        #expect(f.savedRecords[senderMeterA]?.commands.isEmpty != false)
        #expect(f.transport.statuses.count == 1)
        let first = try #require(f.transport.statuses.first)
        #expect(first.topic == SenderCoreFixture.statusTopic && first.retain)
        #expect(f.lastStatus?["pending_commands"]?.intValue == 3)
        #expect(f.configuration(senderMeterA)?.lastResult == "pending")

        // PUBACKs, then the replies: recorded, saved once at the end of the iteration.
        for c in f.transport.commands { f.core.commandAcknowledged(c.mid) }
        #expect(f.core.commandsInFlight.isEmpty)
        f.advance(1.5)
        for c in f.transport.commands { f.answer(c) }
        #expect(f.savedRecords[senderMeterA]?.acknowledgedDate == nil, "the state is written at the end of the iteration, not per reply")
        f.core.endOfIteration(at: f.now)
        let record = try #require(f.savedRecords[senderMeterA])
        #expect(record.acknowledgedDate == "2026-01-12")
        #expect(record.commands.values.allSatisfy { $0.outcome == .success })
        #expect(f.transport.statuses.count == 2)
        #expect(f.lastStatus?["pending_commands"]?.intValue == 0)
        #expect(f.configuration(senderMeterA)?.lastResult == "success")
        #expect(f.configuration(senderMeterA)?.acknowledgedDate == "2026-01-12")
        #expect(f.lastStatus?["connections"]?["internal"]?.stringValue == "connected")
        #expect(f.lastStatus?["meters_configured"]?.intValue == 1)
        #expect(f.lastStatus?["meters_failed"]?.intValue == 0)
        #expect(f.lines("meter_configured").count == 1)

        // config-sender is a device in Home Assistant, over this status; the
        // meter's problem sensor sits on the meter's own device.
        let problemConfig = "homeassistant/binary_sensor/kpm33b_\(senderMeterA)/problem/config"
        #expect(Set(f.transport.healthConfigs.map(\.topic)) == Set(HealthDevice.configSender.entities.map {
            "homeassistant/\($0.component)/kpm33b_config_sender/\($0.object)/config"
        } + [problemConfig]))
        let sensor = try #require(f.transport.healthConfigs.first { $0.topic == problemConfig }?.json)
        #expect(sensor["device"]?["identifiers"] == [.string("kpm33b_\(senderMeterA)")])
        #expect(sensor["state_topic"]?.stringValue == "kpm33b/\(senderMeterA)/problem")
        #expect(f.transport.problems.last?.json == ["problem": false])
        for config in f.transport.healthConfigs where config.topic != problemConfig {
            #expect(config.json?["state_topic"]?.stringValue == SenderCoreFixture.statusTopic)
            #expect(config.json?["device"]?["identifiers"] == ["kpm33b_config_sender"])
        }

        // The same meter discovered again the same day: nothing goes out.
        f.discover(senderMeterA)
        #expect(f.transport.commands.count == 3)
    }

    /// Each meter's `problem` in Home Assistant follows what config-sender
    /// knows: a clock its discovery reports off, then fixed; published only
    /// when it changes.
    @Test func aMetersProblemFollowsItsClockAndIsPublishedOnChange() throws {
        let f = try SenderCoreFixture(statusMinIntervalSeconds: 0)
        f.connect()
        f.discover(senderMeterA, clockOffset: 3600)
        f.core.endOfIteration(at: f.now)
        #expect(f.transport.problems.last?.json == ["problem": true, "reason": "clock off by 3600 s"])
        f.advance(1)
        f.discover(senderMeterA, clockOffset: 3600)
        f.core.endOfIteration(at: f.now)
        #expect(f.transport.problems.count == 1, "published again without a change")
        f.advance(1)
        f.discover(senderMeterA)
        f.core.endOfIteration(at: f.now)
        #expect(f.transport.problems.last?.json == ["problem": false])
        #expect(f.transport.problems.count == 2)
        #expect(f.transport.healthConfigs.filter { $0.topic.hasSuffix("/problem/config") }.count == 1)
    }

    @Test func replyAndDiscoveryNoiseIsLoggedNotFatal() throws {
        let f = try SenderCoreFixture()
        f.connect()
        f.core.replyReceived(topic: "MQTT_COMMOD_SET_REP", payload: Array("{not json".utf8), at: f.now)
        f.core.discoveryReceived(topic: "kpm33b/discovery/\(senderMeterA)", payload: Array("[1]".utf8), at: f.now)
        // A topic outside the discovery subscription is not a discovery.
        f.core.discoveryReceived(topic: "kpm33b/other/\(senderMeterA)", payload: Array("{}".utf8), at: f.now)
        #expect(f.lines("reply_ignored").count == 1)
        #expect(f.lines("discovery_ignored").count == 1)
        #expect(f.transport.commands.isEmpty)
        #expect(f.core.planner.knownMeters.isEmpty)
    }

    @Test func commandRefusedByTheBrokerIsFoundByItsMessageID() throws {
        let f = try SenderCoreFixture()
        f.connect()
        f.discover(senderMeterA)
        let clock = try #require(f.transport.commands.first { $0.topic.hasPrefix("MQTT_SETTIME_") })
        let other = try #require(f.transport.commands.first { !$0.topic.hasPrefix("MQTT_SETTIME_") })
        // The acknowledged one is forgotten: a refusal naming it afterwards changes nothing.
        f.core.commandAcknowledged(other.mid)
        f.core.commandRefused(other.mid, reason: "late", at: f.now)
        #expect(f.core.planner.pending.count == 3)
        // MQTT 5 sends the refusal just before the acknowledgement of the same id.
        f.core.commandRefused(clock.mid, reason: "Not authorized", at: f.now)
        f.core.commandAcknowledged(clock.mid)
        #expect(f.core.planner.records[senderMeterA]?.commands["set_clock"]?.outcome == .failure)
        #expect(f.core.planner.pending.map(\.command).sorted() == ["set_upload_interval_minutes", "set_upload_interval_seconds"])
        #expect(f.lines("command_refused").count == 1)
    }

    @Test func aFailedPublishIsLoggedAndRetriedByTheTimeout() throws {
        let f = try SenderCoreFixture()
        f.connect()
        f.transport.commandsFail = true
        f.discover(senderMeterA)
        #expect(f.lines("publish_failed").count == 3)
        #expect(f.core.planner.awaitingReplyCount == 3)
        f.transport.commandsFail = false
        // Timeout 1 s, then a backoff of 0.5 s: the retry goes out at 1.5 s.
        f.advance(1.01)
        f.core.tick(at: f.now)
        #expect(f.transport.commands.isEmpty)
        f.advance(0.5)
        f.core.tick(at: f.now)
        #expect(f.transport.commands.count == 3)
    }

    @Test func statusIsRateLimitedAndRepublishedAfterTheCentralBrokerReturns() throws {
        let f = try SenderCoreFixture()
        f.connect()
        f.core.endOfIteration(at: f.now)
        #expect(f.transport.statuses.count == 1)
        // Nothing changed: nothing published.
        f.advance(5)
        f.core.endOfIteration(at: f.now)
        #expect(f.transport.statuses.count == 1)
        // A change within the interval waits for it; the core asks to be woken then.
        f.discover(senderMeterA)
        f.core.endOfIteration(at: f.now)
        #expect(f.transport.statuses.count == 2)
        f.advance(0.2)
        f.core.commandAcknowledged(1)
        f.answer(f.transport.commands[0])
        f.core.endOfIteration(at: f.now)
        #expect(f.transport.statuses.count == 2)
        let wake = try #require(f.core.nextWake())
        #expect(abs(wake.seconds(since: f.now.monotonic) - 0.8) < 0.001)
        f.advance(0.8)
        f.core.tick(at: f.now)
        f.core.endOfIteration(at: f.now)
        #expect(f.transport.statuses.count == 3)
        #expect(f.lastStatus?["pending_commands"]?.intValue == 2)
        // The central broker went away (its will said offline) and came back: the status again.
        f.transport.isCentralConnected = false
        f.core.centralConnectionChanged(false)
        f.advance(2)
        f.core.endOfIteration(at: f.now)
        #expect(f.transport.statuses.count == 3)
        f.transport.isCentralConnected = true
        f.core.centralConnectionChanged(true)
        f.core.endOfIteration(at: f.now)
        #expect(f.transport.statuses.count == 4)
        #expect(f.lastStatus?["state"]?.stringValue == "online")
    }

    @Test func nextWakeIsTheEarliestReplyTimeoutAndNothingWhileIdle() throws {
        let f = try SenderCoreFixture()
        f.connect()
        f.core.endOfIteration(at: f.now)
        // Idle: only the periodic pass (600 s in the test config).
        #expect(f.core.nextWake().map { $0.seconds(since: f.now.monotonic) } == 600)
        f.discover(senderMeterA)
        f.core.endOfIteration(at: f.now)
        #expect(f.core.nextWake().map { $0.seconds(since: f.now.monotonic) } == 1)
        // The internal broker away: no timeout counts, nothing to wake for.
        f.core.internalConnectionChanged(false, at: f.now)
        f.advance(1)
        f.core.endOfIteration(at: f.now)
        #expect(f.core.nextWake() == nil)
    }

    @Test func theDrainWaitsForRepliesThenSavesAndPublishesOffline() throws {
        let f = try SenderCoreFixture(statusMinIntervalSeconds: 0)
        f.connect()
        f.discover(senderMeterA)
        f.core.endOfIteration(at: f.now)
        let sent = f.transport.commands
        let statuses = f.transport.statuses.count
        #expect(statuses == 1)
        let fields = f.core.beginDrain()
        #expect(fields.contains { $0 == ("awaiting_replies", "3") })
        #expect(!f.core.isDrained)
        // Draining: a new meter gets nothing, and no status says "online" any more.
        f.discover(senderMeterB)
        f.advance(0.3)
        f.answer(sent[0])
        f.core.endOfIteration(at: f.now)
        #expect(f.transport.commands.count == 3)
        #expect(!f.core.isDrained)
        #expect(f.transport.statuses.count == statuses)
        // Woken for the replies' timeout (1 s after sending).
        let wake = try #require(f.core.nextWake())
        #expect(abs(wake.seconds(since: f.now.monotonic) - 0.7) < 0.001)

        f.answer(sent[1])
        f.answer(sent[2])
        f.core.endOfIteration(at: f.now)
        #expect(f.core.isDrained)
        #expect(f.transport.statuses.count == statuses, "the offline status is the host's to ask for")
        let mid = try #require(f.core.publishOffline(at: f.now))
        #expect(f.savedRecords[senderMeterA]?.acknowledgedDate == "2026-01-12")
        #expect(f.transport.statuses.count == statuses + 1)
        let offline = try #require(f.transport.statuses.last)
        #expect(offline.mid == mid)
        #expect(offline.retain && offline.json?["state"]?.stringValue == "offline")
        #expect(f.lines("stopping_without_replies").isEmpty)
    }

    /// A slow disk costs the loop nothing: the records changed go to the
    /// state database's writer thread by value; only the shutdown's final
    /// flush waits for them.
    @Test func aSlowDiskDoesNotHoldTheLoop() throws {
        let f = try SenderCoreFixture(statusMinIntervalSeconds: 0, writeDelaySeconds: 1.5)
        f.connect()
        var slowest = Duration.zero
        for id in [senderMeterA, senderMeterB] {
            f.discover(id)
            let sent = f.transport.commands.filter { $0.topic.hasSuffix(String(id.suffix(8))) }
            f.advance(0.2)
            for c in sent { f.answer(c) }
            let start = ContinuousClock.now
            f.core.endOfIteration(at: f.now)
            slowest = max(slowest, ContinuousClock.now - start)
            f.advance(0.2)
        }
        #expect(f.lines("meter_configured").count == 2)
        #expect(f.store.backlog > 0, "each transaction takes 1.5 s: the writer is still at it")
        #expect(slowest < .milliseconds(500), "the loop waited for the disk: \(slowest)")
        #expect(try ConfigStateStore.readRecords(path: f.store.path)[senderMeterB] == nil)

        let start = ContinuousClock.now
        _ = f.core.beginDrain()
        #expect(f.core.isDrained)
        _ = f.core.publishOffline(at: f.now)
        #expect(ContinuousClock.now - start >= .seconds(1), "the final flush waits for the writer")
        let saved = try ConfigStateStore.readRecords(path: f.store.path)
        #expect(saved[senderMeterA]?.acknowledgedDate == "2026-01-12")
        #expect(saved[senderMeterB]?.acknowledgedDate == "2026-01-12")
        #expect(f.lines("state_save_failed").isEmpty)
    }

    @Test func aDrainCutShortNamesTheRepliesLeft() throws {
        let f = try SenderCoreFixture()
        f.connect()
        f.discover(senderMeterA)
        _ = f.core.beginDrain()
        f.advance(0.4)
        f.core.tick(at: f.now)
        f.core.endOfIteration(at: f.now)
        #expect(f.transport.statuses.isEmpty)
        #expect(!f.core.isDrained)
        _ = f.core.publishOffline(at: f.now)
        #expect(f.lines("stopping_without_replies").first?.contains("awaiting_replies=3") == true)
        let offline = try #require(f.transport.statuses.last)
        #expect(offline.json?["state"]?.stringValue == "offline")
    }

    @Test func withTheCentralBrokerAwayNoOfflineStatusGoesOut() throws {
        let f = try SenderCoreFixture()
        f.core.internalConnectionChanged(true, at: f.now)
        f.transport.isCentralConnected = false
        _ = f.core.beginDrain()
        #expect(f.core.isDrained)
        #expect(f.core.publishOffline(at: f.now) == nil)
        #expect(f.transport.statuses.isEmpty)
    }

    @Test func aReloadSubscribesNewReplyTopicsAndResendsChangedSettings() throws {
        let f = try SenderCoreFixture()
        f.connect()
        f.discover(senderMeterA)
        for c in f.transport.commands { f.answer(c) }
        let site = try buildSenderSite(senderConfigText(perMeter: [senderMeterA: 300]))
        f.core.apply(programs: site.programs, options: ConfigPlanner.Options(site: site), at: f.now)
        // The same pack: no new reply topic.
        #expect(f.transport.subscriptions.isEmpty)
        #expect(f.transport.commands.count == 4)
        #expect(f.transport.commands.last?.json?["value"]?.stringValue == "300")
        #expect(f.lines("config_reloaded").first?.contains("changed_meters=1") == true)
    }

    @Test func anAlertIsRenderedAsALERTAtLevelError() throws {
        let f = try SenderCoreFixture(config: senderConfigText(retries: 0))
        f.connect()
        f.discover(senderMeterA)
        f.advance(1)
        f.core.tick(at: f.now)
        let alerts = f.lines("ALERT")
        #expect(alerts.count == 3)
        #expect(alerts.allSatisfy { $0.hasPrefix("<3>level=error msg=ALERT event=meter_not_answering meter=\(senderMeterA) ") })
    }
}

@Suite struct ConfigSenderClockTests {
    /// The wall clock jumps (NTP's first sync, a manual correction): deadlines
    /// follow the monotonic clock, the date follows the wall clock.
    @Test func aWallClockJumpMovesNoTimer() throws {
        var planner = try makePlanner()
        let start = ConfigTime(testing: senderT0)
        let sent = planner.discovered(senderMeterA, clockOffsetSeconds: nil, now: start).sent
        #expect(sent.count == 3)
        #expect(planner.nextDeadline == start.monotonic.adding(seconds: 1))

        // The wall clock leaps a day ahead 0.5 s later: no timeout yet.
        var jumped = start.adding(seconds: 0.5)
        jumped.wall = jumped.wall.adding(seconds: 86_400)
        #expect(planner.tick(now: jumped).events.isEmpty)
        #expect(planner.awaitingReplyCount == 3)

        // It is set back an hour before the start, 1 s after the send: the timeout comes all the same.
        var back = start.adding(seconds: 1)
        back.wall = senderT0.adding(seconds: -3600)
        let timeouts = planner.tick(now: back).events.filter { $0.name == "reply_timeout" }
        #expect(timeouts.count == 3)
        #expect(planner.nextDeadline == back.monotonic.adding(seconds: 0.5))

        // The periodic pass follows the monotonic clock too: a wall-clock day later it is not due.
        var planner2 = try makePlanner()
        var later = ConfigTime(testing: senderT0).adding(seconds: 10)
        later.wall = later.wall.adding(seconds: 2 * 86_400)
        #expect(!planner2.tick(now: later).events.contains { $0.name == "periodic_pass" })
        #expect(planner2.tick(now: ConfigTime(testing: senderT0).adding(seconds: 600)).events.contains { $0.name == "periodic_pass" })
    }

    @Test func theDateComesFromTheWallClock() throws {
        var planner = try makePlanner()
        var now = ConfigTime(testing: senderT0)
        now.wall = senderT0.adding(seconds: 86_400)  // tomorrow on the wall, no time passed on the monotonic clock
        let sent = planner.discovered(senderMeterA, clockOffsetSeconds: nil, now: now).sent
        for m in sent {
            let reply = try #require(planner.programs.parseReply(topic: senderReplyTopic(m), payload: senderReplyPayload(m)))
            _ = planner.reply(reply, now: now)
        }
        #expect(planner.records[senderMeterA]?.acknowledgedDate == "2026-01-13")
        #expect(sent.first { $0.command == "set_clock" }?.value?.hasPrefix("20260113") == true)
    }
}
