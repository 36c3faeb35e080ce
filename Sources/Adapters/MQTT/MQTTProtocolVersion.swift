/// The MQTT protocol level spoken to the broker.
public enum MQTTProtocolVersion: Sendable, Equatable {
    case v311
    case v5
}
