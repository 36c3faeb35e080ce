import RuleEngine

/// The engine's guarded counters kept across restarts: loaded at start-up,
/// saved when they changed (handed to a writer thread once a second at most), forgotten for a meter on
/// an operator's request (`CounterResetRequests`).
final class ProxyCounters {
    let store: CounterStore
    let resetRequests: CounterResetRequests
    /// `engine.countersVersion` when the counters were last saved; nil: save.
    private var savedVersion: Int?

    /// `writeDelaySeconds`: every transaction that much slower (tests: a slow disk).
    init(stateDirectory: String, writeDelaySeconds: Double = 0) {
        store = CounterStore(directory: stateDirectory, writeDelaySeconds: writeDelaySeconds)
        resetRequests = CounterResetRequests(stateDirectory: stateDirectory)
    }

    /// Start-up: the saved counters into `engine`; a damaged database is
    /// moved aside and named in `problem` (the status's problems).
    func load(into engine: PackRouter, now: Instant) throws(ServiceError) -> (actions: [ProxyAction], problem: String?) {
        let loaded: CounterStore.Loaded
        do { loaded = try store.load(now: now) } catch { throw ServiceError(error.message) }
        var actions: [ProxyAction] = []
        var problem: String?
        if let aside = loaded.movedAside {
            problem = "state_corrupt: the counters database was damaged (\(aside.reason)); moved to \(aside.path), counters start afresh"
            actions.append(.log(ConfigEvent(.warning, "state_corrupt", [
                ("file", store.path), ("reason", aside.reason), ("moved_to", aside.path), ("action", "starting without saved counters"),
            ])))
        }
        if let imported = loaded.imported {
            actions.append(.log(ConfigEvent(.info, "counters_imported", [
                ("file", store.legacyPath), ("counters", String(imported.count)),
                ("into", store.path), ("renamed_to", imported.renamedTo ?? "(not renamed)"),
            ])))
        }
        if let detail = loaded.problem {
            problem = problem ?? "state_corrupt: \(detail)"
            actions.append(.log(ConfigEvent(.warning, "counters_not_loaded", [("detail", detail)])))
        }
        forgetUnclaimed(engine.restore(loaded.counters))
        savedVersion = engine.countersVersion
        return (actions + takeResetRequests(engine), problem)
    }

    /// `kpm33b-proxy accept-reset`: forgets the counters asked for, so that
    /// the meter's next reading starts them afresh.
    func takeResetRequests(_ engine: PackRouter) -> [ProxyAction] {
        resetRequests.take().map { request in
            let forgotten = engine.forgetCounters(device: request.id, field: request.field)
            return .log(ConfigEvent(.info, "counter_reset_accepted", [
                ("meter", request.id), ("field", request.field ?? "(all)"),
                ("detail", forgotten.isEmpty ? "nothing was remembered for it" : "the next reading starts \(forgotten.joined(separator: ",")) afresh"),
            ]))
        }
    }

    /// Hands the guarded counters that changed to the store's writer thread
    /// (never waits for the disk) and logs the writes that failed since (the
    /// writer tries them again). A kill loses at most the last seconds of
    /// them: the next reading is then checked against a slightly older value.
    func save(_ engine: PackRouter) -> [ProxyAction] {
        let actions: [ProxyAction] = store.takeFailures().map {
            .log(ConfigEvent(.error, "counters_not_saved", [("error", $0)]), limit: "counters.save")
        }
        let version = engine.countersVersion
        guard version != savedVersion else { return actions }
        store.submit(engine.takeCounterChanges())
        savedVersion = version
        return actions
    }

    /// Shutdown: the last changes handed over, and waited for (at most `seconds`).
    func flush(_ engine: PackRouter, seconds: Double) -> [ProxyAction] {
        var actions = save(engine)
        if !store.flush(seconds: seconds) {
            actions.append(.log(ConfigEvent(.error, "counters_not_saved", [
                ("file", store.path), ("unsaved_rows", String(store.backlog)),
                ("error", store.takeFailures().last ?? "not written within \(seconds) s"),
            ])))
        }
        return actions
    }

    /// A reloaded engine counts its versions afresh: the next save asks it.
    /// The counters of meters no pack claims any more (`unclaimed`, left out
    /// of its engines) are deleted.
    func engineReplaced(unclaimed: [CounterSnapshot]) {
        savedVersion = nil
        forgetUnclaimed(unclaimed)
    }

    private func forgetUnclaimed(_ unclaimed: [CounterSnapshot]) {
        guard !unclaimed.isEmpty else { return }
        store.submit(CounterChanges(forgotten: unclaimed.map { CounterChanges.Key(device: $0.device, field: $0.field) }))
    }
}
