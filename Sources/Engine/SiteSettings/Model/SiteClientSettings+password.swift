#if canImport(Glibc)
import Glibc
#endif
import RuleEngine

extension SiteClientSettings {
    /// Whether the config names any password source.
    var hasPasswordSource: Bool { passwordCredential != nil || passwordFile != nil || passwordEnv != nil }

    /// The password of this client, never from the command line. First found wins:
    /// 1. `password_credential`: the file of that name in `$CREDENTIALS_DIRECTORY`
    ///    (systemd `LoadCredential=`), when the directory is set and the file exists;
    /// 2. `password_file`: that file, when it exists;
    /// 3. `password_env`: that environment variable, when it is set.
    /// nil only when no source is configured: the client connects without a
    /// password. A source that is configured but yields nothing — none of
    /// them found, or the one found empty — is an error naming each source,
    /// never a silent login without a password. A file gives its first line
    /// (without `\n` or `\r\n`); a file that exists but cannot be read is an
    /// error, not a reason to try the next source.
    public func resolvePassword(environment: [String: String]? = nil) throws(PasswordError) -> String? {
        try resolvePasswordAndSource(environment: environment)?.password
    }

    /// As `resolvePassword`, with where the password came from, for error
    /// messages: `credential 'name'`, `file '/path'` or `environment variable NAME`.
    public func resolvePasswordAndSource(environment: [String: String]? = nil) throws(PasswordError) -> (password: String, source: String)? {
        guard hasPasswordSource else { return nil }
        let environment = environment ?? FileSystem.environment
        var missing: [String] = []
        if let name = passwordCredential {
            if let directory = environment["CREDENTIALS_DIRECTORY"], !directory.isEmpty {
                let path = directory.hasSuffix("/") ? directory + name : directory + "/" + name
                if FileSystem.exists(path) {
                    return (try Self.nonEmpty(Self.firstLine(path, what: "credential '\(name)'"),
                                              "the credential '\(name)' (\(path)) is empty (password_credential)"),
                            "credential '\(name)'")
                }
                missing.append("the credential '\(name)' is not in \(directory) (password_credential)")
            } else {
                missing.append("the credential '\(name)' cannot be found: CREDENTIALS_DIRECTORY is not set (password_credential)")
            }
        }
        if let path = passwordFile {
            if FileSystem.exists(path) {
                return (try Self.nonEmpty(Self.firstLine(path, what: "password file"), "the password file '\(path)' is empty (password_file)"),
                        "file '\(path)'")
            }
            missing.append("the password file '\(path)' does not exist (password_file)")
        }
        if let name = passwordEnv {
            if let value = environment[name] {
                return (try Self.nonEmpty(value, "the environment variable \(name) is empty (password_env)"), "environment variable \(name)")
            }
            missing.append("the environment variable \(name) is not set (password_env)")
        }
        throw PasswordError("no password: " + missing.joined(separator: ", "))
    }

    private static func nonEmpty(_ password: String, _ problem: String) throws(PasswordError) -> String {
        guard !password.isEmpty else { throw PasswordError(problem) }
        return password
    }

    private static func firstLine(_ path: String, what: String) throws(PasswordError) -> String {
        var failure: Int32 = 0
        guard let data = FileSystem.read(path, failure: &failure) else {
            throw PasswordError("cannot read the \(what) '\(path)': \(String(cString: strerror(failure)))")
        }
        var line = data.prefix { $0 != UInt8(ascii: "\n") }
        if line.last == UInt8(ascii: "\r") { line.removeLast() }
        return String(decoding: line, as: UTF8.self)
    }
}
