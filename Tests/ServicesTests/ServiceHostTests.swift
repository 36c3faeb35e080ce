import Foundation
import MQTT
import Testing
import TestSupport
@testable import ServicesFixtures

/// Both services run on one `ServiceHost`: a SIGHUP reloads each the same way
/// (a bad pack refused with its `file:line:column` and the running one kept;
/// a good one applied; a setting that needs a restart named), and a SIGTERM
/// takes each through drain → offline → finished. Real processes on real brokers.
@Suite(.serialized) struct ServiceHostTests {
    /// One service process as the checks below see it.
    struct Service {
        var name: String
        /// The copied `pack.yaml` the process runs and the site config it reads.
        var pack: String
        var config: String
        var statusTopic: String
        var central: TestBroker
        var signal: (Int32) -> Void
        var log: () -> String
        var process: () -> ChildProcess?
    }

    @Test func theProxyReloadsAndStopsThroughTheHost() throws {
        let h = try ProxyHarness(copyRules: true)
        let status = try TestSubscriber(broker: h.centralBroker, filters: ["kpm33b/status"])
        try h.startProxy()
        try checkReloadAndStop(Service(name: "kpm33b-proxy", pack: h.rules + "/pack.yaml", config: h.configFile,
                                       statusTopic: "kpm33b/status", central: h.centralBroker,
                                       signal: { h.signalProxy($0) }, log: { h.proxyLog }, process: { h.proxy }),
                               status: status)
    }

    @Test func theConfigSenderReloadsAndStopsThroughTheHost() throws {
        let h = try SenderHarness(name: "host")
        let rules = h.directory.appendingPathComponent("rules")
        try FileManager.default.createDirectory(at: rules, withIntermediateDirectories: true)
        try FileManager.default.copyItem(atPath: senderPackPath + "/pack.yaml", toPath: rules.appendingPathComponent("pack.yaml").path)
        h.rules = rules.path
        let status = try TestSubscriber(broker: h.centralBroker, filters: ["kpm33b/config-sender/status"])
        try h.start()
        try checkReloadAndStop(Service(name: "config-sender", pack: rules.appendingPathComponent("pack.yaml").path,
                                       config: h.configFile.path, statusTopic: "kpm33b/config-sender/status",
                                       central: h.centralBroker, signal: { h.process?.signal($0) }, log: { h.log },
                                       process: { h.process }),
                               status: status)
    }

    private func lines(_ service: Service, _ msg: String) -> [Substring] {
        service.log().split(separator: "\n").filter { $0.contains("msg=\(msg) ") || $0.hasSuffix("msg=\(msg)") }
    }

    private func checkReloadAndStop(_ s: Service, status: TestSubscriber) throws {
        try #require(senderEventually { !lines(s, "started").isEmpty && lines(s, "connected").count == 2 }, "\(s.log())")
        #expect(lines(s, "started").first?.contains("service=\(s.name) ") == true)
        #expect(lines(s, "connected").contains { $0.contains("broker=central url=mqtt://127.0.0.1:\(s.central.port)") })
        // The status says online before the stop (retained: it may be the first message).
        #expect(status.waitFor(timeout: 10) { $0.topic == s.statusTopic && $0.payloadText.contains(#""state":"online""#) } != nil)

        // A bad pack: every error with its file:line:column, and the running program stays.
        let good = try String(contentsOfFile: s.pack, encoding: .utf8)
        try good.replacingOccurrences(of: "from: zyggl", with: "from: zygglx").write(toFile: s.pack, atomically: true, encoding: .utf8)
        s.signal(SIGHUP)
        try #require(senderEventually { lines(s, "reload_failed").count >= 2 }, "\(s.log())")
        let failed = lines(s, "reload_failed")
        #expect(failed.contains { $0.contains("\(s.pack):") && $0.contains(": error[R004]") }, "\(failed)")
        #expect(failed.contains { $0.contains(#"action="keeping the running configuration""#) })
        #expect(failed.first.map { line in line.range(of: #"pack\.yaml:[0-9]+:[0-9]+: error"#, options: .regularExpression) != nil } == true)
        #expect(lines(s, "reloaded").isEmpty)
        #expect(s.process()?.isRunning == true)

        // A good pack again, and the central broker's keepalive changed: applied, the keepalive named.
        try good.write(toFile: s.pack, atomically: true, encoding: .utf8)
        let config = try String(contentsOfFile: s.config, encoding: .utf8)
        let edited = config.replacingOccurrences(of: "  central:\n    host: 127.0.0.1\n", with: "  central:\n    host: 127.0.0.1\n    keepalive_s: 45\n")
        #expect(edited != config)
        try edited.write(toFile: s.config, atomically: true, encoding: .utf8)
        s.signal(SIGHUP)
        try #require(senderEventually { !lines(s, "reloaded").isEmpty }, "\(s.log())")
        let restart = lines(s, "restart_needed")
        #expect(restart.count == 1, "\(restart)")
        #expect(restart.first?.contains("setting=brokers.central.keepalive_s old=") == true, "\(restart)")
        #expect(restart.first?.contains(" new=45 ") == true, "\(restart)")
        #expect(restart.first?.hasPrefix("<4>level=warning") == true)
        #expect(lines(s, "reloaded").first?.contains("packs=kpm33b restart_needed=1") == true, "\(lines(s, "reloaded"))")

        // SIGTERM: drain (stopping), offline (the retained offline status), finished (stopped, exit 0).
        status.clear()
        s.signal(SIGTERM)
        #expect(s.process()?.wait(timeout: 15) == true)
        #expect(s.process()?.exitStatus == 0)
        let stopping = try #require(lines(s, "stopping").first, "\(s.log())")
        #expect(stopping.contains("signal=SIGTERM drain_s="), "\(stopping)")
        #expect(status.waitFor { $0.topic == s.statusTopic && $0.payloadText.contains(#""state":"offline""#) } != nil)
        // Retained: a client that comes later sees it (a clean DISCONNECT: no will).
        let later = try TestSubscriber(broker: s.central, filters: [s.statusTopic])
        #expect(later.waitFor { $0.retain && $0.payloadText.contains(#""state":"offline""#) } != nil)
        let stopped = try #require(lines(s, "stopped").first, "\(s.log())")
        #expect(stopped.contains("signal=SIGTERM"))
        let log = s.log()
        let order = ["msg=stopping ", "msg=disconnected broker=central", "msg=stopped "].map { log.range(of: $0)?.lowerBound }
        #expect(order.allSatisfy { $0 != nil } && order[0]! < order[1]! && order[1]! < order[2]!, "\(log)")
        #expect(!log.contains("offline_status_not_acknowledged"), "the central broker acknowledged the offline status")
    }
}
