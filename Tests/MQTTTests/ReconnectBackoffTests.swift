import Testing
@testable import MQTT

@Suite struct ReconnectBackoffTests {
    @Test func doublesFromMinimumToMaximumWithJitter() {
        var low = ReconnectBackoff(minimum: 1, maximum: 60)
        var high = ReconnectBackoff(minimum: 1, maximum: 60)
        var mid = ReconnectBackoff(minimum: 1, maximum: 60)
        let lows = (0..<9).map { _ in low.nextDelay(unit: 0) }
        let highs = (0..<9).map { _ in high.nextDelay(unit: 0.999_999) }
        let mids = (0..<9).map { _ in mid.nextDelay(unit: 0.5) }
        #expect(mids == [1, 2, 4, 8, 16, 32, 60, 60, 60])
        // -25 % jitter, but never below the minimum.
        #expect(lows == [1, 1.5, 3, 6, 12, 24, 45, 45, 45])
        // +25 % jitter, but never above the maximum.
        #expect(highs.map { ($0 * 100).rounded() / 100 } == [1.25, 2.5, 5, 10, 20, 40, 60, 60, 60])
    }

    @Test func resetStartsOver() {
        var backoff = ReconnectBackoff(minimum: 1, maximum: 60)
        for _ in 0..<5 { _ = backoff.nextDelay(unit: 0.5) }
        backoff.reset()
        #expect(backoff.nextDelay(unit: 0.5) == 1)
    }

    @Test func longOutagesDoNotOverflow() {
        var backoff = ReconnectBackoff(minimum: 1, maximum: 60)
        for _ in 0..<10_000 { _ = backoff.nextDelay(unit: 0.5) }
        #expect(backoff.nextDelay(unit: 0.5) == 60)
    }
}
