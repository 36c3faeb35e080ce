import Testing
@testable import Services
@testable import ServicesFixtures

/// The proxy's table of records in flight to the central broker (message id →
/// journal sequence and kind), which replaced a dictionary on the hot path.
@Suite struct InFlightTableTests {
    /// Ids as libmosquitto hands them out (1, 2, 3…, wrapping after 65,535),
    /// a window in flight, acknowledged in order and out of order.
    @Test func sequentialIdsInAWindowAcrossTheWrap() {
        var table = InFlightTable()
        var mid: Int32 = 65_000
        var sequence: UInt64 = 0
        var inFlight: [Int32: UInt64] = [:]
        for step in 0..<5_000 {
            table.insert(mid, sequence: sequence, kind: UInt8(step % 3))
            inFlight[mid] = sequence
            sequence += 1
            mid = mid == 65_535 ? 1 : mid + 1
            if inFlight.count > 256 {
                // The oldest but one every other time: PUBACKs need not come in order.
                let victim = inFlight.keys.sorted { inFlight[$0]! < inFlight[$1]! }[step % 2]
                #expect(table[victim]?.sequence == inFlight[victim])
                #expect(table.remove(victim)?.sequence == inFlight.removeValue(forKey: victim))
                #expect(table[victim] == nil)
            }
            #expect(table.count == inFlight.count)
        }
        for (id, expected) in inFlight { #expect(table.remove(id)?.sequence == expected) }
        #expect(table.isEmpty)
    }

    /// An id whose slot is held by a much older one (1,024 ids earlier) is kept too.
    @Test func aCollidingIdIsKeptApart() {
        var table = InFlightTable()
        table.insert(5, sequence: 50, kind: 1)
        table.insert(5 + 1024, sequence: 51, kind: 2)
        table.insert(5 + 2048, sequence: 52, kind: 0)
        #expect(table.count == 3)
        #expect(table[5 + 1024]?.sequence == 51 && table[5 + 1024]?.kind == 2)
        #expect(table.remove(5)?.sequence == 50)
        #expect(table.remove(5)?.sequence == nil)
        #expect(table[5 + 2048]?.sequence == 52)
        // The freed slot is used again; the ids in the overflow stay findable.
        table.insert(5 + 3072, sequence: 53, kind: 0)
        #expect(table.remove(5 + 1024)?.sequence == 51)
        #expect(table.remove(5 + 2048)?.sequence == 52)
        #expect(table.remove(5 + 3072)?.sequence == 53)
        #expect(table.isEmpty)
        #expect(table.remove(77) == nil)
    }
}
