import Testing
import TestSupport
@testable import RuleEngine

/// The guarded counters' number reading: the same `Double` as the full
/// conversion for every text it takes, and nil for what it leaves to it.
@Suite struct DecimalTextTests {
    static func value(_ text: String) -> Double? {
        Array(text.utf8).withUnsafeBytes { DecimalText.value($0) }
    }

    @Test func agreesWithTheFullConversionBitForBit() {
        var texts = ["0", "-0", "0.0", "-0.0", "1", "42", "163.486", "6.6905", "-0.5", "0.1", "0.3", "2.675",
                     "999999999999999", "0.000000000000000000001", "123456789.012345", "9007199254740991",
                     "0.1000000000000000", "100000000000000.0"]
        // Seeded: random digits before and after the point, up to the fast path's limits and past them.
        var rng = SplitMix(seed: 0x6B70_6D33_3362)
        for _ in 0..<20_000 {
            let whole = rng.next() % 4 == 0 ? "0" : String(rng.next() % 1_000_000_000)
            let decimals = Int(rng.next() % 12)
            var fraction = ""
            for _ in 0..<decimals { fraction.append(Character(String(rng.next() % 10))) }
            let sign = rng.next() % 5 == 0 ? "-" : ""
            texts.append(decimals == 0 ? sign + whole : sign + whole + "." + fraction)
        }
        for text in texts {
            let expected = Double(text)!
            guard let fast = Self.value(text) else { continue }
            #expect(fast.bitPattern == expected.bitPattern, "\(text): \(fast) against \(expected)")
        }
        // The usual meter texts all take the fast path.
        for text in ["163.486", "6.6905", "-0.5", "0", "229.097", "0.996"] { #expect(Self.value(text) != nil, "\(text)") }
    }

    @Test func leavesExponentsAndLongTextsToTheFullConversion() {
        for text in ["1e3", "1E-2", "-2.5e+10", "1234567890123456", "0.12345678901234567",
                     "1." + String(repeating: "0", count: 23), "-", ""] {
            #expect(Self.value(text) == nil, "\(text)")
        }
    }
}
