import MQTT

/// What `ConfigSenderCore` needs from the two brokers. `ConfigSenderService`
/// implements it over two `MQTTClient`s on one `EventLoop`; unit tests over a
/// recorder, with no broker. Called on the loop thread only.
///
/// Incoming traffic goes the other way, as calls of the core's event methods
/// (`discoveryReceived`, `replyReceived`, `commandAcknowledged`, …).
protocol ConfigSenderTransport: AnyObject {
    /// Whether a status can go out now.
    var isCentralConnected: Bool { get }
    /// Publishes a command at QoS 1 on the internal broker; returns its message
    /// id, which comes back in `commandAcknowledged` (or `commandRefused`).
    func publishCommand(topic: String, payload: [UInt8]) throws(MQTTError) -> Int32
    /// Subscribes to a reply topic on the internal broker at QoS 1; the
    /// subscription is sent again after every reconnect.
    func subscribeReplies(_ filter: String) throws(MQTTError)
    /// Publishes the status document on the central broker, retained, at QoS 1;
    /// returns its message id.
    func publishStatus(topic: String, payload: [UInt8]) throws(MQTTError) -> Int32
}
