/// One setting of the site config that differs between two loads of it, by
/// its YAML path (`proxy.journal_fsync`, `brokers.central.port`,
/// `meters.33B1225950027.context`), and whether a reload applies it.
///
/// `ReloadPolicy.changes(from:to:for:)` makes them; a service logs the
/// restart-needing ones as a warning on reload, so that no changed value is
/// ignored without a word.
public struct SettingChange: Sendable, Equatable, CustomStringConvertible {
    /// What a reload does with the new value.
    public enum Effect: String, Sendable {
        /// The running service takes the new value.
        case live
        /// The running service keeps the old value until it is restarted.
        case restart
    }

    /// The key's path in the site config, sections joined with `.`.
    public var path: String
    /// The value before and after, as the file says it; `(none)` when unset
    /// and without a default (an optional key, a meter not listed).
    public var old: String
    public var new: String
    public var effect: Effect

    public init(path: String, old: String, new: String, effect: Effect) {
        self.path = path
        self.old = old
        self.new = new
        self.effect = effect
    }

    /// `proxy.journal_fsync: interval → always (needs a restart)`.
    public var description: String {
        "\(path): \(old) → \(new) (\(effect == .live ? "applied" : "needs a restart"))"
    }
}

/// The services that read the site config: a service's reload names only the
/// changes of the settings it uses.
public enum SiteService: String, Sendable, CaseIterable {
    case proxy
    case configSender = "config_sender"
}
