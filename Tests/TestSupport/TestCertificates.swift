import Foundation

/// A throw-away certificate authority with a server certificate for
/// 127.0.0.1 and a client certificate, made with the `openssl` command in a
/// temporary directory (removed on deinit). EC P-256 keys, so it takes
/// milliseconds.
public final class TestCertificates: @unchecked Sendable {
    public let directory: URL
    public var caFile: String { path("ca.crt") }
    public var serverCertFile: String { path("server.crt") }
    public var serverKeyFile: String { path("server.key") }
    public var clientCertFile: String { path("client.crt") }
    public var clientKeyFile: String { path("client.key") }

    public init() throws {
        directory = FileManager.default.temporaryDirectory
            .appendingPathComponent("test-certs-\(UUID().uuidString.prefix(8))")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        let openssl = try TestBroker.findTool("openssl")
        let ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"]
        do {
            try TestBroker.run(openssl, ["req", "-x509"] + ec + ["-days", "2", "-subj", "/CN=test-ca",
                                        "-keyout", path("ca.key"), "-out", caFile])
            for (name, cn, san) in [("server", "127.0.0.1", "IP:127.0.0.1"), ("client", "test-client", "DNS:test-client")] {
                try TestBroker.run(openssl, ["req", "-new"] + ec + ["-subj", "/CN=\(cn)",
                                            "-addext", "subjectAltName=\(san)",
                                            "-keyout", path("\(name).key"), "-out", path("\(name).csr")])
                try TestBroker.run(openssl, ["x509", "-req", "-in", path("\(name).csr"), "-days", "2",
                                            "-CA", caFile, "-CAkey", path("ca.key"), "-CAcreateserial",
                                            "-copy_extensions", "copy", "-out", path("\(name).crt")])
            }
        } catch {
            try? FileManager.default.removeItem(at: directory)
            throw error
        }
    }

    deinit { try? FileManager.default.removeItem(at: directory) }

    /// Configuration lines that turn the broker's listener into TLS.
    public func listenerLines(requireClientCertificate: Bool) -> [String] {
        ["cafile \(caFile)", "certfile \(serverCertFile)", "keyfile \(serverKeyFile)",
         "require_certificate \(requireClientCertificate)"]
    }

    private func path(_ name: String) -> String { directory.appendingPathComponent(name).path }
}
