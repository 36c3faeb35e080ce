import RuleEngine

/// Ownership between instances (`instance:`): which proxy announces a meter.
///
/// A meter whose retained discovery message names another instance is that
/// instance's: its announcements are not sent (its readings still are). It
/// is taken over when its owner's status is offline or gone, or when the
/// owner declared the meter silent (`MeterSilence`, `<root>/<id>/silent`:
/// not heard for longer than the meter's allowed silence, its shortest
/// upload interval times `homeassistant.expire_after_factor`, when the
/// owner's entities show it unavailable anyway). A meter that moved to
/// another shard moves so. A meter this proxy has not heard stays untouched.
///
/// Its inputs are the other instances' statuses and declarations, already
/// parsed (`PeerStatus`, `MeterSilence`); it also keeps which meters this
/// proxy declared silent itself.
struct ProxyOwnership {
    enum Verdict: Equatable {
        /// No other instance owns the meter.
        case mine
        /// Another instance owns it, and no longer should (`reason`).
        case takenOver(from: String, reason: String)
        /// Another instance owns it and still hears it.
        case ownedElsewhere(owner: String)
        /// Another instance owns it, and this proxy has not heard it.
        case untouched
    }

    /// The other instances' statuses by instance name (`""`: a proxy without one).
    private var peers: [String: PeerStatus] = [:]
    /// Meters another instance declared silent, with that instance (`""`: none).
    private var silentElsewhere: [String: String] = [:]
    /// Meters this proxy declared silent (retained on the central broker).
    private(set) var declaredSilent: Set<String> = []
    /// The most meters kept in each table (`proxy.max_meters`).
    var maxMeters: Int

    init(maxMeters: Int = .max) { self.maxMeters = maxMeters }

    /// Another instance's retained status; nil: gone, or not a status.
    mutating func peerStatus(instance: String, _ status: PeerStatus?) {
        peers[instance] = status
    }

    /// A declaration on meter `id`'s silence topic (nil: cleared, the owner
    /// hears it again). `instance`: this proxy's; its own declarations come
    /// back too (after a restart) and are kept so that they are cleared when
    /// no longer true. Returns the instance that declared it, if another.
    mutating func meterSilence(id: String, _ silence: MeterSilence?, instance: String?) -> String? {
        guard let silence else {
            silentElsewhere[id] = nil
            declaredSilent.remove(id)
            return nil
        }
        if silence.instance == instance {
            if declaredSilent.count < maxMeters { declaredSilent.insert(id) }
            return nil
        }
        let owner = silence.instance ?? ""
        guard silentElsewhere.count < maxMeters || silentElsewhere[id] != nil else { return nil }
        silentElsewhere[id] = owner
        return owner
    }

    /// The meters other instances declared silent that are kept.
    var silentElsewhereCount: Int { silentElsewhere.count }

    /// This proxy's meters silent now: which to declare and which to clear.
    mutating func declare(silent: Set<String>) -> (declare: [String], clear: [String]) {
        defer { declaredSilent = silent }
        return (silent.subtracting(declaredSilent).sorted(), declaredSilent.subtracting(silent).sorted())
    }

    /// The rule (see the type's documentation). `owner`: the instance the
    /// meter's retained discovery names, nil when it is this proxy's or nobody's.
    func verdict(owner: String?, meter id: String, heard: Bool) -> Verdict {
        guard let owner else { return .mine }
        guard heard else { return .untouched }
        guard let peer = peers[owner] else { return .takenOver(from: owner, reason: "its owner has no status") }
        if !peer.online { return .takenOver(from: owner, reason: "its owner is offline") }
        if silentElsewhere[id] == owner {
            return .takenOver(from: owner, reason: "its owner has not heard from it for longer than its allowed silence")
        }
        return .ownedElsewhere(owner: owner)
    }
}
