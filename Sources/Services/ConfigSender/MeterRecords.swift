/// What the config sender's state database holds, by meter id, and what
/// changed since it was last handed to the database: each changed meter once,
/// with the rows that differ (`MeterRecordChange`, merged when a meter changes
/// again before the hand-over). Bounded by the meters with a record.
struct MeterRecords: Sendable {
    private(set) var all: [String: MeterRecord]
    private var unsaved: [String: MeterRecordChange] = [:]

    init(_ records: [String: MeterRecord]) {
        all = records
    }

    subscript(id: String) -> MeterRecord? { all[id] }

    /// Meter `id`'s record, changed by `change`; false when nothing changed.
    @discardableResult
    mutating func update(_ id: String, _ change: (inout MeterRecord) -> Void) -> Bool {
        let old = all[id]
        var record = old ?? MeterRecord()
        change(&record)
        guard old != record else { return false }
        all[id] = record
        let diff = MeterRecordChange(from: old, to: record)
        if unsaved[id] != nil { unsaved[id]!.merge(diff) } else { unsaved[id] = diff }
        return true
    }

    /// Whether some record changed since the last `takeUnsaved`.
    var hasUnsaved: Bool { !unsaved.isEmpty }

    /// The records changed since the last call, for the state database.
    mutating func takeUnsaved() -> [(key: String, change: MeterRecordChange)] {
        defer { unsaved.removeAll() }
        return unsaved.map { ($0.key, $0.value) }
    }
}
