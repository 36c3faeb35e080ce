/// Why a command was decided: what its `configuring` and `command_sent`
/// lines say. One byte where the command waits for its turn.
public enum CommandReason: UInt8, Sendable, Equatable, CaseIterable {
    /// The internal broker (re)connected: every known meter gets its chance.
    case connected
    case discovery
    /// The periodic pass over every known meter.
    case periodic
    /// The meter's effective settings changed (a reload, or a change while a command was in flight).
    case configChanged
    /// The meter's discovery message reports its clock off by more than the threshold.
    case clockOffset

    /// As the log says it.
    public var name: String {
        switch self {
        case .connected: "connected"
        case .discovery: "discovery"
        case .periodic: "periodic"
        case .configChanged: "config_changed"
        case .clockOffset: "clock_offset"
        }
    }
}
