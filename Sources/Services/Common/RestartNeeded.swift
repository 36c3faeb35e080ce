/// A setting that a reload changed but that takes effect only after a
/// restart (a broker's address, a topic the service subscribed to): the host
/// names each in a `restart_needed` warning and runs on with the old value.
struct RestartNeeded: Equatable {
    /// The site-config key: `brokers.central.host`, `config_sender.discovery_from`.
    var setting: String
    /// The new value, as the log shows it.
    var value: String
}
