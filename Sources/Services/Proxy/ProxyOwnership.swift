import RuleEngine

/// Ownership between instances (`instance:`): which proxy announces a meter.
///
/// A meter whose retained discovery message names another instance is that
/// instance's: its announcements are not sent (its readings still are). It
/// is taken over when its owner's status is offline or gone, or when the
/// owner's status says it has not heard the meter for longer than the
/// meter's allowed silence (its shortest upload interval times
/// `homeassistant.expire_after_factor`: when the owner's entities show it
/// unavailable anyway). A meter that moved to another shard moves so. A
/// meter this proxy has not heard stays untouched.
///
/// Its input is the other instances' statuses, already parsed (`PeerStatus`).
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

    /// Another instance's retained status (its parser keeps at most
    /// `maxMeters` meters); nil: gone, or not a status.
    mutating func peerStatus(instance: String, _ status: PeerStatus?) {
        peers[instance] = status
    }

    /// The meters another instance's status named that are kept.
    func meterCount(instance: String) -> Int { peers[instance]?.lastSeen.count ?? 0 }

    /// The rule (see the type's documentation). `owner`: the instance the
    /// meter's retained discovery names, nil when it is this proxy's or
    /// nobody's; `silenceAllowed`: the meter's allowed silence in seconds.
    func verdict(owner: String?, meter id: String, silenceAllowed: Int?, heard: Bool) -> Verdict {
        guard let owner else { return .mine }
        guard heard else { return .untouched }
        guard let peer = peers[owner] else { return .takenOver(from: owner, reason: "its owner has no status") }
        if !peer.online { return .takenOver(from: owner, reason: "its owner is offline") }
        let silence = Int64(silenceAllowed ?? 0)
        let lastHeard = peer.lastSeen[id] ?? peer.started
        if silence > 0 && peer.time - lastHeard > silence {
            return .takenOver(from: owner, reason: "its owner has not heard from it for \(peer.time - lastHeard) s")
        }
        return .ownedElsewhere(owner: owner)
    }
}
