import Foundation
import Testing
import TestSupport
@testable import RuleEngine

/// The scan with a learned `DocumentShape` against the scan without one: for
/// every document, whatever the shape learned before it, the same slots, the
/// same all-zero flag, the same error at the same offset.
@Suite struct DocumentShapeTests {
    /// What a scan returned: the slots and the all-zero flag, or its error.
    struct Outcome: Equatable {
        var slots: [FieldSlice]
        var allZero: Bool
        var error: ScanError?
    }

    static func scan(_ payload: [UInt8], _ table: KeyTable, _ shape: DocumentShape?) -> Outcome {
        var slots = [FieldSlice](repeating: FieldSlice(start: 99, end: 99, kind: .object, isZero: true), count: table.slotCount)
        var outcome = Outcome(slots: [], allZero: false, error: nil)
        payload.withUnsafeBytes { bytes in
            slots.withUnsafeMutableBufferPointer { s in
                do throws(ScanError) {
                    outcome.allZero = try PayloadScanner.scan(bytes, table: table, slots: s, shape: shape).allZero
                } catch {
                    outcome.error = error
                }
            }
        }
        outcome.slots = outcome.error == nil ? slots : []
        return outcome
    }

    /// Scans `payload` with `shape` (which keeps what it learns) and without; records a difference.
    @discardableResult
    static func compare(_ payload: [UInt8], _ table: KeyTable, _ shape: DocumentShape, _ comment: String = "") -> Outcome {
        let plain = scan(payload, table, nil)
        let shaped = scan(payload, table, shape)
        #expect(shaped == plain, "\(String(decoding: payload.prefix(160), as: UTF8.self).debugDescription) \(comment)")
        return shaped
    }

    static let keys = ["id", "time", "isend", "zyggl", "zygsz", "ia", "ua", "uab", "qa", "pfa", "note", "x"]
    static let ignored: Set<String> = ["isend"]

    static func table() -> KeyTable { KeyTable(slots: keys, ignoredForZero: ignored) }

    static func bytes(_ text: String) -> [UInt8] { Array(text.utf8) }

    static func padded(_ text: String) -> [UInt8] {
        bytes(text.replacingOccurrences(of: "~}", with: #","x":"a last member of 32 bytes"}"#))
    }

    /// Every golden payload in file order through one shape: RT and ENY
    /// documents, complete and split, all-zero and junk, one after another.
    @Test func goldenPayloadsInSequence() {
        let table = Self.table()
        let shape = DocumentShape(table: table)
        let payloads = Fixtures.goldenPayloads()
        #expect(payloads.count > 2000)
        for p in payloads { Self.compare(p, table, shape) }
        #expect(shape.learned > 10)
    }

    /// Each real sample learned, then the same sample with one byte replaced,
    /// removed or doubled at every position: every mutation meets the
    /// expectation the intact document left, and is scanned as without it.
    @Test func everyByteOfLearnedSamplesMutated() {
        let table = Self.table()
        let samples = ["MQTT_RT_DATA", "MQTT_ENY_NOW"].map { name in
            [UInt8](FileManager.default.contents(atPath: "\(Fixtures.pack)/samples/\(name).json")!).filter { $0 != UInt8(ascii: "\n") }
        }
        let replacements = Array("\"{}[],:0159-.eE+\\ xnt}".utf8) + [0x00, 0x1F, 0x7F, 0x80, 0xC3, 0xFF, 0x09]
        var mutations = 0
        for sample in samples {
            let shape = DocumentShape(table: table)
            let learned = Self.compare(sample, table, shape)
            #expect(learned.error == nil)
            #expect(shape.learned > 10, "the sample is learned")
            for at in sample.indices {
                var variants: [[UInt8]] = []
                for r in replacements where r != sample[at] {
                    var m = sample
                    m[at] = r
                    variants.append(m)
                }
                var removed = sample
                removed.remove(at: at)
                var doubled = sample
                doubled.insert(sample[at], at: at)
                variants += [removed, doubled, Array(sample.prefix(at))]
                for m in variants {
                    Self.compare(m, table, shape, "(at \(at))")
                    // Relearn the intact sample, so that the next mutation meets it again.
                    Self.compare(sample, table, shape)
                    mutations += 1
                }
            }
        }
        #expect(mutations > 20_000)
    }

    /// Pairs: the first document is learned, the second meets its shape. A
    /// `~}` stands for a last member long enough that every member before it
    /// is 16 bytes or more from the end of the buffer, where expectations are tried.
    @Test(arguments: [
        // The key order changes mid-stream.
        (#"{"ia":1.5,"ua":229.097,"qa":-0.1648~}"#, #"{"ia":1.5,"qa":-0.1648,"ua":229.097~}"#),
        // A key that is a prefix of the expected one, and one the expected is a prefix of.
        (#"{"uab":398.949,"ua":229.097~}"#, #"{"ua":398.949,"uab":229.097~}"#),
        (#"{"ua":229.097,"ia":1.5~}"#, #"{"uab":229.097,"ia":1.5~}"#),
        (#"{"ua":229.097,"ia":1.5~}"#, #"{"u":229.097,"ia":1.5~}"#),
        // The expected key followed by something other than its colon.
        (#"{"ua":229.097,"ia":1.5~}"#, #"{"ua" :229.097,"ia":1.5~}"#),
        (#"{"ua":229.097,"ia":1.5~}"#, #"{"ua",229.097,"ia":1.5~}"#),
        (#"{"ua":229.097,"ia":1.5~}"#, #"{"ua":"229.097","ia":1.5~}"#),
        (#"{"ua":229.097,"ia":1.5~}"#, #"{"ua": 229.097,"ia":1.5~}"#),
        // A repeated key: the last value wins either way.
        (#"{"ua":1.5,"ua":2.5,"ia":1.5~}"#, #"{"ua":1.5,"ua":0.0,"ia":1.5~}"#),
        (#"{"ua":1.5,"ia":1.5,"x":1~}"#, #"{"ua":1.5,"ua":2.5,"ia":1.5~}"#),
        // An escape in a key that equals the expected one once decoded.
        (#"{"ua":229.097,"ia":1.5~}"#, #"{"u\u0061":229.097,"ia":1.5~}"#),
        (#"{"ua":229.097,"ia":1.5~}"#, #"{"ua\u0000":229.097,"ia":1.5~}"#),
        // Numbers of another shape in the expected lanes.
        (#"{"ua":229.097,"ia":1.5~}"#, #"{"ua":029.097,"ia":1.5~}"#),
        (#"{"ua":229.097,"ia":1.5~}"#, #"{"ua":-29.097,"ia":1.5~}"#),
        (#"{"ua":229.097,"ia":1.5~}"#, #"{"ua":229.0970,"ia":1.5~}"#),
        (#"{"ua":229.097,"ia":1.5~}"#, #"{"ua":22.0971,"ia":1.5~}"#),
        (#"{"ua":229.097,"ia":1.5~}"#, #"{"ua":229e097,"ia":1.5~}"#),
        (#"{"ua":229.097,"ia":1.5~}"#, #"{"ua":229.09e,"ia":1.5~}"#),
        (#"{"ua":229.097,"ia":1.5~}"#, #"{"ua":229.:97,"ia":1.5~}"#),
        (#"{"ua":229.097,"ia":1.5~}"#, #"{"ua":000.000,"ia":1.5~}"#),
        (#"{"ua":229.097,"ia":1.5~}"#, #"{"ua":2/9.097,"ia":1.5~}"#),
        (#"{"ua":229.097,"ia":1.5~}"#, #"{"ua":2:9.097,"ia":1.5~}"#),
        (#"{"ua":229.097,"ia":1.5~}"#, #"{"ua":229.097}"ia":1.5~}"#),
        (#"{"ua":0,"ia":1.5~}"#, #"{"ua":00,"ia":1.5~}"#),
        (#"{"ua":0,"ia":1.5~}"#, #"{"ua":-,"ia":1.5~}"#),
        (#"{"ua":0,"ia":1.5~}"#, #"{"ua":0x"ia":1.5~}"#),
        (#"{"ua":-0.1648,"ia":1.5~}"#, #"{"ua":--0.164,"ia":1.5~}"#),
        (#"{"ua":-0.1648,"ia":1.5~}"#, #"{"ua":-0.0000,"ia":1.5~}"#),
        (#"{"ua":10,"ia":1.5~}"#, #"{"ua":00,"ia":1.5~}"#),
        (#"{"ua":10,"ia":1.5~}"#, #"{"ua":99,"ia":1.5~}"#),
        (#"{"ia":1.5,"ua":10~}"#, #"{"ia":1.5,"ua":10,"#),
        // The object's last member learned (spaces after it keep it 16 bytes from the end).
        (#"{"ia":1.5,"ua":10}                "#, #"{"ia":1.5,"ua":10}}               "#),
        (#"{"ia":1.5,"ua":10}                "#, #"{"ia":1.5,"ua":10}           x    "#),
        (#"{"ia":1.5,"ua":10}                "#, #"{"ia":1.5,"ua":10,"qa":1}         "#),
        (#"{"ia":1.5,"ua":10}                "#, #"{"ia":1.5,"ua":10]                "#),
        (#"{"ia":1.5,"ua":10}                "#, #"{"ia":1.5,"ua":10}"#),
        // The object's last member, less than two words from the end of the buffer.
        (#"{"ia":1.5,"isend":"1"}"#, #"{"ia":1.5,"isend":"1""#),
        (#"{"ia":1.5,"isend":"1"}"#, #"{"ia":1.5,"isend":"12"}"#),
        (#"{"ia":1.5,"isend":"1"}"#, #"{"ia":1.5,"isend":"}"#),
        (#"{"ia":1.5,"isend":"1"}"#, #"{"ia":1.5,"isend":"1"]"#),
        (#"{"ia":1.5,"isend":"1"}"#, #"{"ia":1.5,"isend":"1"}x"#),
        (#"{"ia":1.5,"isend":"1"}"#, #"{"ia":1.5,"isend":"1"} "#),
        (#"{"ia":1.5,"isend":"1"}"#, #"{"ia":1.5,"isend":1}"#),
        (#"{"ia":1.5,"isend":"1"}"#, #"{"ia":1.5,"isend":"1","x":1}"#),
        (#"{"ia":1.5,"isend":"1"}"#, #"{"ia":1.5,"isen":"1"}"#),
        (#"{"ia":1.5,"x":1.25}"#, #"{"ia":1.5,"x":1.25"#),
        (#"{"ia":1.5,"x":1.25}"#, #"{"ia":1.5,"x":1.255}"#),
        (#"{"ia":1.5,"x":1.25}"#, #"{"ia":1.5,"x":1.2}"#),
        (#"{"ia":1.5,"x":12345678}"#, #"{"ia":1.5,"x":1234567}"#),
        (#"{"ia":1.5,"x":12345678}"#, #"{"ia":1.5,"x":123456789}"#),
        // The ignored key's value and the all-zero flag.
        (#"{"isend":1,"ia":0.0~}"#, #"{"isend":0,"ia":0.0~}"#),
        (#"{"isend":1,"ia":0.0~}"#, #"{"isend":1,"ia":0.1~}"#),
        // Strings where numbers were, and numbers where strings were.
        (#"{"id":"33B1225950027","ia":1.5~}"#, #"{"id":33,"ia":1.5~}"#),
        (#"{"ia":1.5,"id":"33B1225950027"~}"#, #"{"id":"33B1225950027","ia":1.5~}"#),
        // Strings of another length or with other bytes in the expected lanes.
        (#"{"id":"33B1225950027","ia":1.5~}"#, #"{"id":"33B1225950027\u0000","ia":1.5~}"#),
        (#"{"id":"33B1225950027","ia":1.5~}"#, #"{"id":"33B12259500270","ia":1.5~}"#),
        (#"{"id":"33B1225950027","ia":1.5~}"#, #"{"id":"33B122595002","ia":1.5~}"#),
        (#"{"id":"33B1225950027","ia":1.5~}"#, #"{"id":"33b1225950027","ia":1.5~}"#),
        (#"{"id":"33B1225950027","ia":1.5~}"#, #"{"id":"33B12\"5950027","ia":1.5~}"#),
        (#"{"id":"33B1225950027","ia":1.5~}"#, #"{"id":"33B1225950\27","ia":1.5~}"#),
        (#"{"id":"33B1225950027","ia":1.5~}"#, #"{"id":"33B122595002\u0037","ia":1.5~}"#),
        (#"{"id":"33B1225950027","ia":1.5~}"#, #"{"id":"33B1225950027"1"ia":1.5~}"#),
        (#"{"id":"33B1225950027","ia":1.5~}"#, #"{"id":"33B1225950027"}"ia":1.5~}"#),
        ("{\"id\":\"33B1225950027\",\"ia\":1.5~}", "{\"id\":\"33B12259500\u{7F}7\",\"ia\":1.5~}"),
        ("{\"id\":\"33B1225950027\",\"ia\":1.5~}", "{\"id\":\"33B12259500\u{1F}7\",\"ia\":1.5~}"),
        ("{\"id\":\"33B1225950027\",\"ia\":1.5~}", "{\"id\":\"33B1225950\u{E9}7\",\"ia\":1.5~}"),
        ("{\"id\":\"33B1225950027\",\"ia\":1.5~}", "{\"id\":\"33B1225950027\u{80},\"ia\":1.5~}"),
        // Each range of plain string bytes, and the bytes just outside it.
        (##"{"note":"! #[]~ ","ia":1.5~}"##, ##"{"note":"" #[]~ ","ia":1.5~}"##),
        (##"{"note":"! #[]~ ","ia":1.5~}"##, ##"{"note":"!"#[]~ ","ia":1.5~}"##),
        (##"{"note":"! #[]~ ","ia":1.5~}"##, ##"{"note":"! "[]~ ","ia":1.5~}"##),
        (##"{"note":"! #[]~ ","ia":1.5~}"##, ##"{"note":"! #\]~ ","ia":1.5~}"##),
        (##"{"note":"! #[]~ ","ia":1.5~}"##, ##"{"note":"! #[\~ ","ia":1.5~}"##),
        (##"{"note":"! #[]~ ","ia":1.5~}"##, ##"{"note":"! #[]"~ ","ia":1.5~}"##),
        (##"{"note":"! #[]~ ","ia":1.5~}"##, ##"{"note":"! #[]~\","ia":1.5~}"##),
        ("{\"note\":\"! #[]~ \",\"ia\":1.5~}", "{\"note\":\"! #[]\u{7F}\u{1F}\",\"ia\":1.5~}"),
        ("{\"note\":\"! #[]~ \",\"ia\":1.5~}", "{\"note\":\"\u{1F}!#[]~ \",\"ia\":1.5~}"),
        // Members of three words: the time, and a number of 17 bytes or more.
        (#"{"time":"20260112163900","ia":1.5~}"#, #"{"time":"2026011216390","ia":1.5~}"#),
        (#"{"time":"20260112163900","ia":1.5~}"#, #"{"time":"202601121639000","ia":1.5~}"#),
        (#"{"time":"20260112163900","ia":1.5~}"#, #"{"time":"2026011216390\"","ia":1.5~}"#),
        (#"{"time":"20260112163900","ia":1.5~}"#, #"{"time":"20260112163900"]"ia":1.5~}"#),
        (#"{"zygsz":1163.486,"ia":1.5~}"#, #"{"zygsz":1163.4861,"ia":1.5~}"#),
        (#"{"zygsz":1163.486,"ia":1.5~}"#, #"{"zygsz":0163.486,"ia":1.5~}"#),
        (#"{"zygsz":1163.486,"ia":1.5~}"#, #"{"zygsz":1163.48x,"ia":1.5~}"#),
        (#"{"zygsz":1000.000,"ia":0.0~}"#, #"{"zygsz":1000.000,"ia":0.0~}"#),
        (#"{"zygsz":-0.0000000000,"ia":0.0~}"#, #"{"zygsz":-0.0000000001,"ia":0.0~}"#),
    ])
    func expectedMemberMeets(_ pair: (String, String)) {
        let table = Self.table()
        let shape = DocumentShape(table: table)
        // Learned twice (the second scan runs on what the first learned), then the other document, then the first again.
        let (first, second) = (Self.padded(pair.0), Self.padded(pair.1))
        #expect(Self.compare(first, table, shape).error == nil)
        Self.compare(first, table, shape)
        #expect(shape.learned >= 2, "the first document is learned")
        Self.compare(second, table, shape)
        Self.compare(second, table, shape)
        Self.compare(first, table, shape)
    }

    /// The end of the buffer at every byte of a learned document, and a
    /// learned document whose every member is near the end of the buffer.
    @Test func cutShortAfterEveryByte() {
        let table = Self.table()
        let document = Self.bytes(#"{"id":"33B1225950027","ia":9.735,"ua":229.097,"uab":398.949,"qa":-0.1648,"zyggl":6.6905,"time":"20260112163900","pfa":0.996,"note":"n","zygsz":1163.486,"isend":"1"}"#)
        let shape = DocumentShape(table: table)
        Self.compare(document, table, shape)
        #expect(shape.learned == 11)
        for cut in 0...document.count {
            Self.compare(Array(document.prefix(cut)), table, shape, "(cut at \(cut))")
            Self.compare(document, table, shape)
        }
    }

    /// Documents of one shape are learned once: every later one is checked
    /// member by member, the object's last member too, and nothing is relearned.
    @Test func steadyDocumentsAreLearnedOnce() {
        let table = Self.table()
        let samples = ["MQTT_RT_DATA", "MQTT_ENY_NOW"].map { name in
            [UInt8](FileManager.default.contents(atPath: "\(Fixtures.pack)/samples/\(name).json")!).filter { $0 != UInt8(ascii: "\n") }
        }
        for sample in samples {
            let shape = DocumentShape(table: table)
            Self.compare(sample, table, shape)
            let members = sample.filter { $0 == UInt8(ascii: ":") }.count
            #expect(shape.learned == members && shape.learnings == members)
            // Other readings of the same shape: other digits in the id, the time and the numbers.
            for digit in UInt8(ascii: "1")...UInt8(ascii: "9") {
                var reading = sample
                for k in reading.indices where reading[k] &- UInt8(ascii: "1") < 9 { reading[k] = digit }
                Self.compare(reading, table, shape)
            }
            #expect(shape.learnings == members, "nothing relearned")
        }
    }

    /// Two meters whose numbers differ in shape, sending in turn, as in the
    /// real capture: each position keeps both, and nothing is relearned.
    @Test func alternatingShapesAreLearnedOnce() {
        let table = Self.table()
        let shape = DocumentShape(table: table)
        let a = Self.padded(#"{"id":"33B1225950027","zygsz":163.486,"ia":0.000,"ua":229.097~}"#)
        let b = Self.padded(#"{"id":"33B1225950028","zygsz":31.057,"ia":11.085,"ua":229.097~}"#)
        Self.compare(a, table, shape)
        Self.compare(b, table, shape)
        let learnings = shape.learnings
        #expect(learnings == 5 + 2)
        for _ in 0..<4 {
            Self.compare(a, table, shape)
            Self.compare(b, table, shape)
        }
        #expect(shape.learnings == learnings, "nothing relearned")
        // A third shape replaces the older of the two.
        let c = Self.padded(#"{"id":"33B1225950029","zygsz":1.5,"ia":1.5,"ua":229.097~}"#)
        Self.compare(c, table, shape)
        Self.compare(b, table, shape)
        Self.compare(c, table, shape)
        #expect(shape.learnings == learnings + 2)
        Self.compare(a, table, shape)
        #expect(shape.learnings == learnings + 4)
    }

    /// A document whose members were learned fast reports the fields it had,
    /// no more: a member the last document had and this one has not leaves
    /// its slot missing.
    @Test func fieldsOfTheDocumentAtHand() {
        let table = Self.table()
        let shape = DocumentShape(table: table)
        let full = Self.compare(Self.bytes(#"{"ia":1.5,"ua":229.097,"qa":-0.1648}"#), table, shape)
        let shaped = Self.compare(Self.bytes(#"{"ia":1.5,"qa":-0.1648}"#), table, shape)
        let ua = Self.keys.firstIndex(of: "ua")!
        #expect(full.slots[ua].kind == .number)
        #expect(shaped.slots[ua].kind == .missing)
    }

    /// The positions remembered are bounded: a document of many members learns the first `capacity`.
    @Test func boundedPositions() {
        let table = Self.table()
        let shape = DocumentShape(table: table)
        let members = (0..<(DocumentShape.capacity * 2)).map { #""k\#($0)":\#($0)"# }.joined(separator: ",")
        let document = Self.bytes("{" + members + #","ia":1.5}"#)
        Self.compare(document, table, shape)
        Self.compare(document, table, shape)
        #expect(shape.learned == DocumentShape.capacity)
    }

    /// A shape made for one table is not used with another.
    @Test func anotherTableIgnoresTheShape() {
        let table = Self.table()
        let other = KeyTable(slots: ["ua", "ia"], ignoredForZero: [])
        let shape = DocumentShape(table: table)
        let document = Self.bytes(#"{"ia":1.5,"ua":229.097}"#)
        Self.compare(document, table, shape)
        let learned = shape.learned
        #expect(Self.scan(document, other, shape) == Self.scan(document, other, nil))
        #expect(shape.learned == learned)
    }
}
