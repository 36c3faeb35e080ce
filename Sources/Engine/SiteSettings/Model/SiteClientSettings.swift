/// How one service logs in to one broker. The password is never in the YAML:
/// it comes from a systemd credential, a file, or an environment variable
/// (`resolvePassword`).
public struct SiteClientSettings: Sendable {
    public var clientID: String?
    public var username: String?
    public var passwordCredential: String?
    public var passwordFile: String?
    public var passwordEnv: String?
    public init() {}
}
