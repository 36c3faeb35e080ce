import RuleEngine

/// What a part of the proxy's core asks for: the parts decide, `ProxyCore`
/// carries it out against the brokers (`ProxyTransport`), the journal and
/// the log. For control events only: a reading goes from the engine to the
/// journal and on to the central broker without one.
enum ProxyAction: Equatable {
    /// Stop (false) or resume (true) reading the internal broker.
    case internalReading(Bool)
    /// Hold (false) or release (true) every write to the internal broker:
    /// no PUBACK for a message whose results are not in the journal yet.
    case internalWrites(Bool)
    /// An announcement (discovery message, Home Assistant config) into the journal.
    case append(Outgoing)
    /// The copy of a discovery message on the internal broker.
    case publishInternal(Outgoing)
    /// A message outside the journal on the central broker (QoS 1, not retained).
    case publishCentral(topic: String, payload: [UInt8])
    /// One log line; `limit`: a few a minute at most of this key (`Log.limited`).
    case log(ConfigEvent, limit: String? = nil)
}

extension Log {
    /// Renders a part's log line, rate-limited when it names a key.
    func emit(_ event: ConfigEvent, limit: String?) {
        guard let limit else { return emit(event) }
        let level: LogLevel = switch event.level {
        case .debug: .debug
        case .info: .info
        case .warning: .warning
        case .error, .alert: .error
        }
        limited(level, key: limit, event.name, fields: event.fields.map { ($0.key, $0.value) })
    }
}
