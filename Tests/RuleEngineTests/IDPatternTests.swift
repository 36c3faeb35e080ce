import Foundation
import Testing
import TestSupport
@testable import RuleEngine

/// `IDPattern`, the small regex engine for ids, against a reference engine
/// (NSRegularExpression) on generated patterns and inputs.
@Suite struct IDPatternTests {
    /// A deterministic generator, so a failure names its seed.
    typealias Random = SplitMix

    static let alphabet: [Character] = Array("AB09x/+# -.")

    /// A pattern of the supported grammar: literals, '.', classes (ranges,
    /// negation, escapes) and every quantifier.
    static func pattern(_ r: inout Random) -> String {
        var out = "^"
        for _ in 0..<(1 + r.below(4)) {
            switch r.below(6) {
            case 0: out += "."
            case 1: out += r.pick(["[0-9]", "[A-B]", "[^/]", "[^A-Z0-9]", "[AB0]", "[-A]", "[0-9A-Fx]", "[\\.]"])
            case 2: out += r.pick(["\\.", "\\+", "\\#", "\\/"])
            default: out += String(r.pick(Array("AB09x ")))
            }
            switch r.below(8) {
            case 0: out += "?"
            case 1: out += "*"
            case 2: out += "+"
            case 3: out += "{\(r.below(3))}"
            case 4: out += "{\(r.below(3)),}"
            case 5: let lo = r.below(3); out += "{\(lo),\(lo + r.below(3))}"
            default: break
            }
        }
        return out + "$"
    }

    static func input(_ r: inout Random) -> String {
        String((0..<r.below(7)).map { _ in r.pick(alphabet) })
    }

    static func reference(_ pattern: String, _ input: String) throws -> Bool {
        let regex = try NSRegularExpression(pattern: pattern)
        let range = NSRange(input.startIndex..., in: input)
        return regex.firstMatch(in: input, range: range) != nil
    }

    @Test func agreesWithAReferenceEngine() throws {
        var r = Random(seed: 20260112)
        var checked = 0
        for _ in 0..<400 {
            let source = Self.pattern(&r)
            let pattern = try IDPattern(source)
            for _ in 0..<60 {
                let text = Self.input(&r)
                let expected = try Self.reference(source, text)
                #expect(pattern.matches(text) == expected, "\(source) on '\(text)'")
                checked += 1
            }
            // A string the pattern accepts, made from it, must match in both.
            #expect(pattern.acceptsEmpty == (try Self.reference(source, "")), "\(source) on the empty string")
        }
        #expect(checked == 24_000)
    }

    @Test func theShippedPattern() throws {
        let p = try IDPattern("^[0-9A-Z]{13}$")
        #expect(p.matches("33B1225950027"))
        #expect(!p.matches("33B122595002"))
        #expect(!p.matches("33b1225950027"))
        #expect(!p.matches("33B12259500/7"))
        #expect(p.topicUnsafeBytes.isEmpty && !p.acceptsEmpty)
    }

    @Test func unsafeBytesAndSyntaxErrors() throws {
        #expect(try IDPattern("^.+$").topicUnsafeBytes.contains(UInt8(ascii: "/")))
        #expect(try IDPattern("^[^A]+$").topicUnsafeBytes.contains(UInt8(ascii: "#")))
        for bad in ["^(A)$", "^A|B$", "^*$", "^[A$", "^A{2$", "^A{3,1}$", "^A\\", "^[Z-A]$", "^A{x}$"] {
            #expect(throws: IDPattern.SyntaxError.self, "\(bad)") { try IDPattern(bad) }
        }
    }
}

/// Templates of topics and command payloads.
@Suite struct TemplateTests {
    @Test func variablesAndOptionalLevels() throws {
        let t = try Template("{root}/{context/}{id}/seconds")
        #expect(t.variables == ["root", "context", "id"])
        let values = ["root": "kpm33b", "id": "33B1225950027"]
        #expect(t.render { values[$0] } == "kpm33b/33B1225950027/seconds")
        #expect(t.render { ["root": "r", "context": "garage", "id": "1"][$0] } == "r/garage/1/seconds")
        // An empty value is no value: an optional level disappears, a plain one is empty.
        #expect(t.render { ["root": "r", "context": "", "id": ""][$0] } == "r//seconds")
        #expect(try Template("plain").variables.isEmpty)
        #expect(try Template("").render { _ in "x" } == "")
        #expect(try Template("{a}{b}").render { $0 == "a" ? "1" : "2" } == "12")
    }

    @Test func syntaxErrorsWithOffsets() {
        func error(_ s: String) -> (String, Int)? {
            do { _ = try Template(s); return nil } catch { return (error.message, error.offset) }
        }
        #expect(error("a}b")! == ("unmatched '}'", 1))
        #expect(error("ab{cd")! == ("unclosed '{'", 2))
        #expect(error("x{a{b}}")! == ("'{' inside a variable", 3))
        #expect(error("{}")! == ("empty variable name", 0))
        #expect(error("{/}")! == ("empty variable name", 0))
        #expect(error("{ok}") == nil)
    }
}

/// The filters' memories when the stream is longer than they are.
@Suite struct EvictionTests {
    @Test func theDuplicateFilterForgetsTheOldestFirst() {
        var filter = DuplicateFilter(capacity: 3)
        func new(_ k: UInt64) -> Bool { filter.insert(k) }
        #expect([10, 20, 30].map(new) == [true, true, true])
        #expect([10, 30].map(new) == [false, false])
        #expect(new(40))      // evicts 10
        #expect(new(10))      // forgotten, so new again (evicts 20)
        #expect([30, 40].map(new) == [false, false])
        #expect(new(20))
    }

    /// Against a model (the last `capacity` keys) on long random streams,
    /// with keys that collide in the table (same low bits) to exercise the
    /// backward-shift deletion, and key 0 (stored as 1).
    @Test(arguments: [1, 2, 3, 7, 16, 100])
    func theDuplicateFilterMatchesAModel(capacity: Int) {
        var r = IDPatternTests.Random(seed: UInt64(capacity))
        var filter = DuplicateFilter(capacity: capacity)
        var recent: [UInt64] = []
        for step in 0..<20_000 {
            let key: UInt64 = switch r.below(4) {
            case 0: UInt64(r.below(8)) << 40            // collide: low bits 0
            case 1: UInt64(r.below(3 * capacity + 2))
            case 2: r.next()
            default: UInt64(r.below(4)) << 40 | 5       // collide: low bits 5
            }
            let normalized = key == 0 ? 1 : key
            let expected = !recent.contains(normalized)
            let inserted = filter.insert(key)
            #expect(inserted == expected, "capacity \(capacity), step \(step), key \(key)")
            if expected {
                recent.append(normalized)
                if recent.count > capacity { recent.removeFirst() }
            }
        }
    }

    /// More incomplete split sets than a route keeps: the oldest goes first,
    /// and the newest are all still there to complete.
    @Test func theReassemblerDropsTheOldestSetPastItsMemory() {
        var r = Reassembler()
        let limits = CompiledReassembly(keySlots: [0], completeSlot: 1, completeRaw: Array(#""1""#.utf8),
                                        maxParts: 16, maxBytes: 1 << 20, maxAgeMillis: 60_000)
        let extra = 5
        for n in 0..<(Reassembler.maxSets + extra) {
            let payload = Array(#"{"id":"M\#(n)","isend":"0"}"#.utf8)
            let slots = [FieldSlice(start: 6, end: Int32(6 + 2 + "M\(n)".count), kind: .string), FieldSlice()]
            let outcome = payload.withUnsafeBytes { p in
                slots.withUnsafeBufferPointer { s in
                    r.add(key: Array("M\(n)".utf8), id: "M\(n)", payload: p, slots: s, allZero: false, complete: false,
                          limits: limits, now: Instant(epochMillis: Int64(n)))
                }
            }
            guard case .held = outcome else { Issue.record("set \(n) not held"); return }
        }
        let left = r.expire(notAfter: .max)
        #expect(left.count == Reassembler.maxSets)
        #expect(left.first?.id == "M\(extra)")
        #expect(left.last?.id == "M\(Reassembler.maxSets + extra - 1)")
        #expect(r.isEmpty)
    }
}
