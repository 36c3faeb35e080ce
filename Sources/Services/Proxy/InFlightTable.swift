/// The central broker's message ids of the journal records handed over and not
/// yet acknowledged, with their journal sequence and kind: one insert per
/// reading and one removal per PUBACK, without hashing.
///
/// libmosquitto numbers messages 1, 2, 3… (wrapping at 65,535), and at most a
/// window of records is in flight, so the id modulo the slot count almost always
/// finds a free slot: a fixed array indexed by `mid & mask`. An id whose slot is
/// taken by a much older one (a record left in flight while 1,024 other
/// messages went out) goes to a small dictionary instead. Bounded: one entry
/// per record in flight, which the proxy's window bounds.
struct InFlightTable {
    private struct Slot {
        /// 0: free (MQTT message ids start at 1).
        var mid: Int32 = 0
        var kind: UInt8 = 0
        var sequence: UInt64 = 0
    }

    private static let slotCount = 1024
    private var slots = [Slot](repeating: Slot(), count: slotCount)
    private var overflow: [Int32: (sequence: UInt64, kind: UInt8)] = [:]
    private(set) var count = 0

    var isEmpty: Bool { count == 0 }

    subscript(mid: Int32) -> (sequence: UInt64, kind: UInt8)? {
        let slot = slots[Self.index(mid)]
        if slot.mid == mid { return (slot.sequence, slot.kind) }
        return overflow.isEmpty ? nil : overflow[mid]
    }

    mutating func insert(_ mid: Int32, sequence: UInt64, kind: UInt8) {
        precondition(mid != 0, "MQTT message ids start at 1")
        let i = Self.index(mid)
        if slots[i].mid == mid || (slots[i].mid == 0 && overflow[mid] == nil) {
            if slots[i].mid == 0 { count += 1 }
            slots[i] = Slot(mid: mid, kind: kind, sequence: sequence)
        } else if overflow.updateValue((sequence, kind), forKey: mid) == nil {
            count += 1
        }
    }

    @discardableResult
    mutating func remove(_ mid: Int32) -> (sequence: UInt64, kind: UInt8)? {
        let i = Self.index(mid)
        if slots[i].mid == mid {
            let slot = slots[i]
            slots[i].mid = 0
            count -= 1
            return (slot.sequence, slot.kind)
        }
        guard !overflow.isEmpty, let entry = overflow.removeValue(forKey: mid) else { return nil }
        count -= 1
        return entry
    }

    private static func index(_ mid: Int32) -> Int { Int(mid) & (slotCount - 1) }
}
