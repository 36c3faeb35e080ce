import Foundation
import SiteSettings
import Testing

@Suite struct ClientConfigPasswordTests {
    let directory: URL

    init() throws {
        directory = FileManager.default.temporaryDirectory.appendingPathComponent("password-test-\(UUID().uuidString.prefix(8))")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        try "from-credential\n".write(to: directory.appendingPathComponent("internal-password"), atomically: true, encoding: .utf8)
        try "from-file\r\nsecond line\n".write(to: directory.appendingPathComponent("file"), atomically: true, encoding: .utf8)
    }

    func client(credential: String? = nil, file: String? = nil, env: String? = nil) -> ClientConfig {
        var c = ClientConfig()
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
        #expect(try client(env: "UNSET").resolvePassword(environment: env) == nil)
        #expect(try client().resolvePassword(environment: env) == nil)
    }

    @Test func missingFileFallsThroughUnreadableFileIsAnError() throws {
        #expect(try client(file: directory.appendingPathComponent("nope").path, env: "PW").resolvePassword(environment: ["PW": "e"]) == "e")
        // A directory exists but cannot be read as a file.
        #expect(throws: PasswordError.self) {
            try client(file: directory.path).resolvePassword(environment: [:])
        }
    }
}
