/// One meter's commands waiting for their turn, first in first out: each an
/// index into the pacer's command names and the reason it was decided, not
/// a message (that is built when the command leaves).
///
/// Four entries fit in one word, with no allocation (a KPM33B meter needs
/// three commands a day); past four, or for an index beyond 254, the rest go
/// on in an array. Every word entry comes before every array entry.
struct MeterCommandQueue: Sendable, Equatable {
    struct Entry: Sendable, Equatable {
        /// Index into the pacer's command names.
        var command: Int
        var reason: CommandReason
    }

    /// Up to four entries of 16 bits, the first in the low bits: the index
    /// plus one in the low byte (0: no entry), the reason in the high byte.
    private var word: UInt64 = 0
    /// The entries after the word's, in order; empty (no allocation) in the common case.
    private var rest: [Entry] = []

    private static let slots = 4

    init() {}

    private var wordCount: Int { word == 0 ? 0 : (64 - word.leadingZeroBitCount + 15) / 16 }

    var count: Int { wordCount + rest.count }
    var isEmpty: Bool { word == 0 && rest.isEmpty }
    /// Whether the entries outgrew the word (an allocation of their own).
    var spilled: Bool { !rest.isEmpty }

    /// The entries in order.
    var entries: [Entry] {
        (0..<wordCount).map { Self.decode(UInt16(truncatingIfNeeded: word >> (16 * $0))) } + rest
    }

    func contains(command: Int) -> Bool {
        if command < 255 {
            for slot in 0..<wordCount where (word >> (16 * slot)) & 0xFF == UInt64(command + 1) { return true }
        }
        return rest.contains { $0.command == command }
    }

    mutating func append(_ entry: Entry) {
        let used = wordCount
        if rest.isEmpty, used < Self.slots, entry.command < 255 {
            word |= UInt64(UInt16(entry.command + 1) | UInt16(entry.reason.rawValue) << 8) << (16 * used)
        } else {
            rest.append(entry)
        }
    }

    mutating func popFirst() -> Entry? {
        if word != 0 {
            let first = Self.decode(UInt16(truncatingIfNeeded: word))
            word >>= 16
            return first
        }
        guard !rest.isEmpty else { return nil }
        let first = rest.removeFirst()
        if rest.isEmpty { rest = [] }  // gives the array's storage back
        return first
    }

    /// Takes command `command` out of the queue; its entry, nil when it was not in it.
    mutating func remove(command: Int) -> Entry? {
        var all = entries
        guard let at = all.firstIndex(where: { $0.command == command }) else { return nil }
        let removed = all.remove(at: at)
        self = MeterCommandQueue(all)
        return removed
    }

    /// The same entries with each command index mapped by `map` (nil: the command is dropped).
    func remapped(_ map: (Int) -> Int?) -> (queue: MeterCommandQueue, dropped: [Entry]) {
        var kept: [Entry] = [], dropped: [Entry] = []
        for entry in entries {
            if let command = map(entry.command) { kept.append(Entry(command: command, reason: entry.reason)) } else { dropped.append(entry) }
        }
        return (MeterCommandQueue(kept), dropped)
    }

    private init(_ entries: [Entry]) {
        for entry in entries { append(entry) }
    }

    private static func decode(_ bits: UInt16) -> Entry {
        Entry(command: Int(bits & 0xFF) - 1, reason: CommandReason(rawValue: UInt8(bits >> 8)) ?? .discovery)
    }
}
