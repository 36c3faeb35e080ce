/// mqtt-forward's command line.
struct ForwardOptions {
    struct Endpoint { var host: String; var port: Int }

    enum Transport: String { case raw, client }

    var internalBroker = Endpoint(host: "127.0.0.1", port: 11883)
    var centralBroker = Endpoint(host: "127.0.0.1", port: 1883)
    var transport = Transport.raw
    var filter = "MQTT_RT_DATA"
    var prefix = "kpm33b/raw/"
    var subscribeQoS = 0
    var clientID = "mqtt-forward"

    static let usage = """
        usage: mqtt-forward [--transport raw|client] [--internal HOST:PORT] [--central HOST:PORT]
                            [--filter FILTER] [--prefix PREFIX] [--subscribe-qos 0|1] [--client-id ID]

        Subscribes to FILTER (default MQTT_RT_DATA, QoS 0) on the internal broker
        and publishes every message unchanged at QoS 1 on the central broker under
        PREFIX + its topic (default kpm33b/raw/, as tools/bench's bridge does), with
        the proxy's client options. --transport raw (default): libmosquitto's own
        calls on an epoll loop, the library's floor; client: the project's
        MQTTClient and EventLoop, the transport's floor. Plain TCP, anonymous; a lost
        connection ends the run (status 1). SIGTERM or SIGINT stops it (status 0).
        One line on stdout when it forwards, one when it stops (with its count).
        """

    static func parse(_ arguments: [String]) throws(ForwardError) -> ForwardOptions {
        var o = ForwardOptions()
        var i = 0
        func value() throws(ForwardError) -> String {
            i += 1
            guard i < arguments.count else { throw ForwardError("\(arguments[i - 1]) needs a value") }
            return arguments[i]
        }
        func endpoint(_ text: String) throws(ForwardError) -> Endpoint {
            guard let colon = text.lastIndex(of: ":"), let port = Int(text[text.index(after: colon)...]),
                  (1...65535).contains(port), colon != text.startIndex else {
                throw ForwardError("expected HOST:PORT, not '\(text)'")
            }
            return Endpoint(host: String(text[..<colon]), port: port)
        }
        while i < arguments.count {
            switch arguments[i] {
            case "--transport":
                let text = try value()
                guard let transport = Transport(rawValue: text) else { throw ForwardError("--transport is raw or client, not '\(text)'") }
                o.transport = transport
            case "--internal": o.internalBroker = try endpoint(try value())
            case "--central": o.centralBroker = try endpoint(try value())
            case "--filter": o.filter = try value()
            case "--prefix": o.prefix = try value()
            case "--subscribe-qos":
                let text = try value()
                guard let qos = Int(text), (0...1).contains(qos) else { throw ForwardError("--subscribe-qos is 0 or 1, not '\(text)'") }
                o.subscribeQoS = qos
            case "--client-id":
                o.clientID = try value()
                guard !o.clientID.isEmpty else { throw ForwardError("--client-id must not be empty") }
            case "-h", "--help": throw ForwardError(nil)
            default: throw ForwardError("unknown argument '\(arguments[i])'")
            }
            i += 1
        }
        return o
    }
}

/// A usage or set-up error; nil message: help was asked for.
struct ForwardError: Error {
    let message: String?
    init(_ message: String?) { self.message = message }
}
