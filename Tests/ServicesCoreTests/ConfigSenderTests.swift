import Foundation
import JSON
import Clock
@testable import MQTT
import RuleEngine
import SiteSettings
import Testing
import TestSupport
@testable import Services
@testable import ServicesFixtures

// Unit tests of the config sender's pure parts: the planner (decisions), the
// state store (files), the discovery parser. No brokers here; see
// ConfigSenderIntegrationTests for the service on real brokers.

@Suite struct ConfigSenderPlannerTests {
    @Test func discoverySendsEveryCommandWithCorrectPayloads() throws {
        var planner = try makePlanner()
        let actions = planner.discovered(senderMeterA, clockOffsetSeconds: nil, now: senderT0)
        let sent = actions.sent
        #expect(sent.map(\.command) == ["set_upload_interval_seconds", "set_upload_interval_minutes", "set_clock"])
        #expect(sent.map(\.topic) == ["MQTT_COMMOD_SET_25950027", "MQTT_COMMOD_SET_25950027", "MQTT_SETTIME_25950027"])
        for m in sent {
            #expect(m.operationID.count == 32)
            #expect(m.operationID.allSatisfy { $0.isHexDigit })
        }
        #expect(Set(sent.map(\.operationID)).count == 3)
        let o = sent.map(\.operationID)
        #expect(String(decoding: sent[0].payload, as: UTF8.self) == #"{"oprid":"\#(o[0])","Cmd":"0000","value":"60","types":"1"}"#)
        #expect(String(decoding: sent[1].payload, as: UTF8.self) == #"{"oprid":"\#(o[1])","Cmd":"0001","value":"5","types":"1"}"#)
        // Local time: 10:00 UTC is 11:00 one hour east.
        #expect(String(decoding: sent[2].payload, as: UTF8.self) == #"{"oprid":"\#(o[2])","time":"20260112110000"}"#)
        #expect(planner.pending.count == 3)
        #expect(actions.events.contains { $0.name == "configuring" && $0["reason"] == "discovery" })
    }

    /// An excluded meter is never configured: not on discovery (its retained
    /// message may outlive the exclusion), and not after a reload excludes it.
    @Test func excludedMeterIsNeverConfigured() throws {
        var planner = try makePlanner(senderConfigText() + "exclude: [\"\(senderMeterA)\"]\n")
        #expect(planner.discovered(senderMeterA, clockOffsetSeconds: 3600, now: senderT0).sent.isEmpty)
        #expect(planner.pending.isEmpty)

        var running = try makePlanner()
        #expect(running.discovered(senderMeterA, clockOffsetSeconds: nil, now: senderT0).sent.count == 3)
        let site = try buildSenderSite(senderConfigText() + "exclude: [\"\(senderMeterA)\"]\n")
        let actions = running.replace(programs: site.programs, options: ConfigPlanner.Options(site: site), now: senderT0)
        #expect(actions.events.contains { $0.name == "meter_excluded" && $0["meter"] == senderMeterA })
        #expect(running.pending.isEmpty)
        #expect(running.tick(now: senderT0.adding(seconds: 3600)).sent.isEmpty, "retried after the exclusion")
    }

    @Test func acknowledgedMeterIsRecordedAndNotSentAgainTheSameDay() throws {
        var planner = try makePlanner()
        let sent = planner.discovered(senderMeterA, clockOffsetSeconds: nil, now: senderT0).sent
        let t1 = senderT0.adding(seconds: 0.3)
        var events: [ConfigEvent] = []
        for m in sent { events += planner.answer(m, now: t1).events }
        #expect(events.filter { $0.name == "command_acknowledged" }.count == 3)
        #expect(events.last?.name == "meter_configured")
        let record = try #require(planner.records[senderMeterA])
        #expect(record.acknowledgedDate == "2026-01-12")
        #expect(record.digest == planner.digest(for: senderMeterA))
        #expect(record.settings == ["upload_interval_minutes": 5, "upload_interval_seconds": 60])
        #expect(record.commands["set_clock"]?.outcome == .success)
        #expect(record.commands["set_upload_interval_seconds"]?.value == "60")
        #expect(record.lastError == nil)
        #expect(planner.pending.isEmpty)
        #expect(planner.lastResult(senderMeterA) == "success")

        // Discovery again, a periodic pass, a reconnect: nothing more today.
        #expect(planner.discovered(senderMeterA, clockOffsetSeconds: nil, now: senderT0.adding(seconds: 60)).sent.isEmpty)
        #expect(planner.tick(now: senderT0.adding(seconds: 601)).sent.isEmpty)
        _ = planner.setInternalConnected(false, now: senderT0.adding(seconds: 700))
        #expect(planner.setInternalConnected(true, now: senderT0.adding(seconds: 701)).sent.isEmpty)

        // A planner restarted with the saved records, the same day: nothing either.
        var restarted = try makePlanner(records: planner.records)
        #expect(restarted.discovered(senderMeterA, clockOffsetSeconds: nil, now: senderT0.adding(seconds: 3600)).sent.isEmpty)
    }

    @Test func nextDaySendsAgainFromThePeriodicPass() throws {
        var planner = try makePlanner()
        for m in planner.discovered(senderMeterA, clockOffsetSeconds: nil, now: senderT0).sent { _ = planner.answer(m, now: senderT0) }
        // 22:50 local the same day: nothing; after local midnight: everything again.
        #expect(planner.tick(now: senderT0.adding(seconds: 11 * 3600 + 50 * 60)).sent.isEmpty)
        let nextDay = senderT0.adding(seconds: 13 * 3600 + 60)
        let sent = planner.tick(now: nextDay).sent
        #expect(sent.map(\.command) == ["set_upload_interval_seconds", "set_upload_interval_minutes", "set_clock"])
        for m in sent { _ = planner.answer(m, now: nextDay) }
        #expect(planner.records[senderMeterA]?.acknowledgedDate == "2026-01-13")
    }

    @Test func changedSettingResendsOnlyThatCommandToThatMeter() throws {
        var planner = try makePlanner()
        for id in [senderMeterA, senderMeterB] {
            for m in planner.discovered(id, clockOffsetSeconds: nil, now: senderT0).sent { _ = planner.answer(m, now: senderT0) }
        }
        let oldDigestB = planner.records[senderMeterB]?.digest
        let changed = try buildSenderSite(senderConfigText(perMeter: [senderMeterA: 300]))
        let t1 = senderT0.adding(seconds: 30)
        let actions = planner.replace(programs: changed.programs, options: ConfigPlanner.Options(site: changed), now: t1)
        #expect(actions.sent.map(\.deviceID) == [senderMeterA])
        #expect(actions.sent.map(\.command) == ["set_upload_interval_seconds"])
        #expect(actions.sent.first?.value == "300")
        #expect(actions.events.first { $0.name == "config_reloaded" }?["changed_meters"] == "1")
        for m in actions.sent { _ = planner.answer(m, now: t1) }
        #expect(planner.records[senderMeterA]?.settings["upload_interval_seconds"] == 300)
        #expect(planner.records[senderMeterA]?.digest == planner.digest(for: senderMeterA))
        #expect(planner.records[senderMeterB]?.digest == oldDigestB)

        // The same program again: nothing changes, nothing is sent.
        #expect(planner.replace(programs: changed.programs, options: ConfigPlanner.Options(site: changed), now: t1).sent.isEmpty)
    }

    @Test func changeWhileInFlightIsSentWhenTheOldCommandResolves() throws {
        var planner = try makePlanner()
        let first = planner.discovered(senderMeterA, clockOffsetSeconds: nil, now: senderT0).sent
        let changed = try buildSenderSite(senderConfigText(perMeter: [senderMeterA: 30]))
        #expect(planner.replace(programs: changed.programs, options: ConfigPlanner.Options(site: changed), now: senderT0).sent.isEmpty)
        let resent = planner.answer(first[0], now: senderT0.adding(seconds: 0.1)).sent
        #expect(resent.map(\.command) == ["set_upload_interval_seconds"])
        #expect(resent.first?.value == "30")
    }

    @Test func silentMeterIsRetriedWithBackoffThenAlertedWhileOthersAreConfigured() throws {
        // Timeout 1 s, 3 retries: backoff 0.5, 1, 2 s.
        var planner = try makePlanner()
        let silent = planner.discovered(senderMeterA, clockOffsetSeconds: nil, now: senderT0).sent
        #expect(silent.count == 3)
        let other = planner.discovered(senderMeterB, clockOffsetSeconds: nil, now: senderT0).sent
        for m in other { _ = planner.answer(m, now: senderT0.adding(seconds: 0.2)) }
        #expect(planner.records[senderMeterB]?.acknowledgedDate == "2026-01-12")

        var sendTimes: [Double] = [0]
        var alerts: [ConfigEvent] = []
        var timeouts: [ConfigEvent] = []
        var oprids = Set(silent.map(\.operationID))
        var t = 0.0
        while t < 20 {
            t += 0.05
            let actions = planner.tick(now: senderT0.adding(seconds: t))
            if actions.sent.contains(where: { $0.command == "set_upload_interval_seconds" }) { sendTimes.append(t) }
            for m in actions.sent {
                #expect(m.deviceID == senderMeterA)
                #expect(oprids.insert(m.operationID).inserted, "every attempt has a fresh oprid")
            }
            alerts += actions.events.filter { $0.level == .alert }
            timeouts += actions.events.filter { $0.name == "reply_timeout" && $0["command"] == "set_upload_interval_seconds" }
        }
        // Sent at 0, timeout at 1, wait 0.5 → 1.5, timeout 2.5, wait 1 → 3.5, timeout 4.5, wait 2 → 6.5, timeout 7.5.
        #expect(sendTimes.count == 4)
        let expected = [0, 1.5, 3.5, 6.5]
        for (got, want) in zip(sendTimes, expected) { #expect(abs(got - want) < 0.11, "sent at \(got), expected \(want)") }
        #expect(timeouts.map { $0["retry_in_s"] } == ["0.5", "1", "2"])
        #expect(alerts.count == 3)  // one per command
        #expect(alerts.allSatisfy { $0.name == "meter_not_answering" && $0["meter"] == senderMeterA })
        #expect(planner.alerts.count == 3)
        #expect(planner.pending.isEmpty)
        #expect(planner.records[senderMeterA]?.commands["set_clock"]?.outcome == .timeout)
        #expect(planner.records[senderMeterA]?.lastError?.hasPrefix("no reply to") == true)
        #expect(planner.records[senderMeterA]?.lastError?.hasSuffix("after 4 attempts") == true)
        #expect(planner.lastResult(senderMeterA) == "timeout")
        #expect(planner.records[senderMeterB]?.lastError == nil)

        // The next periodic pass tries again; a success clears the alert.
        let retry = planner.tick(now: senderT0.adding(seconds: 601))
        #expect(retry.sent.count == 3)
        var cleared = 0
        for m in retry.sent { cleared += planner.answer(m, now: senderT0.adding(seconds: 601.2)).events.filter { $0.name == "alert_cleared" }.count }
        #expect(cleared == 3)
        #expect(planner.alerts.isEmpty)
        #expect(planner.records[senderMeterA]?.lastError == nil)
    }

    @Test func lateReplyToAnEarlierAttemptCounts() throws {
        var planner = try makePlanner()
        let first = planner.discovered(senderMeterA, clockOffsetSeconds: nil, now: senderT0).sent
        _ = planner.tick(now: senderT0.adding(seconds: 1.01))  // timeouts
        let second = planner.tick(now: senderT0.adding(seconds: 1.6)).sent
        #expect(second.count == 3)
        let events = planner.answer(first[0], now: senderT0.adding(seconds: 1.7)).events
        #expect(events.contains { $0.name == "command_acknowledged" && $0["attempt"] == "2" })
        #expect(planner.pending.count == 2)
    }

    @Test func failureCodeIsRecordedAndRetriedAtTheNextOpportunity() throws {
        var planner = try makePlanner()
        let sent = planner.discovered(senderMeterA, clockOffsetSeconds: nil, now: senderT0).sent
        let events = planner.answer(sent[0], code: "02", msg: "value out of range", now: senderT0.adding(seconds: 0.1)).events
        let failed = try #require(events.first { $0.name == "command_failed" })
        #expect(failed.level == .warning)
        #expect(failed["msg"] == "value out of range")
        for m in sent.dropFirst() { _ = planner.answer(m, now: senderT0.adding(seconds: 0.1)) }
        let record = try #require(planner.records[senderMeterA])
        #expect(record.commands["set_upload_interval_seconds"]?.outcome == .failure)
        #expect(record.commands["set_upload_interval_seconds"]?.message == "value out of range")
        #expect(record.lastError == "set_upload_interval_seconds failed: value out of range")
        #expect(record.acknowledgedDate == nil)
        #expect(planner.lastResult(senderMeterA) == "failure")
        // Not retried by the clock ticking …
        #expect(planner.tick(now: senderT0.adding(seconds: 30)).sent.isEmpty)
        // … but at the next opportunity, and only the failed command.
        let again = planner.discovered(senderMeterA, clockOffsetSeconds: nil, now: senderT0.adding(seconds: 40)).sent
        #expect(again.map(\.command) == ["set_upload_interval_seconds"])
        _ = planner.answer(again[0], now: senderT0.adding(seconds: 40.1))
        #expect(planner.records[senderMeterA]?.acknowledgedDate == "2026-01-12")
        #expect(planner.records[senderMeterA]?.lastError == nil)
    }

    @Test func unknownOpridAndForeignRepliesAreIgnored() throws {
        var planner = try makePlanner()
        let sent = planner.discovered(senderMeterA, clockOffsetSeconds: nil, now: senderT0).sent
        let before = planner.records

        let unknown = try #require(planner.programs.parseReply(topic: "MQTT_COMMOD_SET_REP",
            payload: Array(#"{"id":"33B1225950027","oprid":"0123456789abcdef0123456789abcdef","code":"01"}"#.utf8)))
        #expect(planner.reply(unknown, now: senderT0).events.map(\.name) == ["reply_ignored"])

        // The right oprid from another meter id.
        let wrongMeter = try #require(planner.programs.parseReply(topic: "MQTT_COMMOD_SET_REP",
                                                                   payload: senderReplyPayload(sent[0], id: senderMeterB)))
        #expect(planner.reply(wrongMeter, now: senderT0).events.first?.level == .warning)

        // A clock oprid on the interval reply topic.
        let wrongTopic = try #require(planner.programs.parseReply(topic: "MQTT_COMMOD_SET_REP", payload: senderReplyPayload(sent[2])))
        #expect(planner.reply(wrongTopic, now: senderT0).events.first?["reason"] == "reply topic does not answer this command")

        // Malformed replies never reach the planner.
        #expect(planner.programs.parseReply(topic: "MQTT_COMMOD_SET_REP", payload: Array("{not json".utf8)) == nil)
        #expect(planner.programs.parseReply(topic: "MQTT_COMMOD_SET_REP", payload: Array(#"{"id":"x","code":"01"}"#.utf8)) == nil)

        #expect(planner.records == before)
        #expect(planner.pending.count == 3)
        // The real replies still work afterwards.
        for m in sent { _ = planner.answer(m, now: senderT0.adding(seconds: 0.5)) }
        #expect(planner.records[senderMeterA]?.acknowledgedDate == "2026-01-12")
    }

    @Test func clockOffsetSetsTheClockAtOnceAtMostOnceAnHour() throws {
        var planner = try makePlanner()
        for m in planner.discovered(senderMeterA, clockOffsetSeconds: nil, now: senderT0).sent { _ = planner.answer(m, now: senderT0) }
        // Acknowledged today, but the clock went out less than an hour ago.
        let soon = planner.discovered(senderMeterA, clockOffsetSeconds: -123_456, now: senderT0.adding(seconds: 600))
        #expect(soon.sent.isEmpty)
        #expect(soon.events.contains { $0.name == "clock_correction_skipped" })
        // An hour later: the clock only.
        let later = senderT0.adding(seconds: 3601)
        let clock = planner.discovered(senderMeterA, clockOffsetSeconds: -123_456, now: later).sent
        #expect(clock.map(\.command) == ["set_clock"])
        #expect(clock.first?.value == "20260112120001")
        _ = planner.answer(clock[0], now: later)
        // Within the threshold: nothing.
        #expect(planner.discovered(senderMeterA, clockOffsetSeconds: 200, now: senderT0.adding(seconds: 9000)).sent.isEmpty)
        // The limit survives a restart (it is in the record).
        var restarted = try makePlanner(records: planner.records)
        #expect(restarted.discovered(senderMeterA, clockOffsetSeconds: 999, now: later.adding(seconds: 60)).sent.isEmpty)
    }

    @Test func commandRefusedByTheBrokerIsAFailureAtOnce() throws {
        var planner = try makePlanner()
        let sent = planner.discovered(senderMeterA, clockOffsetSeconds: nil, now: senderT0).sent
        let events = planner.publishRefused(operationID: sent[2].operationID, reason: "Not authorized", now: senderT0).events
        #expect(events.map(\.name) == ["command_refused"])
        #expect(events.first?.level == .error)
        #expect(planner.records[senderMeterA]?.commands["set_clock"]?.outcome == .failure)
        #expect(planner.records[senderMeterA]?.lastError == "the broker refused set_clock: Not authorized")
        #expect(planner.pending.map(\.command) == ["set_upload_interval_seconds", "set_upload_interval_minutes"])
        // An oprid that is not the newest attempt of a pending command changes nothing.
        #expect(planner.publishRefused(operationID: sent[2].operationID, reason: "x", now: senderT0).isEmpty)
    }

    @Test func nothingIsSentWhileTheInternalBrokerIsAway() throws {
        let site = try buildSenderSite(senderConfigText())
        var planner = ConfigPlanner(programs: site.programs, options: ConfigPlanner.Options(site: site),
                                    ids: OperationIDGenerator(SplitMix(seed: 3)))
        #expect(planner.discovered(senderMeterA, clockOffsetSeconds: nil, now: senderT0).sent.isEmpty)
        #expect(planner.tick(now: senderT0.adding(seconds: 5)).sent.isEmpty)
        let sent = planner.setInternalConnected(true, now: senderT0.adding(seconds: 6)).sent
        #expect(sent.count == 3)
        // Disconnected while waiting: no timeout counts; reconnecting restarts the wait.
        _ = planner.setInternalConnected(false, now: senderT0.adding(seconds: 6.5))
        #expect(planner.tick(now: senderT0.adding(seconds: 30)).events.isEmpty)
        _ = planner.setInternalConnected(true, now: senderT0.adding(seconds: 31))
        #expect(planner.tick(now: senderT0.adding(seconds: 31.5)).events.isEmpty)
        #expect(planner.tick(now: senderT0.adding(seconds: 32.1)).events.contains { $0.name == "reply_timeout" })
    }

    @Test func clockOffsetReportedWhileDisconnectedIsCorrectedOnConnect() throws {
        let site = try buildSenderSite(senderConfigText())
        var planner = ConfigPlanner(programs: site.programs, options: ConfigPlanner.Options(site: site),
                                    ids: OperationIDGenerator(SplitMix(seed: 4)))
        #expect(planner.discovered(senderMeterA, clockOffsetSeconds: 4000, now: senderT0).sent.isEmpty)
        let sent = planner.setInternalConnected(true, now: senderT0.adding(seconds: 1)).sent
        #expect(sent.map(\.command) == ["set_clock", "set_upload_interval_seconds", "set_upload_interval_minutes"])
        #expect(sent.first?.value == "20260112110001")
    }

    @Test func drainingSendsNothingNewButTakesReplies() throws {
        var planner = try makePlanner()
        let sent = planner.discovered(senderMeterA, clockOffsetSeconds: nil, now: senderT0).sent
        planner.drain()
        #expect(planner.awaitingReplyCount == 3)
        #expect(planner.discovered(senderMeterB, clockOffsetSeconds: nil, now: senderT0).sent.isEmpty)
        _ = planner.answer(sent[0], now: senderT0)
        #expect(planner.awaitingReplyCount == 2)
        // A timeout while draining backs off but never resends.
        #expect(planner.tick(now: senderT0.adding(seconds: 1.1)).sent.isEmpty)
        #expect(planner.tick(now: senderT0.adding(seconds: 5)).sent.isEmpty)
        #expect(planner.awaitingReplyCount == 0)
    }

    @Test func invalidDiscoveryIDsAreIgnored() throws {
        var planner = try makePlanner()
        let actions = planner.discovered("not-a-meter", clockOffsetSeconds: nil, now: senderT0)
        #expect(actions.sent.isEmpty)
        #expect(actions.events.first?.name == "discovery_ignored")
        #expect(planner.knownMeters.isEmpty)
    }

    @Test func statusDocumentShowsTotalsPendingAndAlerts() throws {
        var planner = try makePlanner()
        _ = planner.discovered(senderMeterA, clockOffsetSeconds: nil, now: senderT0)
        let status = planner.statusDocument(state: "online", connections: [("internal", "connected"), ("central", "connected")],
                                            startedAt: senderT0, now: senderT0)
        let doc = status.json
        #expect(doc["state"]?.stringValue == "online")
        #expect(doc["meters_known"]?.intValue == 1)
        #expect(doc["pending_commands"]?.intValue == 3)
        #expect(doc["pending"]?.arrayValue?.count == 3)
        #expect(doc["connections"]?["internal"]?.stringValue == "connected")
        #expect(doc["meters"] == nil, "a meter's detail is on its own topic")
        #expect(planner.configurationState(senderMeterA)?.lastResult == "pending")
        #expect(planner.configurationState(senderMeterB) == nil)
        #expect(doc["alerts"]?.arrayValue?.isEmpty == true)
        #expect(doc["alerts_total"]?.intValue == 0)
        // The writer and the parser agree.
        #expect(ConfigSenderStatus(payload: status.payload) == status)
        let offline = ConfigSenderStatus.offline(now: senderT0)
        #expect(ConfigSenderStatus(payload: offline.payload) == offline)
        #expect(String(decoding: ConfigSenderStatus.offline().payload, as: UTF8.self) == #"{"state":"offline","service":"config-sender"}"#)
    }

    /// 10,000 meters, each with an alert and its commands pending: the status
    /// stays within 4 KiB, its totals complete, its lists cut.
    @Test func statusDocumentStaysWithin4KiBWith10000AlertedMeters() throws {
        var planner = try makePlanner()
        let ids = (0..<10_000).map { String(format: "33B12%08d", $0) }
        for id in ids { _ = planner.discovered(id, clockOffsetSeconds: nil, now: senderT0) }
        let long = String(repeating: "the meter's reply was not understood ", count: 20)
        for id in ids {
            planner.raiseAlert(meter: id, command: "set_clock", message: long, now: ConfigTime(testing: senderT0))
            planner.raiseAlert(meter: id, command: "switch_relay", message: "no answer", now: ConfigTime(testing: senderT0))
        }
        var status = planner.statusDocument(state: "online", connections: [("internal", "connected"), ("central", "connected")],
                                            startedAt: senderT0, now: senderT0)
        status.problems = [long, long]
        status.requests = RelayRequests.counterNames.map { .init(name: $0, value: 1_000_000) }
        status.logLinesDropped = 12
        let payload = status.payload
        #expect(payload.count <= ConfigSenderStatus.maxBytes, "\(payload.count) bytes")
        let parsed = try #require(ConfigSenderStatus(payload: payload))
        #expect(parsed.metersKnown == 10_000)
        #expect(parsed.alertsTotal == 20_000)
        #expect(parsed.pendingCommands == 30_000)
        #expect(!parsed.alerts.isEmpty && parsed.alerts.count <= ConfigSenderStatus.alertListLimit)
        #expect(!parsed.pending.isEmpty && parsed.pending.count <= ConfigSenderStatus.pendingListLimit)
        #expect(parsed.alerts.allSatisfy { $0.message.utf8.count <= ConfigSenderStatus.maxTextBytes })
        #expect(parsed.alerts.first?.meter == ids[0])
    }

    /// A meter's configuration state: what the writer puts on its topic, the parser reads back.
    @Test func meterConfigurationStateRoundTrips() {
        let state = MeterConfigurationState(lastResult: "failure", acknowledgedDate: "2026-01-12", digest: "abc",
                                            lastError: "set_clock failed: \"02\"",
                                            commands: [("set_clock", "failure"), ("set_upload_interval_seconds", "success")])
        #expect(MeterConfigurationState(payload: state.payload) == state)
        #expect(MeterConfigurationState(payload: MeterConfigurationState(lastResult: "none").payload) == MeterConfigurationState(lastResult: "none"))
        #expect(MeterConfigurationState(payload: []) == nil)
        #expect(MeterConfigurationState.topic(root: "kpm33b", id: senderMeterA) == "kpm33b/\(senderMeterA)/configuration")
    }

    @Test func operationIDsHaveTheExactLengthAndDoNotRepeat() {
        var ids = OperationIDGenerator()
        var seen = Set<String>()
        for _ in 0..<10_000 {
            let id = ids.make(length: 32)
            #expect(id.utf8.count == 32)
            seen.insert(id)
        }
        #expect(seen.count == 10_000)
        var a = OperationIDGenerator(SplitMix(seed: 7)), b = OperationIDGenerator(SplitMix(seed: 7))
        #expect(a.make(length: 32) == b.make(length: 32))
    }

    /// A meter sees the operation ids of the commands it gets. Were they the
    /// output of a fast generator whose state its outputs give away (as
    /// xoshiro256**'s do: four outputs are the whole state), two ids would
    /// predict every later one, other meters' included.
    @Test func operationIDsCannotBePredictedFromEarlierOnes() {
        var ids = OperationIDGenerator()
        let seen = [ids.make(length: 32), ids.make(length: 32)]
        let next = ids.make(length: 32)
        #expect(XoshiroPredictor.next(after: seen) != next)
    }
}

@Suite struct ConfigSenderDiscoveryTests {
    @Test func parsesDiscoveryMessages() {
        let topic = "kpm33b/discovery/33B1225950027"
        #expect(DiscoveryMessage.parse(topic: topic, payload: Array(
            #"{"id":"33B1225950027","manufacturer":"Compere","model":"KPM33B","pack":"kpm33b","topics":{},"clock_offset_s":-123456}"#.utf8))
            == .meter(DiscoveryMessage(id: "33B1225950027", manufacturer: "Compere", model: "KPM33B", pack: "kpm33b",
                                       clockOffsetSeconds: -123_456)))
        #expect(DiscoveryMessage.parse(topic: topic, payload: Array(#"{"id":"33B1225950027","clock_offset_s":"12"}"#.utf8))
            == .meter(DiscoveryMessage(id: "33B1225950027", clockOffsetSeconds: 12)))
        #expect(DiscoveryMessage.parse(topic: topic, payload: []) == .removed(id: "33B1225950027"))
        if case .invalid = DiscoveryMessage.parse(topic: topic, payload: Array(#"{"id":"33B1225950099"}"#.utf8)) {} else {
            Issue.record("a payload id that contradicts the topic must be refused")
        }
        if case .invalid = DiscoveryMessage.parse(topic: topic, payload: Array("{".utf8)) {} else {
            Issue.record("malformed JSON must be refused")
        }
    }
}

/// What an observer of two consecutive 32-digit ids could do if they came
/// from xoshiro256** (each id two outputs, low nibble first): recover the
/// generator's state and compute the next id.
enum XoshiroPredictor {
    static func inverse(_ a: UInt64) -> UInt64 {
        var x = a  // Newton's iteration for an odd a: each step doubles the correct bits.
        for _ in 0..<6 { x = x &* (2 &- a &* x) }
        return x
    }

    static func rotl(_ x: UInt64, _ k: UInt64) -> UInt64 { (x << k) | (x >> (64 - k)) }

    static func words(_ id: String) -> [UInt64] {
        let digits = id.utf8.map { UInt64($0 >= UInt8(ascii: "a") ? $0 - UInt8(ascii: "a") + 10 : $0 - UInt8(ascii: "0")) }
        return stride(from: 0, to: digits.count, by: 16).map { start in
            digits[start..<start + 16].enumerated().reduce(0) { $0 | ($1.element << (4 * UInt64($1.offset))) }
        }
    }

    static func next(after ids: [String]) -> String {
        // out = rotl(s1 * 5, 7) * 9, so each output gives s1 at its step.
        let b = ids.flatMap(words).map { rotl($0 &* inverse(9), 57) &* inverse(5) }
        // One step: c ^= a; d ^= b; b ^= c; a ^= d; c ^= b << 17; d = rotl(d, 45).
        // Hence, with the state at step 1: c1 = b0 ^ b1 ^ (b0 << 17),
        // d1 = b3 ^ b2 ^ c1 ^ (b1 << 17) ^ b1 and a1 = b2 ^ b1 ^ c1.
        let c1 = b[0] ^ b[1] ^ (b[0] << 17)
        var state = (b[2] ^ b[1] ^ c1, b[1], c1, b[3] ^ b[2] ^ c1 ^ (b[1] << 17) ^ b[1])
        func step() -> UInt64 {
            let result = rotl(state.1 &* 5, 7) &* 9
            let t = state.1 << 17
            state.2 ^= state.0
            state.3 ^= state.1
            state.1 ^= state.2
            state.0 ^= state.3
            state.2 ^= t
            state.3 = rotl(state.3, 45)
            return result
        }
        for _ in 1..<4 { _ = step() }
        let digits = Array("0123456789abcdef".utf8)
        var bytes: [UInt8] = []
        for _ in 0..<2 {
            var word = step()
            for _ in 0..<16 {
                bytes.append(digits[Int(word & 0xF)])
                word >>= 4
            }
        }
        return String(decoding: bytes, as: UTF8.self)
    }
}

/// `KnownMeters`' own contract: a reported clock offset, a correction owed
/// once, alerts kept or renewed, and everything of a forgotten meter gone.
@Suite struct KnownMetersTests {
    @Test func discoveryClockOffsetsAndAlerts() {
        var meters = KnownMeters()
        let t = Instant(epochMillis: 1_000)
        let new = meters.discovered("M1", clockOffsetSeconds: 10, threshold: 300, at: t)
        let again = meters.discovered("M1", clockOffsetSeconds: 10, threshold: 300, at: t)
        #expect(new.isNew && new.changed && !again.isNew && !again.changed)
        let within = meters.takeClockOffset("M1")
        #expect(within == nil)
        let off = meters.discovered("M1", clockOffsetSeconds: -900, threshold: 300, at: t)
        #expect(!off.isNew && off.changed && meters["M1"]?.reportedClockOffset == -900)
        let owed = meters.takeClockOffset("M1"), owedAgain = meters.takeClockOffset("M1")
        #expect(owed == -900 && owedAgain == nil)
        let first = MeterAlert(meter: "M1", command: "c", since: 1, message: "first")
        let raised = meters.raise(first, renew: false)
        let kept = !meters.raise(MeterAlert(meter: "M1", command: "c", since: 2, message: "second"), renew: false)
        let unknown = meters.raise(MeterAlert(meter: "M9", command: "c", since: 2, message: "unknown meter"), renew: true)
        #expect(raised && kept && !unknown && meters.alerts == [first])
        let cleared = meters.clearAlert(meter: "M1", command: "c"), clearedAgain = meters.clearAlert(meter: "M1", command: "c")
        #expect(cleared && !clearedAgain)
        meters.raise(first, renew: true)
        let forgotten = meters.forget("M1"), forgottenAgain = meters.forget("M1")
        #expect(forgotten && !forgottenAgain && meters.alerts.isEmpty && meters.count == 0)
    }
}
