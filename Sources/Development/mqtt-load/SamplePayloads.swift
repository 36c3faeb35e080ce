/// Real KPM33B messages, the pack's samples
/// (`rules/kpm33b/samples/MQTT_RT_DATA.json` and `MQTT_ENY_NOW.json`), byte for byte.
/// The load generator rewrites only `id` and `time` per message.
enum SamplePayloads {
    /// 586 bytes, the second-level values.
    static let realTime = #"{"id":"33B1225950027","ia":9.735,"ib":9.658,"ic":9.655,"ua":229.097,"ub":231.567,"uc":232.529,"uab":398.949,"ubc":401.920,"uca":399.784,"pa":2.2229,"pb":2.2293,"pc":2.2382,"zyggl":6.6905,"qa":-0.1648,"qb":-0.1649,"qc":-0.1632,"zwggl":-0.4930,"sa":2.2304,"sb":2.2366,"sc":2.2452,"zszgl":6.7122,"pfa":0.996,"pfb":0.996,"pfc":0.996,"zglys":0.996,"f":49.959,"uxja":0.000,"uxjb":239.774,"uxjc":119.874,"ixja":355.691,"ixjb":235.434,"ixjc":115.615,"unb":1.485,"inb":0.823,"pdm":6.6898,"qdm":-0.4971,"sdm":6.7118,"iadm":9.6838,"ibdm":9.6380,"icdm":9.6717,"time":"20260112163900","isend":"1"}"#

    /// The minute-level energy counters.
    static let energy = #"{"id":"33B1225950027","zygsz":163.486,"fygsz":0.000,"zwgsz":0.000,"fwgsz":11.085,"zszsz":164.331,"zyjsz":8.668,"fyjsz":0.000,"zyfsz":25.344,"fyfsz":0.000,"zypsz":60.573,"fypsz":0.000,"zyvsz":68.898,"fyvsz":0.000,"zydvsz":0.000,"fydvsz":0.000,"time":"20260117211500","isend":"1"}"#
}

/// The messages of a load run: message `g` is reading `g / meters` of meter
/// `g % meters`, an `MQTT_ENY_NOW` every `enyEvery` readings (0: never), the
/// others `MQTT_RT_DATA`; ids and clock values are rendered once, up front.
struct LoadMessages: Sendable {
    private let realTime = PayloadTemplate(topic: "MQTT_RT_DATA", sample: SamplePayloads.realTime)
    private let energy = PayloadTemplate(topic: "MQTT_ENY_NOW", sample: SamplePayloads.energy)
    private let enyEvery: Int
    private let ids: [[UInt8]]
    private let times: [[UInt8]]

    init(ledger: Ledger, enyEvery: Int, readingsPerMeter: Int) {
        self.enyEvery = enyEvery
        ids = (0..<ledger.meters).map { meter in
            let digits = String(meter)
            return Array(ledger.idPrefix) + Array((String(repeating: "0", count: 5 - digits.count) + digits).utf8)
        }
        times = (0...readingsPerMeter).map { MeterClock.format(ledger.base + Int64($0)) }
    }

    /// Message `g`: its meter, topic and payload.
    func message(_ g: Int) -> (meter: Int, topic: String, payload: [UInt8]) {
        let meter = g % ids.count
        let reading = g / ids.count
        let template = enyEvery > 0 && reading % enyEvery == 1 ? energy : realTime
        return (meter, template.topic, template.render(id: ids[meter], time: times[reading]))
    }
}

/// A sample payload cut around its `id` and `time` values, so that a message
/// is `head + id + middle + time + tail` with no JSON work per message.
struct PayloadTemplate: Sendable {
    let topic: String
    private let head: [UInt8]
    private let middle: [UInt8]
    private let tail: [UInt8]

    static let idLength = 13
    static let timeLength = 14

    /// The sample must contain `"id":"` + 13 characters, then `"time":"` + 14 digits.
    init(topic: String, sample: String) {
        let bytes = Array(sample.utf8)
        guard let idAt = ByteSearch.firstIndex(of: ByteSearch.idKey, in: bytes, from: 0),
              let timeAt = ByteSearch.firstIndex(of: ByteSearch.timeKey, in: bytes, from: idAt)
        else { preconditionFailure("sample payload for \(topic) has no id or time") }
        let idStart = idAt + ByteSearch.idKey.count
        let timeStart = timeAt + ByteSearch.timeKey.count
        self.topic = topic
        head = Array(bytes[..<idStart])
        middle = Array(bytes[(idStart + Self.idLength)..<timeStart])
        tail = Array(bytes[(timeStart + Self.timeLength)...])
    }

    var size: Int { head.count + Self.idLength + middle.count + Self.timeLength + tail.count }

    /// The payload for one meter reading.
    func render(id: [UInt8], time: [UInt8]) -> [UInt8] {
        var out: [UInt8] = []
        out.reserveCapacity(size)
        out += head
        out += id
        out += middle
        out += time
        out += tail
        return out
    }
}

/// Finds `"id":"` and `"time":"` in a received payload: the raw sample (no
/// proxy, bridge) or the proxy's output, which starts `{"id":…,"time":…`.
enum ByteSearch {
    static let idKey = Array(#""id":""#.utf8)
    static let timeKey = Array(#""time":""#.utf8)

    static func firstIndex(of needle: [UInt8], in haystack: UnsafeRawBufferPointer, from start: Int) -> Int? {
        let n = needle.count
        guard n > 0, haystack.count >= n else { return nil }
        var i = start
        let first = needle[0]
        while i <= haystack.count - n {
            if haystack[i] == first {
                var j = 1
                while j < n && haystack[i + j] == needle[j] { j += 1 }
                if j == n { return i }
            }
            i += 1
        }
        return nil
    }

    static func firstIndex(of needle: [UInt8], in haystack: [UInt8], from start: Int) -> Int? {
        haystack.withUnsafeBytes { firstIndex(of: needle, in: $0, from: start) }
    }
}
