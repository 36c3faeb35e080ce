/// The config sender's settings (`config_sender.*` of the site config).
public struct ConfigSenderSettings: Sendable {
    /// `config_sender.status_topic`; nil: `<root>/config-sender/status[/<instance>]`
    /// (`Site.configSenderStatusTopic`).
    public var statusTopic: String?
    /// No reply in this time: retry with backoff.
    public var replyTimeoutSeconds = 15.0
    /// Retries after the first attempt; then an alert.
    public var retries = 3
    /// How often every known meter is checked.
    public var periodicPassSeconds = 600

    // MARK: Where discovery comes from
    /// The broker whose discovery topic `config-sender` subscribes to.
    public enum DiscoverySource: String, Sendable, CaseIterable {
        /// The central broker, where the site reads discovery (the default).
        case central
        /// The meters' broker, where the proxy also publishes discovery
        /// (`proxy.discovery_on_internal`): configuring goes on while the
        /// central broker is away.
        case `internal`
    }

    /// `config_sender.discovery_from`.
    public var discoveryFrom = DiscoverySource.central

    // Pacing (`max_in_flight`, `min_spacing_ms`): a whole site reconnecting
    // at once must neither flood the meters' broker nor trip the reply
    // timeouts. The defaults configure 10,000 meters in tools/bench's
    // reconnect scenario without a false alert (BENCHMARKS.md).
    /// Commands awaiting a reply at once, all meters together; 0: no limit.
    public var maxInFlight = 100
    /// Milliseconds at least between two commands to one meter; 0: none.
    public var minSpacingMilliseconds = 200
    /// `config_sender.partition`: configure only this share of the meters.
    public var partition: Partition?

    public init() {}
}
