/// Runs a `Program` over a stream of messages.
///
/// Holds the filters' memory: recent duplicate keys, incomplete split sets,
/// the meters seen. Not thread-safe by design: a service feeds it from one
/// thread, in arrival order.
public final class Engine {
    public let program: Program
    let origin: Origin
    private let routes: [CompiledRoute]
    /// Per route, its clean topic's parts (no topic is kept per meter).
    private let topicPlans: [TopicPlan]
    private var topicCache: [String: Int] = [:]
    private var lastTopic = ""
    private var lastRoute = 0
    private var lastTopicHash: UInt64 = 0
    private var slotBuffer: UnsafeMutableBufferPointer<FieldSlice>
    /// Per route, the members its documents sent, by position: the scan tries them first.
    private let shapes: [DocumentShape]
    private var duplicates: [DuplicateFilter]
    private var pending: [Reassembler]
    /// The meters seen, by their id's bytes, in order of first appearance.
    private var devices = DeviceIndex<DeviceState>()
    private var plansByGroups: [[String]: [OutputPlan]] = [:]
    private var guardedByGroups: [[String]: [[GuardedField]]] = [:]
    /// Counter values from `restore` for meters not seen yet.
    private var restoredCounters: [String: GuardedCounters] = [:]
    /// When meters not seen yet were last heard (`restoreHeard`: a replaced engine's).
    private var restoredHeard: [String: Instant] = [:]
    /// The meters seen whose `lastHeard` is set.
    private var heardCount = 0
    /// Bumped whenever a guarded counter's accepted value changes: the
    /// service takes the changes (`takeCounterChanges`) when it moved.
    public private(set) var countersVersion = 0
    /// The meters whose guarded counters moved since `takeCounterChanges`,
    /// each once (`DeviceState.countersChanged`): at most every meter.
    private var countersChanged: [DeviceState] = []
    /// Counters forgotten since `takeCounterChanges` (operators' requests).
    private var countersForgotten: [CounterChanges.Key] = []
    /// The bound on the meters remembered, shared by the engines of a
    /// `PackRouter`; nil: none (the golden cases, rulecheck).
    public var meterLimit: MeterLimit?
    /// `"<id field>":"`, to name the meter of a payload that was not scanned.
    private let idNeedle: [UInt8]

    public init(program: Program, origin: Origin) {
        self.program = program
        self.origin = origin
        self.routes = program.routes
        topicPlans = program.routes.map { TopicPlan($0.topic, program: program) }
        let maxSlots = max(1, program.routes.map(\.keyTable.slotCount).max() ?? 1, program.replies.values.map(\.keyTable.slotCount).max() ?? 1)
        slotBuffer = .allocate(capacity: maxSlots)
        slotBuffer.initialize(repeating: FieldSlice())
        shapes = program.routes.map { DocumentShape(table: $0.keyTable) }
        duplicates = program.routes.map { DuplicateFilter(capacity: max(1, $0.duplicateMemory)) }
        pending = program.routes.map { _ in Reassembler() }
        idNeedle = Array("\"\(program.idField)\":\"".utf8)
    }

    deinit { slotBuffer.deallocate() }

    /// The meters seen so far, in order of first appearance.
    public var seenDevices: [String] { devices.values.map(\.id) }
    public func hasSeen(_ id: String) -> Bool { device(id) != nil }

    private func device(_ id: String) -> DeviceState? {
        var id = id
        return id.withUTF8 { bytes in
            let raw = UnsafeRawBufferPointer(bytes)
            return devices.find(raw, hash: DeviceIndex<DeviceState>.hash(raw))
        }
    }

    /// Processes one message. Convenience form that allocates its output.
    public func process(topic: String, payload: [UInt8], now: Instant) -> ProcessOutput {
        var out = ProcessOutput()
        payload.withUnsafeBytes { process(topic: topic, payload: $0, now: now, into: &out) }
        return out
    }

    /// Processes one message, appending to `out`.
    public func process(topic: String, payload: UnsafeRawBufferPointer, now: Instant, into out: inout ProcessOutput) {
        expire(now: now, into: &out)
        let routeIndex: Int
        if topic == lastTopic {
            routeIndex = lastRoute
        } else if let cached = topicCache[topic] {
            routeIndex = cached
            remember(topic, cached)
        } else {
            guard let r = program.matcher.match(topic) else {
                out.drops.append(Drop(reason: .unrouted, topic: topic, detail: named(payload, "no route matches this topic")))
                return
            }
            if topicCache.count < 1024 { topicCache[topic] = r }
            remember(topic, r)
            routeIndex = r
        }
        let route = routes[routeIndex]
        let slots = UnsafeMutableBufferPointer(rebasing: slotBuffer[0..<route.keyTable.slotCount])
        let scan: ScanResult
        do {
            scan = try PayloadScanner.scan(payload, table: route.keyTable, slots: slots, shape: shapes[routeIndex])
        } catch {
            out.drops.append(Drop(reason: .malformed, topic: topic, detail: named(payload, error.description)))
            return
        }
        // Types first: a value of the wrong type is a broken message, whoever sent it.
        // One mask test per slot, no branch; the loop below runs only to name a wrong one.
        var wrong: UInt8 = 0
        route.acceptedKinds.withUnsafeBufferPointer { accepted in
            for i in 0..<slots.count { wrong |= ~accepted[i] & 1 << slots[i].kind.rawValue }
        }
        if wrong != 0 {
            out.drops.append(wrongTypeDrop(route, topic: topic, payload: payload, slots: UnsafeBufferPointer(slots)))
            return
        }
        // The id, checked before it can reach a topic or a table.
        let idSlice = slots[route.idSlot]
        guard idSlice.kind == .string else {
            out.drops.append(Drop(reason: .invalidID, topic: topic, detail: idSlice.kind == .missing ? "no '\(program.device.idField)' field" : "the id is not a string"))
            return
        }
        let idBytes = UnsafeRawBufferPointer(rebasing: payload[Int(idSlice.start) + 1..<Int(idSlice.end) - 1])
        let id: String
        // The meter, found by the id's bytes: a known id passed every check
        // below when it was first seen, so it needs none of them again.
        let known: DeviceState?
        if idBytes.contains(UInt8(ascii: "\\")) {
            let decoded = PayloadScanner.unescape(payload, Int(idSlice.start) + 1, Int(idSlice.end) - 1)
            guard program.device.isValid(decoded) else {
                out.drops.append(Drop(reason: .invalidID, topic: topic, detail: "id does not match the pack's pattern"))
                return
            }
            id = String(decoding: decoded, as: UTF8.self)
            known = device(id)
        } else if let state = devices.find(idBytes, hash: DeviceIndex<DeviceState>.hash(idBytes)) {
            id = state.id
            known = state
        } else {
            guard program.device.isValid(idBytes) else {
                let shown = Self.readableID(payload, idSlice).map { "'\($0)' does not" } ?? "id does not"
                out.drops.append(Drop(reason: .invalidID, topic: topic, detail: "\(shown) match the pack's pattern"))
                return
            }
            id = String(decoding: idBytes, as: UTF8.self)
            known = nil
        }
        if known == nil {
            if !program.site.exclude.isEmpty && program.site.exclude.contains(id) {
                out.drops.append(Drop(reason: .excluded, topic: topic, detail: id))
                return
            }
            // Before any table keyed by the id.
            if let limit = meterLimit, limit.count >= limit.maximum {
                out.drops.append(Drop(reason: .meterLimit, topic: topic, detail: "\(id): \(limit.maximum) meters are known, the limit"))
                return
            }
        }
        // The meter's clock, checked before it keys the duplicate filter and
        // the reassembly, feeds the clock-offset check or leaves in a message.
        var meterTime: Int64?
        if let clockSlot = route.clockSlot, let format = program.device.clockFormat {
            let slice = slots[clockSlot]
            if slice.kind == .string {
                meterTime = format.parse(UnsafeRawBufferPointer(rebasing: payload[Int(slice.start) + 1..<Int(slice.end) - 1]))
            }
            guard meterTime != nil else {
                let field = route.slotNames[clockSlot]
                let why = switch slice.kind {
                case .missing: "no '\(field)' field"
                case .null: "'\(field)' is null"
                default: "'\(field)' is not a \(format) time"
                }
                out.drops.append(Drop(reason: .invalidTime, topic: topic, detail: "\(id): \(why)"))
                return
            }
        }
        if let reassembly = route.reassembly {
            let complete = sliceEquals(payload, slots[reassembly.completeSlot], reassembly.completeRaw)
            if complete && pending[routeIndex].isEmpty {
                finish(route: route, topic: topic, id: id, known: known, buffer: payload, slots: UnsafeBufferPointer(slots),
                       allZero: scan.allZero, meterTime: meterTime, now: now, into: &out)
                return
            }
            let key = reassemblyKey(payload, slots, reassembly)
            switch pending[routeIndex].add(key: key, id: id, payload: payload, slots: UnsafeBufferPointer(slots), allZero: scan.allZero,
                                           complete: complete, limits: reassembly, now: now) {
            case .held:
                return
            case .overflow(let parts):
                out.drops.append(Drop(reason: .incomplete, topic: topic, detail: "\(id): split set over its bounds after \(parts) parts"))
                return
            case .complete(let merged):
                merged.withBuffers { buffer, mergedSlots in
                    // The merged set's clock is its parts' (which part's, the merge decides).
                    let mergedTime = route.clockSlot.flatMap { meterSeconds(buffer, mergedSlots[$0]) }
                    finish(route: route, topic: topic, id: id, known: known, buffer: buffer, slots: mergedSlots,
                           allZero: merged.allZero, meterTime: mergedTime, now: now, into: &out)
                }
            }
            return
        }
        finish(route: route, topic: topic, id: id, known: known, buffer: payload, slots: UnsafeBufferPointer(slots),
               allZero: scan.allZero, meterTime: meterTime, now: now, into: &out)
    }

    /// The drop for a reading whose type check failed, naming its first slot of the wrong type.
    private func wrongTypeDrop(_ route: CompiledRoute, topic: String, payload: UnsafeRawBufferPointer,
                               slots: UnsafeBufferPointer<FieldSlice>) -> Drop {
        let i = slots.indices.first { route.acceptedKinds[$0] & 1 << slots[$0].kind.rawValue == 0 }!
        let kind = slots[i].kind
        // Named by its meter when the id itself is readable: the id is not checked yet, so it is shown, not trusted.
        let meter = i == route.idSlot ? nil : Self.readableID(payload, slots[route.idSlot])
        return Drop(reason: .wrongType, topic: topic,
                    detail: (meter.map { "\($0): " } ?? "")
                        + "'\(route.slotNames[i])' is a \(kind.name), expected \(route.slotTypes[i] == .text ? "a string" : "a number")")
    }

    /// An unchecked id for a drop's detail: a plain string of at most 40
    /// printable ASCII bytes, else nil (nothing of a hostile id reaches a log).
    static func readableID(_ payload: UnsafeRawBufferPointer, _ slice: FieldSlice) -> String? {
        guard slice.kind == .string else { return nil }
        return readable(UnsafeRawBufferPointer(rebasing: payload[Int(slice.start) + 1..<Int(slice.end) - 1]))
    }

    static func readable(_ bytes: UnsafeRawBufferPointer) -> String? {
        guard !bytes.isEmpty, bytes.count <= 40, bytes.allSatisfy({ $0 > 0x20 && $0 < 0x7F && $0 != UInt8(ascii: "\\") }) else { return nil }
        return String(decoding: bytes, as: UTF8.self)
    }

    /// A drop's detail for a payload that was not scanned (or not whole):
    /// `ID: why` when `"<id field>":"ID"` stands in it readably, else `why`.
    func named(_ payload: UnsafeRawBufferPointer, _ why: String) -> String {
        guard let range = PackRouter.find(idNeedle, in: payload), let id = Self.readable(UnsafeRawBufferPointer(rebasing: payload[range])) else { return why }
        return "\(id): \(why)"
    }

    private func remember(_ topic: String, _ route: Int) {
        lastTopic = topic
        lastRoute = route
        var h = FNV1a64()
        h.add(topic)
        lastTopicHash = h.value
    }

    /// The split sets still waiting for parts, oldest first: what a replay
    /// reports at the end of its input.
    public var pendingSets: [(topic: String, id: String, parts: Int)] {
        program.routes.indices.flatMap { i in
            pending[i].waiting.map { (program.routes[i].filter, $0.id, $0.parts) }
        }
    }

    /// Drops split sets as old as their route allows, or older. Call it when time passes without messages.
    public func expire(now: Instant, into out: inout ProcessOutput) {
        // Cheap when nothing is pending, which is every message of a meter that never splits.
        guard pending.contains(where: { !$0.isEmpty }) else { return }
        for (i, route) in program.routes.enumerated() {
            guard let r = route.reassembly, !pending[i].isEmpty else { continue }
            for expired in pending[i].expire(notAfter: now.epochMillis - r.maxAgeMillis) {
                out.drops.append(Drop(reason: .incomplete, topic: route.filter, detail: "\(expired.id): \(expired.parts) of a split set, never completed"))
            }
        }
    }

    /// Junk filters, then the device's first-sight announcements, then the clean message.
    /// `known` is meter `id`'s state if it was seen before; `meterTime` its clock in this reading.
    private func finish(route: CompiledRoute, topic: String, id: String, known: DeviceState?, buffer: UnsafeRawBufferPointer,
                        slots: UnsafeBufferPointer<FieldSlice>, allZero: Bool, meterTime: Int64?, now: Instant,
                        into out: inout ProcessOutput) {
        if route.allZero && allZero {
            out.drops.append(Drop(reason: .allZero, topic: topic, detail: id))
            return
        }
        if let key = route.duplicateKey {
            var h = DuplicateKey(route: route.index)
            for part in key {
                switch part {
                case .topic: h.add(lastTopicHash)
                case .slot(let s): h.add(buffer, slots[s])
                }
            }
            if !duplicates[route.index].insert(h.value) {
                out.drops.append(Drop(reason: .duplicate, topic: topic, detail: id))
                return
            }
        }
        let isNew = known == nil
        let state = known ?? newDevice(id)
        if !state.guarded[route.index].isEmpty,
           let glitch = checkCounters(state, route: route, buffer: buffer, slots: slots, meterTime: meterTime, now: now) {
            out.drops.append(Drop(reason: .counterGlitch, topic: topic, detail: "\(id): \(glitch)"))
            return
        }
        let clockChanged = route.clockSlot != nil && updateClock(state, meterTime: meterTime, now: now)
        if isNew {
            out.messages += announcements(for: state)
        } else if clockChanged, let message = discoveryMessage(state) {
            out.messages.append(message)
        }
        let payload: [UInt8]
        if route.derived {
            payload = state.plans[route.index].renderDerived(buffer, slots)
        } else {
            var reused = out.takeSpare()
            state.plans[route.index].render(buffer, slots, into: &reused)
            payload = reused
        }
        if state.lastHeard == nil {
            heardCount += 1
            out.heard.append(state.id)
        }
        state.lastHeard = now
        var topic = out.takeSpareTopic()
        topicPlans[route.index].render(id: state.id, program: program, into: &topic)
        out.messages.append(Outgoing(topicBytes: topic, payload: payload, retain: false, kind: .data, device: state.id))
    }

    private func sliceEquals(_ buffer: UnsafeRawBufferPointer, _ slice: FieldSlice, _ expected: [UInt8]) -> Bool {
        guard slice.kind == .string, Int(slice.end - slice.start) == expected.count else { return false }
        for (k, b) in expected.enumerated() where buffer[Int(slice.start) + k] != b { return false }
        return true
    }

    private func reassemblyKey(_ payload: UnsafeRawBufferPointer, _ slots: UnsafeMutableBufferPointer<FieldSlice>, _ r: CompiledReassembly) -> [UInt8] {
        var key: [UInt8] = []
        for s in r.keySlots {
            let slice = slots[s]
            key.append(slice.kind.rawValue)
            if slice.kind != .missing { key.append(contentsOf: payload[Int(slice.start)..<Int(slice.end)]) }
            key.append(0)
        }
        return key
    }

    // MARK: devices

    final class DeviceState {
        let id: String
        let plans: [OutputPlan]
        /// Per route, its guarded counter fields this meter publishes.
        let guarded: [[GuardedField]]
        var clockOffset: Int64?
        /// When its last clean reading left the engine; nil before the first.
        var lastHeard: Instant?
        /// Per guarded field name.
        var counters = GuardedCounters()
        /// Whether it is in `countersChanged`.
        var countersChanged = false

        init(id: String, plans: [OutputPlan], guarded: [[GuardedField]]) {
            self.id = id
            self.plans = plans
            self.guarded = guarded
        }
    }

    /// The state of a meter not seen before, now remembered.
    private func newDevice(_ id: String) -> DeviceState {
        let groups = program.site.groups(for: id)
        // Meters with the same groups share their plans: a site has a few group sets, not one per meter.
        let key = groups.sorted()
        let plans: [OutputPlan]
        let guarded: [[GuardedField]]
        if let shared = plansByGroups[key], let sharedGuarded = guardedByGroups[key] {
            plans = shared
            guarded = sharedGuarded
        } else {
            let fields = program.routes.map { route in
                route.fields.filter { $0.group < 0 || groups.contains(route.groups[$0.group]) }
            }
            plans = fields.map { OutputPlan(fields: $0) }
            guarded = fields.map { $0.compactMap { f in f.counterGuard.map { GuardedField(name: f.name, slot: f.slot, rule: $0) } } }
            plansByGroups[key] = plans
            guardedByGroups[key] = guarded
        }
        let state = DeviceState(id: id, plans: plans, guarded: guarded)
        if let counters = restoredCounters.removeValue(forKey: id) { state.counters = counters }
        if !restoredHeard.isEmpty, let heard = restoredHeard.removeValue(forKey: id) {
            state.lastHeard = heard
            heardCount += 1
        }
        var idBytes = id
        idBytes.withUTF8 { bytes in
            let raw = UnsafeRawBufferPointer(bytes)
            devices.insert(raw, hash: DeviceIndex<DeviceState>.hash(raw), state)
        }
        meterLimit?.count += 1
        return state
    }

    /// The discovery message and Home Assistant configs of a meter seen before.
    public func announcements(for id: String) -> [Outgoing] {
        guard let state = device(id) else { return [] }
        return announcements(for: state)
    }

    private func announcements(for state: DeviceState) -> [Outgoing] {
        var messages: [Outgoing] = []
        if let discovery = discoveryMessage(state) { messages.append(discovery) }
        if program.site.config.homeAssistant.enabled {
            messages += program.homeAssistantConfigs(for: state.id, origin: origin)
        }
        return messages
    }

    private func discoveryMessage(_ state: DeviceState) -> Outgoing? {
        guard let template = program.discoveryTopic else { return nil }
        let message = DiscoveryMessage(
            id: state.id, manufacturer: program.device.manufacturer, model: program.device.model, pack: program.packName,
            instance: program.instance, context: program.site.contexts[state.id],
            topics: program.routes.map { DiscoveryMessage.Route(name: $0.name, topic: program.render($0.topic, id: state.id)) },
            clockOffsetSeconds: state.clockOffset.map { Int($0) })
        return Outgoing(topic: program.render(template, id: state.id), payload: message.payload, retain: true, kind: .discovery, device: state.id)
    }

    /// A meter clock off by more than the site's threshold is reported in its
    /// discovery message, re-published when the offset changes by more than
    /// the threshold again, and once more (without it) when it is fixed.
    /// Returns whether the reported offset changed.
    private func updateClock(_ state: DeviceState, meterTime: Int64?, now: Instant) -> Bool {
        guard let meterTime else { return false }
        let offset = meterTime - now.localSeconds
        let threshold = Int64(program.site.config.clockSkewThresholdSeconds)
        let reported = state.clockOffset
        let wanted: Int64? = abs(offset) > threshold ? offset : nil
        let changed: Bool = switch (reported, wanted) {
        case (nil, nil): false
        case let (r?, w?): abs(r - w) > threshold
        default: true
        }
        if changed { state.clockOffset = wanted }
        return changed
    }

    /// The meter's clock in a reading (local seconds), if the pack has one and it parses.
    private func meterSeconds(_ buffer: UnsafeRawBufferPointer, _ slice: FieldSlice) -> Int64? {
        guard slice.kind == .string, let format = program.device.clockFormat else { return nil }
        return format.parse(UnsafeRawBufferPointer(rebasing: buffer[Int(slice.start) + 1..<Int(slice.end) - 1]))
    }
}

// MARK: - When each meter was last heard

extension Engine {
    /// When meter `id`'s last clean reading left (this engine's or, for a
    /// meter it has not seen yet, the one `restoreHeard` gave); nil: none.
    public func lastHeard(_ id: String) -> Instant? {
        device(id)?.lastHeard ?? restoredHeard[id]
    }

    /// The meters heard: what a status counts as seen.
    public var metersHeard: Int { heardCount + restoredHeard.count }

    /// Calls `body` with every meter heard and when.
    public func forEachHeard(_ body: (String, Instant) -> Void) {
        for state in devices.values { if let heard = state.lastHeard { body(state.id, heard) } }
        for (id, heard) in restoredHeard { body(id, heard) }
    }

    /// Takes when meters were last heard from the engine a reload replaced:
    /// the meters seen and their silence carry over.
    public func restoreHeard(_ heard: [(id: String, at: Instant)]) {
        for (id, at) in heard {
            if let state = device(id) {
                if state.lastHeard == nil { heardCount += 1 }
                state.lastHeard = at
            } else {
                restoredHeard[id] = at
            }
        }
    }
}

// MARK: - Counters that only go up

extension Engine {
    /// Every guarded counter's last forwarded value (a reload hands them
    /// to the next engine; the service saves only `takeCounterChanges`).
    public var counters: [CounterSnapshot] {
        // Sized at once: doubling would make a 10,000-meter list twice as large.
        var all: [CounterSnapshot] = []
        all.reserveCapacity(devices.values.reduce(0) { $0 + $1.counters.entries.count }
                            + restoredCounters.values.reduce(0) { $0 + $1.entries.count })
        for state in devices.values {
            let id = state.id
            for (field, c) in state.counters.entries {
                all.append(CounterSnapshot(device: id, field: field, value: c.value, time: c.time))
            }
        }
        for (id, fields) in restoredCounters.sorted(by: { $0.key < $1.key }) {
            for (field, c) in fields.entries {
                all.append(CounterSnapshot(device: id, field: field, value: c.value, time: c.time))
            }
        }
        return all
    }

    /// The guarded counters that moved, and those forgotten, since the last
    /// call: what the service writes (once a second at most). The meters'
    /// list is given up, not kept at the size of the last wave of readings.
    public func takeCounterChanges() -> CounterChanges {
        var changes = CounterChanges(forgotten: countersForgotten)
        countersForgotten = []
        guard !countersChanged.isEmpty else { return changes }
        changes.changed.reserveCapacity(countersChanged.reduce(0) { $0 + $1.counters.entries.count })
        for state in countersChanged {
            state.countersChanged = false
            for (field, c) in state.counters.entries {
                changes.changed.append(CounterSnapshot(device: state.id, field: field, value: c.value, time: c.time))
            }
        }
        countersChanged = []
        return changes
    }

    /// A guarded counter of meter `state` took a new value.
    private func counterMoved(_ state: DeviceState) {
        countersVersion += 1
        if !state.countersChanged {
            state.countersChanged = true
            countersChanged.append(state)
        }
    }

    /// Takes counters saved by an earlier run (or the engine a reload
    /// replaced): the next readings are checked against them.
    public func restore(_ snapshots: [CounterSnapshot]) {
        for s in snapshots {
            let state = CounterState(value: s.value, time: s.time)
            if let device = device(s.device) {
                device.counters[s.field] = state
            } else {
                restoredCounters[s.device, default: GuardedCounters()][s.field] = state
            }
        }
    }

    /// Forgets what meter `device` forwarded for guarded `field` (every
    /// guarded field when nil): its next reading starts the counter afresh.
    /// An operator's answer to a real reset the check keeps refusing
    /// (`kpm33b-proxy accept-reset`). Returns the fields forgotten.
    @discardableResult
    public func forgetCounters(device: String, field: String? = nil) -> [String] {
        var forgotten: [String] = []
        if let state = self.device(device) {
            for name in state.counters.names where field == nil || name == field {
                state.counters[name] = nil
                forgotten.append(name)
            }
        }
        if var restored = restoredCounters[device] {
            for name in restored.names where field == nil || name == field {
                restored[name] = nil
                if !forgotten.contains(name) { forgotten.append(name) }
            }
            restoredCounters[device] = restored.isEmpty ? nil : restored
        }
        if !forgotten.isEmpty { countersVersion += 1 }
        countersForgotten += forgotten.map { CounterChanges.Key(device: device, field: $0) }
        return forgotten
    }

    /// The guarded counter fields of the pack, by name.
    public var guardedFieldNames: [String] {
        var names: [String] = []
        for route in program.routes {
            for field in route.fields where field.counterGuard != nil && !names.contains(field.name) { names.append(field.name) }
        }
        return names
    }

    /// Checks the meter's guarded counters in this reading; returns why the
    /// reading must not be forwarded, or nil (and remembers the values).
    func checkCounters(_ state: DeviceState, route: CompiledRoute, buffer: UnsafeRawBufferPointer,
                       slots: UnsafeBufferPointer<FieldSlice>, meterTime: Int64?, now: Instant) -> String? {
        let time = meterTime ?? now.localSeconds
        return state.guarded[route.index].withUnsafeBufferPointer { fields in
            // One guarded field (the usual case): judged and stored in place, with one lookup.
            if fields.count == 1 {
                // Read in place: a copy of the field is a copy of its name and rule.
                let field = fields.baseAddress!
                guard let value = Self.counterValue(field.pointee.slot, buffer, slots) else { return nil }
                let i = state.counters.index(of: field.pointee.name)
                var counter = i.map { state.counters[at: $0] }
                let before = counter?.value
                let why = Self.judge(value, text: Self.text(field.pointee.slot, buffer, slots), at: time, against: &counter,
                                     rule: field.pointee.rule, field: field.pointee.name)
                // `judge` always leaves a counter: the new value, or the run of readings that would make a reset.
                if let counter {
                    if let i { state.counters[at: i] = counter } else { state.counters.insert(field.pointee.name, counter) }
                }
                if why == nil && before != value { counterMoved(state) }
                return why
            }
            // Several: each counter moves only when all of them passed.
            var updates: [(String, CounterState, CounterState?)] = []
            for field in fields {
                guard let value = Self.counterValue(field.slot, buffer, slots) else { continue }
                let previous = state.counters[field.name]
                var counter = previous
                if let why = Self.judge(value, text: Self.text(field.slot, buffer, slots), at: time, against: &counter,
                                        rule: field.rule, field: field.name) {
                    // Remember the run of agreeing readings even though this one is dropped.
                    state.counters[field.name] = counter
                    return why
                }
                updates.append((field.name, counter!, previous))
            }
            for (name, counter, previous) in updates {
                if previous?.value != counter.value { counterMoved(state) }
                state.counters[name] = counter
            }
            return nil
        }
    }

    /// The number in `slot` of a reading, nil when it has none there (a
    /// missing or null value proves nothing).
    private static func counterValue(_ slot: Int, _ buffer: UnsafeRawBufferPointer,
                                     _ slots: UnsafeBufferPointer<FieldSlice>) -> Double? {
        let slice = slots[slot]
        guard slice.kind == .number else { return nil }
        let bytes = UnsafeRawBufferPointer(rebasing: buffer[Int(slice.start)..<Int(slice.end)])
        return DecimalText.value(bytes) ?? Double(String(decoding: bytes, as: UTF8.self))
    }

    private static func text(_ slot: Int, _ buffer: UnsafeRawBufferPointer, _ slots: UnsafeBufferPointer<FieldSlice>) -> String {
        let slice = slots[slot]
        return String(decoding: UnsafeRawBufferPointer(rebasing: buffer[Int(slice.start)..<Int(slice.end)]), as: UTF8.self)
    }

    /// Whether `value` at `time` may follow the counter; nil when it may
    /// (`counter` then holds it), else why not.
    static func judge(_ value: Double, text: @autoclosure () -> String, at time: Int64, against counter: inout CounterState?,
                      rule: CounterGuardRules, field: String) -> String? {
        guard var c = counter else {
            counter = CounterState(value: value, time: time)
            return nil
        }
        if let why = implausible(from: c.value, at: c.time, to: value, text: text(), at: time, rule) {
            // Not after the last forwarded value: a glitch, or the first
            // readings of a reset. Enough of them in a row that agree make it real.
            if let candidate = c.candidate,
               implausible(from: candidate, at: c.candidateTime, to: value, text: text(), at: time, rule) == nil {
                c.agreeing += 1
            } else {
                c.agreeing = 1
            }
            c.candidate = value
            c.candidateTime = time
            if c.agreeing >= rule.acceptResetAfter {
                counter = CounterState(value: value, time: time)
                return nil
            }
            counter = c
            return "\(field) \(why) (\(c.agreeing) of \(rule.acceptResetAfter) readings that would make it a reset)"
        }
        counter = CounterState(value: value, time: time)
        return nil
    }

    /// Why going from `a` at `ta` to `b` at `tb` is not what a counter does, or nil.
    static func implausible(from a: Double, at ta: Int64, to b: Double, text: @autoclosure () -> String, at tb: Int64,
                            _ rule: CounterGuardRules) -> String? {
        let change = b - a
        if change < -rule.maxDrop {
            return "fell from \(a) to \(text())"
        }
        if let limit = rule.maxRisePerHour, change > 0 {
            let seconds = max(tb - ta, 1)
            let perHour = change * 3600 / Double(seconds)
            if perHour > limit {
                // `formatted`, not Int(): a meter may send 1E300 (found by fuzz-engine).
                return "rose from \(a) to \(text()) in \(seconds) s (\(perHour.rounded().formatted) per hour, the limit is \(limit.formatted))"
            }
        }
        return nil
    }
}

private extension Double {
    /// `100` rather than `100.0` in a log line.
    var formatted: String { self == rounded() && abs(self) < 1e15 ? String(Int64(self)) : String(self) }
}

/// The most meters the engines of one process remember (the proxy's
/// `max_meters`): every per-meter table of an engine grows only when a meter
/// is admitted, so this bounds them all. One thread, like `Engine`.
public final class MeterLimit {
    public let maximum: Int
    /// Meters admitted so far.
    public internal(set) var count = 0

    public init(maximum: Int) { self.maximum = maximum }

    public var isReached: Bool { count >= maximum }
}
