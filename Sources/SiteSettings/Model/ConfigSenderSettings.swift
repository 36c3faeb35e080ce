/// The config sender's timers (`config_sender.*` of the site config, except
/// the status topic, which the rules' part of the config keeps with the others).
public struct ConfigSenderSettings: Sendable {
    /// No reply in this time: retry with backoff.
    public var replyTimeoutSeconds = 15.0
    /// Retries after the first attempt; then an alert.
    public var retries = 3
    /// How often every known meter is checked.
    public var periodicPassSeconds = 600

    public init() {}
}
