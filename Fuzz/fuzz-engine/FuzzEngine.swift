import Foundation
import RuleEngine

/// The compiled KPM33B program and variant packs on arbitrary payloads.
///
/// Input: byte 0 picks the program (its low 2 bits) and the topic (the next
/// 2 bits); the rest is the payload. Each program keeps one engine across
/// inputs, so the filters' memories (duplicates, split sets, meters seen)
/// grow as in a service; byte 0's top bits advance the clock (expiry).
/// The packs are read from `rules/kpm33b` (tools/fuzz runs from the
/// repository) or `$FUZZ_RULES`.
let rulesDirectory = ProcessInfo.processInfo.environment["FUZZ_RULES"] ?? "rules/kpm33b"

/// The variants: the pack as shipped; one tag behind two fields (it once
/// overflowed the render buffer); every group on; split sets with tight bounds and a short memory.
nonisolated(unsafe) let engines: [Engine] = {
    guard let text = FileManager.default.contents(atPath: "\(rulesDirectory)/pack.yaml").map({ String(decoding: $0, as: UTF8.self) }) else {
        fatalError("fuzz-engine: no \(rulesDirectory)/pack.yaml (run from the repository or set FUZZ_RULES)")
    }
    let power = "        - active_power: { from: zyggl, name: Active power, device_class: power, state_class: measurement, precision: 3 }\n"
    let twice = text.replacingOccurrences(of: power, with: power + "        - active_power_copy: { from: zyggl, name: Copy, device_class: power, state_class: measurement, precision: 3 }\n        - id_again: id\n")
    let tight = text.replacingOccurrences(of: "max_parts: 16", with: "max_parts: 3")
        .replacingOccurrences(of: "max_bytes: 32768", with: "max_bytes: 300")
        .replacingOccurrences(of: "memory: 20000", with: "memory: 2")
    let allGroups = "root_topic: fuzz\nmeters:\n  defaults:\n    groups: [current, power, voltage, power_factor]\n  \"33B1225950027\": { groups: [], context: garage }\nhomeassistant: { enabled: true }\nexclude: [\"33B1225950030\"]\n"
    let variants: [(pack: String, site: String?)] = [(text, nil), (twice, nil), (text, allGroups), (tight, allGroups)]
    let dir = NSTemporaryDirectory() + "fuzz-engine-\(getpid())"
    return variants.enumerated().map { i, v in
        let d = "\(dir)/\(i)"
        try! FileManager.default.createDirectory(atPath: d, withIntermediateDirectories: true)
        FileManager.default.createFile(atPath: "\(d)/pack.yaml", contents: Data(v.pack.utf8))
        var config: String?
        if let site = v.site {
            config = "\(d)/site.yaml"
            FileManager.default.createFile(atPath: config!, contents: Data(site.utf8))
        }
        do {
            let program = try Compiler.build(rules: d, config: config)
            try? FileManager.default.removeItem(atPath: d)
            return Engine(program: program, origin: Origin(name: "fuzz", version: "0"))
        } catch {
            fatalError("fuzz-engine: variant \(i) does not compile:\n\(error)")
        }
    }
}()

let topics = ["MQTT_RT_DATA", "MQTT_ENY_NOW", "MQTT_RT_DATA", "MQTT_TELEIND"]
nonisolated(unsafe) var clock = Instant(epochMillis: 1_768_237_200_000, utcOffsetSeconds: 3600)
nonisolated(unsafe) var output = ProcessOutput()

func fuzzOne(_ data: [UInt8]) {
    guard let selector = data.first else { return }
    fuzzScan(data)
    let engine = engines[Int(selector & 3)]
    let topic = topics[Int(selector >> 2 & 3)]
    clock = clock.adding(seconds: Double(selector >> 4) * 7)
    output.removeAll()
    data.withUnsafeBytes { bytes in
        engine.process(topic: topic, payload: UnsafeRawBufferPointer(rebasing: bytes[1...]), now: clock, into: &output)
    }
    // Whatever is published must be what a broker accepts: a valid topic.
    for m in output.messages where m.topic.isEmpty || m.topic.contains("+") || m.topic.contains("#") || m.topic.utf8.contains(0) {
        fatalError("fuzz-engine: unsafe topic \(m.topic)")
    }
}

/// The scanner with a learned shape against the scanner without one, on
/// every input: one shape lives across inputs, so each payload meets what
/// the earlier ones taught it, and any difference in slots, the all-zero
/// flag or the error is a finding.
let scanKeys = ["id", "time", "isend", "zyggl", "zygsz", "ia", "ua", "uab", "qa", "pfa", "uxja", "zydvsz"]
let scanTable = KeyTable(slots: scanKeys, ignoredForZero: ["isend"])
nonisolated(unsafe) let scanShape = DocumentShape(table: scanTable)

/// Slots of a trivial type: the scan sets every one before it reads any.
nonisolated(unsafe) let scanSlots = UnsafeMutableBufferPointer<FieldSlice>.allocate(capacity: scanKeys.count)

func scanOutcome(_ payload: UnsafeRawBufferPointer, shape: DocumentShape?) -> ([FieldSlice], Bool?, ScanError?) {
    do throws(ScanError) {
        let result = try PayloadScanner.scan(payload, table: scanTable, slots: scanSlots, shape: shape)
        return (Array(scanSlots), result.allZero, nil)
    } catch {
        return ([], nil, error)
    }
}

func fuzzScan(_ data: [UInt8]) {
    data.withUnsafeBytes { bytes in
        let payload = UnsafeRawBufferPointer(rebasing: bytes[1...])
        let plain = scanOutcome(payload, shape: nil), shaped = scanOutcome(payload, shape: scanShape)
        if plain.0 != shaped.0 || plain.1 != shaped.1 || plain.2 != shaped.2 {
            fatalError("fuzz-engine: the scan with a learned shape differs: \(shaped) ≠ \(plain)")
        }
    }
}
