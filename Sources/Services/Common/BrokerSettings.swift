import MQTT
import RuleEngine
import SiteSettings

/// Where and how a service connects to one broker: the site config's
/// `brokers.<name>` and its `clients.<service>` entry, with an optional
/// `--internal`/`--central` URL that overrides host, port and TLS.
public struct BrokerSettings: Sendable {
    public var endpoint: MQTTEndpoint
    public var options: MQTTOptions

    /// - Parameters:
    ///   - broker: `internal` or `central`.
    ///   - client: `proxy` or `config_sender`.
    ///   - override: a `mqtt://HOST[:PORT]` or `mqtts://HOST[:PORT]` URL from the command line.
    ///   - defaultClientID: used when the config names no client id.
    ///   - instance: the site's `instance`, appended (`-<instance>`) to the client id.
    public init(settings: ServiceSettings, broker: String, client: String, override: String?,
                defaultClientID: String, instance: String? = nil, cleanSession: Bool, will: MQTTWill? = nil,
                environment: [String: String]? = nil) throws(ServiceError) {
        let config = settings.brokers[broker] ?? SiteBrokerSettings()
        let clientConfig = config.clients[client] ?? SiteClientSettings()
        var tls: MQTTTLS? = config.tls.map { MQTTTLS(caFile: $0.caFile, certFile: $0.certFile, keyFile: $0.keyFile) }
        if let override {
            do {
                endpoint = try MQTTEndpoint.parse(override)
            } catch {
                throw ServiceError("--\(broker): \(error.description)")
            }
            // A plain mqtt:// URL means no TLS, whatever the config says.
            if !endpoint.tls { tls = nil }
        } else {
            endpoint = MQTTEndpoint(host: config.host, port: config.port, tls: tls != nil)
        }
        let password: (password: String, source: String)?
        do throws(PasswordError) {
            password = try clientConfig.resolvePasswordAndSource(environment: environment ?? FileSystem.environment)
        } catch {
            throw ServiceError("broker '\(broker)', client '\(client)': \(error.message)")
        }
        options = MQTTOptions(
            clientID: (clientConfig.clientID ?? defaultClientID) + (instance.map { "-\($0)" } ?? ""),
            cleanSession: cleanSession,
            protocolVersion: config.protocolVersion == "3.1.1" ? .v311 : .v5,
            keepAliveSeconds: config.keepAliveSeconds == 0 ? 0 : max(5, config.keepAliveSeconds),
            username: clientConfig.username,
            password: password?.password,
            passwordSource: password?.source,
            tls: tls,
            will: will)
    }
}
