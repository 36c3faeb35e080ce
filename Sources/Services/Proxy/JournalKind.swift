import RuleEngine

/// The kind byte of a journal record.
enum JournalKind {
    static let data: UInt8 = 0
    static let discovery: UInt8 = 1
    static let homeAssistant: UInt8 = 2
    static let command: UInt8 = 3

    static func of(_ kind: Outgoing.Kind) -> UInt8 {
        switch kind {
        case .data: data
        case .discovery: discovery
        case .homeAssistant: homeAssistant
        case .command: command
        }
    }
}
