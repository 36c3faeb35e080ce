/// Runs several packs in one process: each message goes to the engine of the
/// pack that owns its meter (`ProgramSet.owner`).
///
/// With one pack it is a pass-through: `process` calls that pack's engine and
/// nothing else, so the single-pack path costs what it cost before. With
/// several, it finds the id in the payload (a byte search for `"id":"…"`; a
/// full scan when the id is escaped or spaced), resolves the owner, and hands
/// the message to that engine, which checks everything again as usual. Not
/// thread-safe, like `Engine`.
public final class PackRouter {
    public let programs: ProgramSet
    public let engines: [Engine]
    private let single: Engine?
    /// Per topic, the engines with a route for it (bounded like the engine's cache);
    /// the last topic's, without hashing, since a stream repeats its topic.
    private var topicEngines: [String: [Int]] = [:]
    private var lastTopic = ""
    private var lastEngines: [Int] = []
    /// Per engine, its id field as the bytes `"field":"`, and a table to scan for it.
    private let idNeedles: [[UInt8]]
    private let idTables: [KeyTable]
    /// The id checks of the packs that claim by pattern, with their index: the
    /// claim loop reads these in place instead of copying whole programs.
    private let claimDevices: [CompiledDevice]
    private let claimIndices: [Int]

    /// The bound on the meters all engines remember together; nil: none.
    public let meterLimit: MeterLimit?

    public init(programs: ProgramSet, origin: Origin, maxMeters: Int? = nil) {
        self.programs = programs
        let limit = maxMeters.map { MeterLimit(maximum: $0) }
        meterLimit = limit
        engines = programs.programs.map { program in
            let engine = Engine(program: program, origin: origin)
            engine.meterLimit = limit
            return engine
        }
        single = engines.count == 1 ? engines[0] : nil
        idNeedles = programs.programs.map { Array("\"\($0.idField)\":\"".utf8) }
        idTables = programs.programs.map { KeyTable(slots: [$0.idField], ignoredForZero: []) }
        claimIndices = programs.programs.indices.filter { programs.programs[$0].claimsByPattern }
        claimDevices = claimIndices.map { programs.programs[$0].device }
    }

    /// Processes one message. Convenience form that allocates its output.
    public func process(topic: String, payload: [UInt8], now: Instant) -> ProcessOutput {
        var out = ProcessOutput()
        payload.withUnsafeBytes { process(topic: topic, payload: $0, now: now, into: &out) }
        return out
    }

    /// Processes one message, appending to `out`.
    public func process(topic: String, payload: UnsafeRawBufferPointer, now: Instant, into out: inout ProcessOutput) {
        if let single {
            single.process(topic: topic, payload: payload, now: now, into: &out)
            return
        }
        let candidates = engines(for: topic)
        guard let firstCandidate = candidates.first else {
            expire(now: now, into: &out)
            out.drops.append(Drop(reason: .unrouted, topic: topic, detail: engines[0].named(payload, "no route matches this topic")))
            return
        }
        // No id to be found: the first candidate reports why (malformed, no id, …).
        guard let owner = owner(payload, candidates: candidates) else {
            engines[firstCandidate].process(topic: topic, payload: payload, now: now, into: &out)
            return
        }
        // Routing read only the id: a payload no pack may take is checked
        // whole, so a broken one is `malformed` however many packs run.
        let taken = if case .pack(let i) = owner.owner { candidates.contains(i) } else { false }
        if !taken, let error = malformation(payload, table: idTables[firstCandidate]) {
            expire(now: now, into: &out)
            out.drops.append(Drop(reason: .malformed, topic: topic, detail: engines[firstCandidate].named(payload, error)))
            return
        }
        func payloadID() -> String {
            switch owner.source {
            case .range(let r): printable(UnsafeRawBufferPointer(rebasing: payload[r]))
            case .decoded(let d): d.withUnsafeBytes { printable($0) }
            }
        }
        switch owner.owner {
        case .pack(let i) where candidates.contains(i):
            engines[i].process(topic: topic, payload: payload, now: now, into: &out)
        case .pack(let i):
            expire(now: now, into: &out)
            out.drops.append(Drop(reason: .unrouted, topic: topic,
                                  detail: "\(payloadID()): pack '\(engines[i].program.packName)' has no route for this topic"))
        case .none:
            expire(now: now, into: &out)
            let id = payloadID()
            if id.isEmpty || id.utf8.contains(where: { $0 == UInt8(ascii: "/") || $0 == UInt8(ascii: "+") || $0 == UInt8(ascii: "#") || $0 < 0x20 }) {
                let shown = Array(id.utf8).withUnsafeBytes { Engine.readable($0) }
                out.drops.append(Drop(reason: .invalidID, topic: topic, detail: shown.map { "'\($0)' cannot be a topic level" } ?? "the id cannot be a topic level"))
            } else {
                out.drops.append(Drop(reason: .unclaimed, topic: topic, detail: "\(id): no pack claims this id"))
            }
        case .ambiguous(let packs):
            expire(now: now, into: &out)
            out.drops.append(Drop(reason: .unclaimed, topic: topic,
                                  detail: "\(payloadID()): claimed by \(packs.map { "'\(engines[$0].program.packName)'" }.joined(separator: " and ")); name its pack in the site config"))
        }
    }

    /// Why the payload is not a JSON object, or nil when it is one.
    private func malformation(_ payload: UnsafeRawBufferPointer, table: KeyTable) -> String? {
        var slot = [FieldSlice()]
        return slot.withUnsafeMutableBufferPointer { slots -> String? in
            do throws(ScanError) {
                _ = try PayloadScanner.scan(payload, table: table, slots: slots)
                return nil
            } catch {
                return error.description
            }
        }
    }

    /// The split sets still waiting for parts, pack by pack.
    public var pendingSets: [(topic: String, id: String, parts: Int)] { engines.flatMap(\.pendingSets) }

    /// Drops incomplete split sets past their age, in every engine.
    public func expire(now: Instant, into out: inout ProcessOutput) {
        for e in engines { e.expire(now: now, into: &out) }
    }

    private func engines(for topic: String) -> [Int] {
        if topic == lastTopic { return lastEngines }
        let found: [Int]
        if let cached = topicEngines[topic] {
            found = cached
        } else {
            found = engines.indices.filter { engines[$0].program.matcher.match(topic) != nil }
            if topicEngines.count < 1024 { topicEngines[topic] = found }
        }
        lastTopic = topic
        lastEngines = found
        return found
    }

    /// The owner of the message's id (a printable id for drops), or nil when
    /// the payload has no string id where the candidates look for it.
    /// Where the id was found: its bytes in the payload, or decoded from an escaped string.
    private enum IDSource { case range(Range<Int>), decoded([UInt8]) }

    /// The owner, and where its id is (printed only when a drop needs it: no allocation otherwise).
    private func owner(_ payload: UnsafeRawBufferPointer, candidates: [Int]) -> (owner: ProgramSet.Owner, source: IDSource)? {
        let c = candidates[0]
        if let range = Self.find(idNeedles[c], in: payload) {
            return (claim(UnsafeRawBufferPointer(rebasing: payload[range])), .range(range))
        }
        // Escaped or spaced: scan properly.
        var slot = [FieldSlice()]
        let decoded: [UInt8]? = slot.withUnsafeMutableBufferPointer { slots in
            guard (try? PayloadScanner.scan(payload, table: idTables[c], slots: slots)) != nil, slots[0].kind == .string else { return nil }
            return PayloadScanner.unescape(payload, Int(slots[0].start) + 1, Int(slots[0].end) - 1)
        }
        guard let decoded else { return nil }
        return decoded.withUnsafeBytes { (claim($0), .decoded(decoded)) }
    }

    /// `ProgramSet.owner` on the hot path: the site's assignment, else the one
    /// pack whose pattern matches, else the default pack.
    private func claim(_ id: UnsafeRawBufferPointer) -> ProgramSet.Owner {
        if !programs.assigned.isEmpty, let i = programs.assigned[String(decoding: id, as: UTF8.self)] { return .pack(i) }
        var found = -1
        var more: [Int]?
        for k in claimDevices.indices where claimDevices[k].isValid(id) {
            if found < 0 { found = claimIndices[k] } else { more = (more ?? []) + [claimIndices[k]] }
        }
        if found >= 0 { return more.map { .ambiguous([found] + $0) } ?? .pack(found) }
        return programs.defaultPack.map { .pack($0) } ?? .none
    }

    /// An id for a drop's detail: at most 40 bytes, no control characters.
    private func printable(_ id: UnsafeRawBufferPointer) -> String {
        String(decoding: id.prefix(40).map { $0 < 0x20 ? UInt8(ascii: "?") : $0 }, as: UTF8.self)
    }

    /// The bytes of the string after `needle` (`"id":"`), if it has no escape.
    static func find(_ needle: [UInt8], in bytes: UnsafeRawBufferPointer) -> Range<Int>? {
        let n = bytes.count, m = needle.count
        guard m > 0, n > m else { return nil }
        var i = 0
        outer: while i + m <= n {
            for k in 0..<m where bytes[i + k] != needle[k] { i += 1; continue outer }
            let start = i + m
            var j = start
            while j < n {
                let b = bytes[j]
                if b == UInt8(ascii: "\"") { return start..<j }
                if b == UInt8(ascii: "\\") { return nil }
                j += 1
            }
            return nil
        }
        return nil
    }

    // MARK: the engine's other services, over every pack

    /// The meters seen so far, pack by pack, each in order of first appearance.
    public var seenDevices: [String] { engines.flatMap(\.seenDevices) }

    /// Whether meter `id` was heard since this router started.
    public func hasSeen(_ id: String) -> Bool { engine(for: id)?.hasSeen(id) ?? false }

    /// The discovery and Home Assistant announcements of meter `id`, from its pack.
    public func announcements(for id: String) -> [Outgoing] {
        engine(for: id)?.announcements(for: id) ?? []
    }

    /// The engine that runs meter `id`.
    public func engine(for id: String) -> Engine? {
        if let single { return single }
        var s = id
        guard case .pack(let i) = s.withUTF8({ programs.owner(UnsafeRawBufferPointer($0)) }) else { return nil }
        return engines[i]
    }

    /// Every engine's guarded counters (one pack's list as it is: no second copy).
    public var counters: [CounterSnapshot] { engines.count == 1 ? engines[0].counters : engines.flatMap(\.counters) }

    /// Hands each engine the snapshots of its meters (all of them with one
    /// pack); returns those of meters no pack claims, which no engine took.
    @discardableResult
    public func restore(_ snapshots: [CounterSnapshot]) -> [CounterSnapshot] {
        if let single { single.restore(snapshots); return [] }
        let (byPack, unclaimed) = partitionByPack(snapshots, id: \.device)
        for (i, e) in engines.enumerated() { e.restore(byPack[i]) }
        return unclaimed
    }

    /// `items` per pack that owns their meter (`id`), and those no pack claims: one pass.
    private func partitionByPack<T>(_ items: [T], id: (T) -> String) -> (byPack: [[T]], unclaimed: [T]) {
        var byPack = Array(repeating: [T](), count: engines.count)
        var unclaimed: [T] = []
        for item in items {
            var meter = id(item)
            if case .pack(let i) = meter.withUTF8({ programs.owner(UnsafeRawBufferPointer($0)) }) {
                byPack[i].append(item)
            } else {
                unclaimed.append(item)
            }
        }
        return (byPack, unclaimed)
    }

    /// Every engine's counter changes since the last call (`Engine.takeCounterChanges`).
    public func takeCounterChanges() -> CounterChanges {
        if let single { return single.takeCounterChanges() }
        var all = CounterChanges()
        for e in engines {
            let changes = e.takeCounterChanges()
            all.changed += changes.changed
            all.forgotten += changes.forgotten
        }
        return all
    }

    public func forgetCounters(device: String, field: String? = nil) -> [String] {
        engine(for: device)?.forgetCounters(device: device, field: field) ?? []
    }

    /// When meter `id`'s last clean reading left, in its pack's engine.
    public func lastHeard(_ id: String) -> Instant? { engine(for: id)?.lastHeard(id) }

    /// The meters heard, every pack together.
    public var metersHeard: Int { engines.reduce(0) { $0 + $1.metersHeard } }

    /// Calls `body` with every meter heard and when, pack by pack.
    public func forEachHeard(_ body: (String, Instant) -> Void) {
        for e in engines { e.forEachHeard(body) }
    }

    /// Every meter heard and when: what a reload hands the next router.
    public var heard: [(id: String, at: Instant)] {
        var all: [(id: String, at: Instant)] = []
        all.reserveCapacity(metersHeard)
        forEachHeard { all.append(($0, $1)) }
        return all
    }

    /// Hands each engine when its meters were last heard (all of them with one pack).
    public func restoreHeard(_ heard: [(id: String, at: Instant)]) {
        if let single { single.restoreHeard(heard); return }
        let byPack = partitionByPack(heard, id: \.id).byPack
        for (i, e) in engines.enumerated() { e.restoreHeard(byPack[i]) }
    }

    /// Moves when any engine's counters moved.
    public var countersVersion: Int { engines.reduce(0) { $0 &+ $1.countersVersion } }

    public var guardedFieldNames: [String] {
        var seen: Set<String> = []
        return engines.flatMap(\.guardedFieldNames).filter { seen.insert($0).inserted }
    }
}
