import Foundation
import SiteSettings
import Testing

@Suite struct SiteClientSettingsPasswordTests {
    let directory: URL

    init() throws {
        directory = FileManager.default.temporaryDirectory.appendingPathComponent("password-test-\(UUID().uuidString.prefix(8))")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        try "from-credential\n".write(to: directory.appendingPathComponent("internal-password"), atomically: true, encoding: .utf8)
        try "from-file\r\nsecond line\n".write(to: directory.appendingPathComponent("file"), atomically: true, encoding: .utf8)
    }

    func client(credential: String? = nil, file: String? = nil, env: String? = nil) -> SiteClientSettings {
        var c = SiteClientSettings()
        c.passwordCredential = credential
        c.passwordFile = file
        c.passwordEnv = env
        return c
    }

    @Test func credentialThenFileThenEnvironment() throws {
        let env = ["CREDENTIALS_DIRECTORY": directory.path, "PW": "from-env"]
        let file = directory.appendingPathComponent("file").path
        #expect(try client(credential: "internal-password", file: file, env: "PW").resolvePassword(environment: env) == "from-credential")
        // A named credential that systemd did not provide falls through.
        #expect(try client(credential: "missing", file: file, env: "PW").resolvePassword(environment: env) == "from-file")
        #expect(try client(credential: "internal-password", env: "PW").resolvePassword(environment: ["PW": "from-env"]) == "from-env")
        #expect(try client().resolvePassword(environment: env) == nil)
    }

    /// A source that is configured but yields nothing is a mistake (a typo in
    /// a name, a credential systemd did not load, an empty file), not a
    /// reason to log in without a password.
    @Test func aConfiguredSourceThatYieldsNothingIsAnError() throws {
        let empty = directory.appendingPathComponent("empty")
        try "\n".write(to: empty, atomically: true, encoding: .utf8)
        func message(_ c: SiteClientSettings, _ environment: [String: String]) -> String? {
            do {
                _ = try c.resolvePassword(environment: environment)
                return nil
            } catch {
                return error.message
            }
        }
        #expect(message(client(env: "UNSET"), [:])
            == "no password: the environment variable UNSET is not set (password_env)")
        #expect(message(client(env: "PW"), ["PW": ""]) == "the environment variable PW is empty (password_env)")
        #expect(message(client(file: empty.path, env: "PW"), ["PW": "e"]) == "the password file '\(empty.path)' is empty (password_file)")
        #expect(message(client(credential: "internal-password"), ["CREDENTIALS_DIRECTORY": directory.path]) == nil)
        #expect(message(client(credential: "internal-password"), [:])
            == "no password: the credential 'internal-password' cannot be found: CREDENTIALS_DIRECTORY is not set (password_credential)")
        let nowhere = directory.appendingPathComponent("nope").path
        #expect(message(client(credential: "missing", file: nowhere, env: "UNSET"), ["CREDENTIALS_DIRECTORY": directory.path])
            == "no password: the credential 'missing' is not in \(directory.path) (password_credential), "
            + "the password file '\(nowhere)' does not exist (password_file), the environment variable UNSET is not set (password_env)")
    }

    @Test func missingFileFallsThroughUnreadableFileIsAnError() throws {
        #expect(try client(file: directory.appendingPathComponent("nope").path, env: "PW").resolvePassword(environment: ["PW": "e"]) == "e")
        // A directory exists but cannot be read as a file.
        #expect(throws: PasswordError.self) {
            try client(file: directory.path).resolvePassword(environment: [:])
        }
    }
}
