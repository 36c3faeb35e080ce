#if canImport(Glibc)
import Glibc
#endif
import RuleEngine

extension ClientConfig {
    /// The password of this client, never from the command line. First found wins:
    /// 1. `password_credential`: the file of that name in `$CREDENTIALS_DIRECTORY`
    ///    (systemd `LoadCredential=`), when the directory is set and the file exists;
    /// 2. `password_file`: that file, when it exists;
    /// 3. `password_env`: that environment variable, when it is set.
    /// nil when none applies: the client connects without a password.
    /// A file gives its first line (without `\n` or `\r\n`); a file that exists
    /// but cannot be read is an error, not a reason to try the next source.
    public func resolvePassword(environment: [String: String]? = nil) throws(PasswordError) -> String? {
        try resolvePasswordAndSource(environment: environment)?.password
    }

    /// As `resolvePassword`, with where the password came from, for error
    /// messages: `credential 'name'`, `file '/path'` or `environment variable NAME`.
    public func resolvePasswordAndSource(environment: [String: String]? = nil) throws(PasswordError) -> (password: String, source: String)? {
        let environment = environment ?? FileSystem.environment
        if let name = passwordCredential, let directory = environment["CREDENTIALS_DIRECTORY"], !directory.isEmpty {
            let path = directory.hasSuffix("/") ? directory + name : directory + "/" + name
            if FileSystem.exists(path) {
                return (try Self.firstLine(path, what: "credential '\(name)'"), "credential '\(name)'")
            }
        }
        if let path = passwordFile, FileSystem.exists(path) {
            return (try Self.firstLine(path, what: "password file"), "file '\(path)'")
        }
        if let name = passwordEnv, let value = environment[name] {
            return (value, "environment variable \(name)")
        }
        return nil
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
