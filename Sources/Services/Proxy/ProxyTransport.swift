import MQTT

/// What the proxy core needs from the brokers. `ProxyService` implements it
/// over two `MQTTClient`s; unit tests over a recorder, with no broker.
protocol ProxyTransport: CentralPublisher {
    /// Back-pressure: stop (false) or resume (true) reading the internal broker.
    func setInternalReading(_ enabled: Bool)
    /// While false, nothing may be written to the internal broker: no PUBACK
    /// for a message whose results are not in the journal yet.
    func setInternalWrites(_ enabled: Bool)
    /// Publishes at QoS 1 on the internal broker (the copy of a discovery
    /// message). The transport queues it while disconnected, and while the
    /// internal broker's writes are held or its reading is paused.
    func publishInternal(topic: String, payload: UnsafeRawBufferPointer, retain: Bool) throws(MQTTError)
}

/// Where the delivery hands journal records: the central connection.
protocol CentralPublisher: AnyObject {
    /// Publishes at QoS 1 on the central broker; returns the message id. The
    /// transport queues it while disconnected (see `MQTTClient`). The topic's
    /// bytes are borrowed from the journal record, like the payload.
    func publishCentral(topic: UnsafeRawBufferPointer, payload: UnsafeRawBufferPointer, retain: Bool) throws(MQTTError) -> Int32
    /// How many messages the central connection sends before it waits for
    /// acknowledgements (`MQTTClient.sendWindow`).
    var sendWindow: Int { get }
}


extension MQTTError {
    /// Sending the same message again cannot succeed.
    var isPermanent: Bool {
        switch code {
        case .invalidArgument, .payloadTooLarge, .malformedUTF8, .notSupported: true
        default: false
        }
    }
}
