import Foundation
import RuleEngine

extension ClientConfig {
    /// The password of this client, never from the command line. In order:
    /// 1. `password_credential`: the file of that name in `$CREDENTIALS_DIRECTORY`
    ///    (systemd `LoadCredential=`), when the directory is set and the file exists;
    /// 2. `password_file`: that file (an error if it cannot be read);
    /// 3. `password_env`: that environment variable, when it is set.
    /// nil when none applies (the broker may allow anonymous clients).
    /// One trailing newline of a file is removed.
    public func resolvePassword(environment: [String: String] = ProcessInfo.processInfo.environment) throws(ServiceError) -> String? {
        if let name = passwordCredential, let directory = environment["CREDENTIALS_DIRECTORY"], !directory.isEmpty {
            let path = (directory as NSString).appendingPathComponent(name)
            if FileManager.default.fileExists(atPath: path) {
                return try Self.readSecret(path, what: "credential '\(name)'")
            }
        }
        if let path = passwordFile {
            return try Self.readSecret(path, what: "password file")
        }
        if let name = passwordEnv, let value = environment[name] {
            return value
        }
        return nil
    }

    private static func readSecret(_ path: String, what: String) throws(ServiceError) -> String {
        guard let data = FileManager.default.contents(atPath: path) else {
            throw ServiceError("cannot read the \(what) '\(path)'")
        }
        var text = String(decoding: data, as: UTF8.self)
        if text.hasSuffix("\r\n") { text.removeLast(2) } else if text.hasSuffix("\n") { text.removeLast() }
        return text
    }
}
