/// Where a broker listens: host, port and whether the connection uses TLS.
public struct MQTTEndpoint: Sendable, Equatable, CustomStringConvertible {
    public var host: String
    public var port: Int
    public var tls: Bool

    public init(host: String, port: Int, tls: Bool) {
        self.host = host
        self.port = port
        self.tls = tls
    }

    /// Parses `mqtt://HOST[:PORT]` (default port 1883) or `mqtts://HOST[:PORT]`
    /// (TLS, default port 8883). An IPv6 address goes in brackets:
    /// `mqtt://[::1]:1883`. A trailing `/` is accepted; user information
    /// (`user:pass@`), paths and queries are refused, so that a password can
    /// never ride along in a URL on a command line.
    public static func parse(_ url: String) throws(MQTTError) -> MQTTEndpoint {
        func fail(_ why: String) -> MQTTError {
            MQTTError(.invalidArgument, why, context: "broker URL '\(url)'")
        }
        let tls: Bool
        var rest: Substring
        if url.hasPrefix("mqtt://") {
            tls = false
            rest = url.dropFirst("mqtt://".count)
        } else if url.hasPrefix("mqtts://") {
            tls = true
            rest = url.dropFirst("mqtts://".count)
        } else {
            throw fail("expected mqtt://HOST[:PORT] or mqtts://HOST[:PORT]")
        }
        if rest.hasSuffix("/") { rest = rest.dropLast() }
        if rest.contains("@") { throw fail("user information is not allowed in a broker URL") }
        if rest.contains("/") || rest.contains("?") || rest.contains("#") {
            throw fail("a broker URL has no path, query or fragment")
        }
        var host: Substring
        var portText: Substring?
        if rest.hasPrefix("[") {
            guard let close = rest.firstIndex(of: "]") else { throw fail("unclosed '[' in IPv6 address") }
            host = rest[rest.index(after: rest.startIndex)..<close]
            let after = rest[rest.index(after: close)...]
            if !after.isEmpty {
                guard after.hasPrefix(":") else { throw fail("unexpected text after ']'") }
                portText = after.dropFirst()
            }
        } else if let colon = rest.firstIndex(of: ":") {
            host = rest[..<colon]
            portText = rest[rest.index(after: colon)...]
        } else {
            host = rest
        }
        if host.isEmpty { throw fail("missing host") }
        if host.contains(where: { $0 == " " || $0 == "\t" }) {
            throw fail("invalid host '\(host)'")
        }
        var port = tls ? 8883 : 1883
        if let portText {
            guard !portText.isEmpty, portText.allSatisfy({ $0.isASCII && $0.isNumber }),
                  let value = Int(portText), (1...65535).contains(value) else {
                throw fail("invalid port '\(portText)'")
            }
            port = value
        }
        return MQTTEndpoint(host: String(host), port: port, tls: tls)
    }

    /// The URL form, `mqtt://host:port` or `mqtts://host:port`.
    public var description: String {
        let h = host.contains(":") ? "[\(host)]" : host
        return "\(tls ? "mqtts" : "mqtt")://\(h):\(port)"
    }
}
