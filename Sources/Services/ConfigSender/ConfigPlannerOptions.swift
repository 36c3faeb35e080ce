import RuleEngine
import SiteSettings

/// `ConfigPlanner`'s timing and pacing: reply timeout, retries and backoff,
/// the periodic pass, clock corrections, the in-flight limit and the spacing
/// between two commands to one meter.
public struct ConfigPlannerOptions: Sendable, Equatable {
    /// How long to wait for a reply before a retry.
    public var replyTimeoutSeconds: Double
    /// Retries after the first attempt, when no reply comes.
    public var retries: Int
    /// The n-th retry waits `backoffBaseSeconds · 2^(n-1)` (at most `backoffMaxSeconds`) after its timeout.
    public var backoffBaseSeconds: Double
    public var backoffMaxSeconds: Double
    /// How often every known meter is checked.
    public var periodicPassSeconds: Double
    /// A discovery clock offset beyond this (in seconds, either way) sets the clock at once.
    public var clockSkewThresholdSeconds: Int
    /// At most one such clock correction per meter in this time.
    public var clockCorrectionIntervalSeconds: Double
    /// Commands awaiting a reply at once, all meters together; more wait their turn. 0: no limit.
    public var maxInFlight: Int
    /// At least this long between two commands to one meter. 0: none.
    public var minSpacingSeconds: Double

    public init(replyTimeoutSeconds: Double = 15, retries: Int = 3, backoffBaseSeconds: Double? = nil,
                backoffMaxSeconds: Double = 300, periodicPassSeconds: Double = 600,
                clockSkewThresholdSeconds: Int = 300, clockCorrectionIntervalSeconds: Double = 3600,
                maxInFlight: Int = 0, minSpacingSeconds: Double = 0) {
        self.replyTimeoutSeconds = replyTimeoutSeconds
        self.retries = retries
        self.backoffBaseSeconds = backoffBaseSeconds ?? replyTimeoutSeconds / 2
        self.backoffMaxSeconds = backoffMaxSeconds
        self.periodicPassSeconds = periodicPassSeconds
        self.clockSkewThresholdSeconds = clockSkewThresholdSeconds
        self.clockCorrectionIntervalSeconds = clockCorrectionIntervalSeconds
        self.maxInFlight = maxInFlight
        self.minSpacingSeconds = minSpacingSeconds
    }

    /// The site's `config_sender` and `proxy.clock_skew_threshold_s` settings.
    public init(site: Site) {
        let sender = site.settings.configSender
        self.init(replyTimeoutSeconds: sender.replyTimeoutSeconds, retries: sender.retries,
                  periodicPassSeconds: Double(sender.periodicPassSeconds),
                  clockSkewThresholdSeconds: site.programs.siteConfig.clockSkewThresholdSeconds,
                  maxInFlight: sender.maxInFlight, minSpacingSeconds: Double(sender.minSpacingMilliseconds) / 1000)
    }
}
