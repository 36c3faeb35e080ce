import Foundation

/// What was sent when, and what came back: the send time of every message,
/// indexed by its global number `g`, and per phase the receipts and latencies.
///
/// Message `g` is reading `g / meters` of meter `g % meters`; its `time` field
/// is `base + g / meters`. A received payload's `id` and `time` therefore
/// name `g`, whatever the proxy did to the rest of it, which is why the
/// publishers and the counter live in one process: latency is receive time
/// minus the send time recorded here, on one monotonic clock.
///
/// Publisher threads write a slot before they publish it; the counter's
/// loop thread reads it after the message came back. Both go through
/// `lock`, so the table needs no other ordering argument (which is why the
/// class, whose tables are raw buffers, may be `@unchecked Sendable`).
final class Ledger: @unchecked Sendable {
    struct Tally: Sendable {
        var received = 0
        var duplicates = 0
        var latenciesNs: [UInt64] = []
        var firstReceiveNs: UInt64 = 0
        var lastReceiveNs: UInt64 = 0
    }

    let meters: Int
    let capacity: Int
    let base: Int64
    let idPrefix: [UInt8]

    private let lock = NSLock()
    // Guarded by `lock`. Each buffer has `capacity` elements.
    private let sentAt: UnsafeMutablePointer<UInt64>   // monotonic ns; 0 = not sent
    private let phaseOf: UnsafeMutablePointer<UInt8>
    private let seen: UnsafeMutablePointer<Bool>
    private var tallies: [Tally]
    private var unknown = 0

    init(meters: Int, capacity: Int, base: Int64, idPrefix: String, phases: Int) {
        self.meters = meters
        self.capacity = capacity
        self.base = base
        self.idPrefix = Array(idPrefix.utf8)
        sentAt = .allocate(capacity: capacity)
        sentAt.initialize(repeating: 0, count: capacity)
        phaseOf = .allocate(capacity: capacity)
        phaseOf.initialize(repeating: 0, count: capacity)
        seen = .allocate(capacity: capacity)
        seen.initialize(repeating: false, count: capacity)
        tallies = Array(repeating: Tally(), count: phases)
    }

    deinit {
        sentAt.deallocate()
        phaseOf.deallocate()
        seen.deallocate()
    }

    /// On a publisher thread, just before the message is handed to libmosquitto.
    func recordSend(_ g: Int, phase: Int, at now: UInt64) {
        lock.withLock {
            sentAt[g] = now
            phaseOf[g] = UInt8(phase)
        }
    }

    /// On the counter's loop thread.
    func recordReceive(_ payload: UnsafeRawBufferPointer, at now: UInt64) {
        guard let g = messageNumber(payload) else {
            lock.withLock { unknown += 1 }
            return
        }
        lock.withLock {
            let sent = sentAt[g]
            guard sent != 0 else { unknown += 1; return }
            let phase = Int(phaseOf[g])
            if seen[g] {
                tallies[phase].duplicates += 1
                return
            }
            seen[g] = true
            tallies[phase].received += 1
            tallies[phase].latenciesNs.append(now &- sent)
            if tallies[phase].firstReceiveNs == 0 { tallies[phase].firstReceiveNs = now }
            tallies[phase].lastReceiveNs = now
        }
    }

    func tally(_ phase: Int) -> Tally { lock.withLock { tallies[phase] } }
    func received(_ phase: Int) -> Int { lock.withLock { tallies[phase].received } }
    var unknownCount: Int { lock.withLock { unknown } }

    /// `g` from the payload's id (prefix + meter number) and time; nil if the
    /// payload is not one of ours.
    private func messageNumber(_ payload: UnsafeRawBufferPointer) -> Int? {
        guard let idAt = ByteSearch.firstIndex(of: ByteSearch.idKey, in: payload, from: 0),
              let timeAt = ByteSearch.firstIndex(of: ByteSearch.timeKey, in: payload, from: 0)
        else { return nil }
        let idStart = idAt + ByteSearch.idKey.count
        let timeStart = timeAt + ByteSearch.timeKey.count
        guard idStart + PayloadTemplate.idLength <= payload.count,
              timeStart + PayloadTemplate.timeLength <= payload.count else { return nil }
        for (i, c) in idPrefix.enumerated() where payload[idStart + i] != c { return nil }
        var meter = 0
        for i in (idStart + idPrefix.count)..<(idStart + PayloadTemplate.idLength) {
            let c = payload[i]
            guard c >= 0x30 && c <= 0x39 else { return nil }
            meter = meter * 10 + Int(c - 0x30)
        }
        let time = UnsafeRawBufferPointer(rebasing: payload[timeStart..<(timeStart + PayloadTemplate.timeLength)])
        guard meter < meters, let seconds = MeterClock.parse(time) else { return nil }
        let reading = seconds - base
        guard reading >= 0 else { return nil }
        let g = Int(reading) * meters + meter
        return g < capacity ? g : nil
    }
}
