import JSON
import RuleEngine
import Testing
@testable import Services
@testable import ServicesFixtures

/// The proxy's status document: one writer, one parser, at most 4 KiB
/// whatever the number of meters or problems.
@Suite struct ProxyStatusDocumentTests {
    @Test func theProxyStatusStaysWithin4KiBWith20000MetersAndRoundTrips() {
        var statistics = ProxyStatistics()
        for reason in ProxyStatistics.dropReasons { statistics.countDrop(reason, 1_000_000_000) }
        statistics.received = Int(Int32.max)
        let journal = JournalStatus(bytes: 1 << 40, messages: 1 << 30, oldestUnacknowledgedSeconds: 1e9, backPressureSeconds: 1e9,
                                    backPressureActive: true, replayedAtStart: 1 << 30, cutAtStart: 1 << 30, corruptAtStart: 1 << 30)
        let problems = (0..<50).map { "problem \($0): " + String(repeating: "the meters' broker dropped messages ", count: 20) }
        var status = statistics.status(state: "online", version: "0.1.0", started: Instant(epochMillis: 0),
                                       now: Instant(epochMillis: 1_768_235_940_000), journal: journal, metersSeen: 20_000, metersOnline: 20_000,
                                       forwardedPerMinute: 1_000_000, problems: problems, readBack: (false, 20_000, 19_999))
        status.logLinesDropped = 1 << 30
        let payload = status.payload
        #expect(payload.count <= ProxyStatus.maxBytes, "\(payload.count) bytes")
        let parsed = ProxyStatus(payload: payload)
        #expect(parsed?.metersSeen == 20_000)
        #expect(parsed?.metersOnline == 20_000)
        #expect(parsed?.counter("received") == Int(Int32.max))
        #expect(parsed?.dropped.count == ProxyStatistics.dropReasons.count)
        #expect(parsed.map { !$0.problems.isEmpty && $0.problems.count <= ProxyStatus.problemListLimit } == true)
        #expect(parsed?.json["problems_total"] == 50)
        #expect(parsed?.json["meters"] == nil)
        // Within the limits, what the writer writes the parser reads back whole.
        status.problems = Array(problems.prefix(2)).map { String($0.prefix(40)) }
        #expect(ProxyStatus(payload: status.payload) == status)
        let offline = ProxyStatus(state: "offline")
        #expect(String(decoding: offline.payload, as: UTF8.self) == #"{"state":"offline"}"#)
        #expect(ProxyStatus(payload: offline.payload) == offline)
        #expect(ProxyStatus(payload: Array("[]".utf8)) == nil)
    }

    /// The health devices read totals: no template counts a list of meters.
    @Test func theHealthDevicesReadTotals() {
        for device in [HealthDevice.proxy, HealthDevice.configSender] {
            for entity in device.entities {
                #expect(!entity.template.contains("value_json.meters |") && !entity.template.contains("value_json.alerts |"),
                        "\(entity.object): \(entity.template)")
            }
        }
        #expect(HealthDevice.proxy.entities.first { $0.object == "meters_seen" }?.template == "{{ value_json.meters_seen }}")
        #expect(HealthDevice.configSender.entities.first { $0.object == "alerts" }?.template == "{{ value_json.alerts_total }}")
    }
}
