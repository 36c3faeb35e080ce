/// A received message whose topic and payload libmosquitto still owns: valid
/// only during `onMessage`. `copy()` keeps it.
public struct MQTTBorrowedMessage {
    public var topic: String
    public var payload: UnsafeRawBufferPointer
    public var qos: Int
    public var retain: Bool

    public func copy() -> MQTTMessage {
        MQTTMessage(topic: topic, payload: Array(payload), qos: qos, retain: retain)
    }
}
