import Journal

/// The proxy's own settings (`proxy.*` of the site config, except the status
/// topic and the clock skew threshold, which the engine reads into its
/// `SiteConfig`: it writes them into what it announces).
public struct ProxySettings: Sendable {
    /// The names `journal_fsync` takes: never (the operating system writes
    /// when it likes), interval (at most `journal_fsync_interval_ms` after a
    /// record was appended), always (before a message counts as taken).
    public static let fsyncModes = ["never", "interval", "always"]

    /// The smallest journal allowed: 1 MiB.
    public static let minimumJournalBytes = 1 << 20

    /// The default `max_meters`: one instance of the capacity model
    /// (docs/scale-out.md plans a million meters on four proxies).
    public static let defaultMaxMeters = 250_000

    public var statusIntervalSeconds = 60
    /// The most meters the proxy keeps state for (`proxy.max_meters`): a new
    /// id past it is dropped (`meter_limit`). About 1 KiB of memory each.
    public var maxMeters = defaultMaxMeters
    /// Larger payloads are dropped before parsing.
    public var maxPayloadBytes = 65_536
    /// The disk journal between the brokers holds at most this many bytes;
    /// when it is full the proxy stops reading (back-pressure), it drops nothing.
    public var journalMaxBytes = 1 << 30
    /// `journal_fsync` with `journal_fsync_interval_ms`: when the journal
    /// makes an appended record durable, as the journal takes it.
    public var journalFsync = JournalFsync.interval(milliseconds: 1000)

    // MARK: Discovery on the internal broker
    /// Also publish each meter's discovery message (retained, QoS 1) on the
    /// internal broker, under the same topic as on the central broker, where
    /// `config-sender` can read it while the central broker is away
    /// (`proxy.discovery_on_internal`).
    public var discoveryOnInternal = true
    /// `proxy.shared_subscription_group`: several proxies share the meters'
    /// topics (`$share/<group>/…`); nil: one proxy takes every message.
    public var sharedSubscriptionGroup: String?

    public init() {}
}
