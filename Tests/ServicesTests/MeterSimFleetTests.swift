import Foundation
import JSON
import Testing
import TestSupport
@testable import ServicesFixtures

/// A fleet larger than `select()` allows (FD_SETSIZE 1024; each meter used to
/// take 3 descriptors): meter-sim connects 1,500 meters from one process, and
/// config-sender, with the site's default pacing and reply timeout,
/// configures every one. Real brokers, real binaries; the central broker runs
/// its production config and ACL, config-sender logs in with its account.
@Suite(.serialized) struct MeterSimFleetTests {
    @Test(.timeLimit(.minutes(2))) func fifteenHundredMetersConnectAndAreAllConfigured() throws {
        let count = 1500
        let h = try SenderHarness(name: "fleet", productionCentral: true)
        // The shipped defaults for pacing and the reply timeout.
        let config = senderConfigText(internalPort: h.internalBroker.port, centralPort: h.centralBroker.port, timeout: 15,
                                      retries: 3, centralClient: h.centralClient, maxInFlight: nil, minSpacingMs: nil)
        try config.write(to: h.configFile, atomically: false, encoding: .utf8)
        let journalFile = h.directory.appendingPathComponent("meter-sim.journal")
        let sim = try ChildProcess(executable: try senderBuiltExecutable("meter-sim"), arguments: [
            "--broker", h.internalBroker.url, "--meters", String(count), "--seconds", "3600", "--minutes", "60",
            "--journal", journalFile.path, "--quiet",
        ], outputFile: h.directory.appendingPathComponent("meter-sim.log").path)
        defer { sim.kill() }
        func journal() -> [Substring] {
            ((try? String(contentsOf: journalFile, encoding: .utf8)) ?? "").split(separator: "\n")
        }
        try #require(senderEventually(timeout: 30) { journal().contains { $0.hasPrefix("all-connected \(count) meters") } },
                     "\(journal().suffix(5))")
        try #require(senderEventually(timeout: 30) { journal().filter { $0.hasPrefix("subscribed ") }.count == count })
        #expect(!journal().contains { $0.hasPrefix("disconnected ") })

        let ids = (0..<count).map { "33B" + String(1_225_950_027 + $0) }
        for id in ids { try h.discover(id) }
        try h.start()
        try #require(senderEventually(timeout: 60) { h.lines("meter_configured").count == count },
                     "\(h.lines("meter_configured").count) of \(count) configured; \(h.currentRunLog.suffix(5))")
        let configured = Set(h.lines("meter_configured").compactMap { line in
            line.split(separator: " ").first { $0.hasPrefix("meter=") }.map { String($0.dropFirst(6)) }
        })
        #expect(configured == Set(ids))
        #expect(h.lines("ALERT").isEmpty)
        #expect(h.lines("reply_timeout").isEmpty)
        #expect(h.lines("command_sent").count == 3 * count)
        // Every meter applied its intervals and clock.
        let applied = journal().filter { $0.hasPrefix("applied ") }
        #expect(applied.count == 3 * count)
        #expect(Set(applied.map { $0.split(separator: " ")[1] }).count == count)

        // A clean stop: every meter was connected, so exit status 0.
        sim.terminate()
        #expect(sim.exitStatus == 0)
        let last = try #require(journal().last { $0.hasPrefix("stopped ") })
        #expect(last.hasSuffix("\(count) of \(count) meters connected"))
        #expect(h.stop() == 0)
    }

    /// A meter that cannot connect makes meter-sim say why and exit 1.
    @Test func aMeterThatNeverConnectsIsReportedWithItsCauseAndFailsTheRun() throws {
        let port = freePort()  // nothing listens there
        let directory = try senderTemporaryDirectory("meter-sim-refused")
        defer { try? FileManager.default.removeItem(at: directory) }
        let journalFile = directory.appendingPathComponent("journal")
        let sim = try ChildProcess(executable: try senderBuiltExecutable("meter-sim"), arguments: [
            "--broker", "mqtt://127.0.0.1:\(port)", "--meters", "2", "--for", "2", "--journal", journalFile.path, "--quiet",
        ], outputFile: directory.appendingPathComponent("out.log").path)
        _ = sim.wait(timeout: 20)
        #expect(sim.exitStatus == 1)
        let journal = (try? String(contentsOf: journalFile, encoding: .utf8)) ?? ""
        #expect(journal.contains("disconnected 33B1225950027 connection to mqtt://127.0.0.1:\(port): Connection refused"))
        // Readings are sent (queued) at minute boundaries, and a run may cross one: none is acknowledged.
        #expect(journal.contains("stopped ran 2.0 s 0 readings acknowledged by the broker ("))
        #expect(journal.contains(" sent); 0 of 2 meters connected"))
        #expect(journal.contains("failed 2 of 2 meters never connected (33B1225950027: connection to mqtt://127.0.0.1:\(port): Connection refused"))
    }
}
