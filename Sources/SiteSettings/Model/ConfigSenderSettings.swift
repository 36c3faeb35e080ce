/// The config sender's timers (`config_sender.*` of the site config, except
/// the status topic, which the rules' part of the config keeps with the others).
public struct ConfigSenderSettings: Sendable {
    /// No reply in this time: retry with backoff.
    public var replyTimeoutSeconds = 15.0
    /// Retries after the first attempt; then an alert.
    public var retries = 3
    /// How often every known meter is checked.
    public var periodicPassSeconds = 600

    // MARK: Where discovery comes from
    /// The broker whose discovery topic `config-sender` subscribes to.
    public enum DiscoverySource: String, Sendable, CaseIterable {
        /// The central broker: the copy the architecture draws (the default).
        case central
        /// The meters' broker, where the proxy also publishes discovery
        /// (`proxy.discovery_on_internal`): configuring goes on while the
        /// central broker is away.
        case `internal`
    }

    /// `config_sender.discovery_from`.
    public var discoveryFrom = DiscoverySource.central

    public init() {}
}
