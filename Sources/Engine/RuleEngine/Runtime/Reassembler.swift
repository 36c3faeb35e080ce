/// Split-packet sets of one route, merged per key (id and time) until the
/// completion condition holds. Bounded in parts, bytes and age; a set over
/// its bounds or too old is dropped and reported.
struct Reassembler {
    /// One set being merged. Values are copied: the payload buffer is transient.
    struct PartialSet {
        var values: [[UInt8]?]          // per slot, the last part's raw value wins
        var kinds: [ValueKind]
        var zeros: [Bool]
        var allZero = true
        var parts = 0
        var bytes = 0
        var firstMillis: Int64
        var id: String
    }

    /// A completed set, flattened into one buffer with slices into it.
    struct Merged {
        var buffer: [UInt8]
        var slots: [FieldSlice]
        var allZero: Bool

        func withBuffers<R>(_ body: (UnsafeRawBufferPointer, UnsafeBufferPointer<FieldSlice>) -> R) -> R {
            buffer.withUnsafeBytes { b in slots.withUnsafeBufferPointer { body(b, $0) } }
        }
    }

    enum Outcome {
        case held
        case overflow(parts: Int)
        case complete(Merged)
    }

    private var sets: [[UInt8]: PartialSet] = [:]
    /// Most incomplete sets a route keeps; past it the oldest goes.
    static let maxSets = 10_000

    var isEmpty: Bool { sets.isEmpty }

    /// The sets waiting for parts, oldest first.
    var waiting: [(id: String, parts: Int)] {
        sets.values.sorted { ($0.firstMillis, $0.id) < ($1.firstMillis, $1.id) }.map { ($0.id, $0.parts) }
    }

    mutating func add(key: [UInt8], id: String, payload: UnsafeRawBufferPointer, slots: UnsafeBufferPointer<FieldSlice>, allZero: Bool,
                      complete: Bool, limits: CompiledReassembly, now: Instant) -> Outcome {
        var set = sets[key] ?? PartialSet(
            values: Array(repeating: nil, count: slots.count), kinds: Array(repeating: .missing, count: slots.count),
            zeros: Array(repeating: false, count: slots.count), firstMillis: now.epochMillis, id: "")
        set.id = id
        set.parts += 1
        set.bytes += payload.count
        set.allZero = set.allZero && allZero
        for i in 0..<slots.count where slots[i].kind != .missing {
            let s = slots[i]
            set.values[i] = Array(UnsafeRawBufferPointer(rebasing: payload[Int(s.start)..<Int(s.end)]))
            set.kinds[i] = s.kind
            set.zeros[i] = s.isZero
        }
        if set.parts > limits.maxParts || set.bytes > limits.maxBytes {
            sets[key] = nil
            return .overflow(parts: set.parts)
        }
        guard complete else {
            if sets[key] == nil && sets.count >= Reassembler.maxSets, let oldest = sets.min(by: { $0.value.firstMillis < $1.value.firstMillis }) {
                sets[oldest.key] = nil
            }
            sets[key] = set
            return .held
        }
        sets[key] = nil
        var buffer: [UInt8] = []
        var merged: [FieldSlice] = []
        for i in 0..<set.values.count {
            guard let v = set.values[i] else { merged.append(FieldSlice()); continue }
            merged.append(FieldSlice(start: Int32(buffer.count), end: Int32(buffer.count + v.count), kind: set.kinds[i], isZero: set.zeros[i]))
            buffer += v
        }
        return .complete(Merged(buffer: buffer, slots: merged, allZero: set.allZero))
    }

    /// Removes and returns the sets first seen at `cutoffMillis` or before:
    /// a set `max_age_s` old has had its time.
    mutating func expire(notAfter cutoffMillis: Int64) -> [(id: String, parts: Int)] {
        let old = sets.filter { $0.value.firstMillis <= cutoffMillis }
        guard !old.isEmpty else { return [] }
        for key in old.keys { sets[key] = nil }
        return old.values.sorted { ($0.firstMillis, $0.id) < ($1.firstMillis, $1.id) }.map { ($0.id, $0.parts) }
    }
}
