/// What ownership between instances needs of another instance's status
/// (`ProxyStatus`, parsed by its one parser): whether it is online. Which
/// meters it stopped hearing it says per meter (`MeterSilence`).
struct PeerStatus: Equatable {
    var online: Bool
}

extension PeerStatus {
    /// Parses a status document; nil when it is not one (an empty retained message: gone).
    init?(document: [UInt8]) {
        guard let status = ProxyStatus(payload: document) else { return nil }
        self.init(online: status.isOnline)
    }
}
