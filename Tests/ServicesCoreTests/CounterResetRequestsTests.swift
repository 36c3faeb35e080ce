import Foundation
import Glibc
@testable import Services
import Testing
@testable import ServicesFixtures

/// `kpm33b-proxy accept-reset` runs as root and writes into the service's
/// state directory, which the service's account may change at will: nothing
/// it plants there may turn the request into a write, a truncation or a
/// `chown` of another file.
@Suite struct CounterResetRequestsTests {
    let directory: String
    let state: String
    /// The service's account: the state directory's owner (as systemd's
    /// `DynamicUser` has it). Only root can give files away, so the ownership
    /// checks run when the tests run as root.
    let serviceUID: uid_t = 65534

    init() throws {
        directory = FileManager.default.temporaryDirectory.appendingPathComponent("reset-test-\(UUID().uuidString.prefix(8))").path
        state = directory + "/state"
        try FileManager.default.createDirectory(atPath: state, withIntermediateDirectories: true)
        if geteuid() == 0 { #expect(chown(state, serviceUID, serviceUID) == 0) }
    }

    func cleanUp() { try? FileManager.default.removeItem(atPath: directory) }

    func owner(_ path: String) -> uid_t? {
        var info = stat()
        return lstat(path, &info) == 0 ? info.st_uid : nil
    }

    /// A file the service must never get: root's, with content.
    func precious(_ name: String) throws -> String {
        let path = directory + "/" + name
        try "root's file\n".write(toFile: path, atomically: false, encoding: .utf8)
        return path
    }

    func expectUntouched(_ path: String) throws {
        #expect(try String(contentsOfFile: path, encoding: .utf8) == "root's file\n")
        #expect(owner(path) == geteuid())
    }

    @Test func aPlantedLinkToAFileIsRefusedAndTheFileUntouched() throws {
        defer { cleanUp() }
        let target = try precious("shadow")
        // What the service's account can do in its own directory.
        try FileManager.default.createDirectory(atPath: state + "/accept-reset", withIntermediateDirectories: false)
        if geteuid() == 0 { #expect(chown(state + "/accept-reset", serviceUID, serviceUID) == 0) }
        #expect(symlink(target, state + "/accept-reset/33B1225950027.active_energy") == 0)
        #expect(link(target, state + "/accept-reset/33B1225950027") == 0)

        #expect(throws: ServiceError.self) {
            try CounterResetRequests(stateDirectory: state).request(id: "33B1225950027", field: "active_energy")
        }
        try expectUntouched(target)
        #expect(throws: ServiceError.self) {
            try CounterResetRequests(stateDirectory: state).request(id: "33B1225950027", field: nil)
        }
        try expectUntouched(target)
    }

    @Test func aPlantedLinkInPlaceOfTheDirectoryIsRefused() throws {
        defer { cleanUp() }
        let elsewhere = directory + "/etc"
        try FileManager.default.createDirectory(atPath: elsewhere, withIntermediateDirectories: false)
        #expect(symlink(elsewhere, state + "/accept-reset") == 0)
        #expect(throws: ServiceError.self) {
            try CounterResetRequests(stateDirectory: state).request(id: "33B1225950027", field: nil)
        }
        #expect(try FileManager.default.contentsOfDirectory(atPath: elsewhere).isEmpty)
        #expect(owner(elsewhere) == geteuid())

        // An instance's subdirectory is the service's too.
        let instanceTarget = directory + "/var"
        try FileManager.default.createDirectory(atPath: instanceTarget, withIntermediateDirectories: false)
        #expect(symlink(instanceTarget, state + "/site-a") == 0)
        #expect(throws: ServiceError.self) {
            try CounterResetRequests(stateDirectory: state, instance: "site-a").request(id: "33B1225950027", field: nil)
        }
        #expect(try FileManager.default.contentsOfDirectory(atPath: instanceTarget).isEmpty)
    }

    /// The ordinary case: the request is the service's to read and delete,
    /// and a second request for the same meter is the same request.
    @Test func aRequestBelongsToTheStateDirectorysOwner() throws {
        defer { cleanUp() }
        let requests = CounterResetRequests(stateDirectory: state, instance: "site-a")
        try requests.request(id: "33B1225950027", field: "active_energy")
        try requests.request(id: "33B1225950027", field: "active_energy")
        try requests.request(id: "33B1225950031", field: nil)
        let file = state + "/site-a/accept-reset/33B1225950027.active_energy"
        #expect(FileManager.default.fileExists(atPath: file))
        if geteuid() == 0 {
            #expect(owner(file) == serviceUID)
            #expect(owner(state + "/site-a/accept-reset") == serviceUID)
            #expect(owner(state + "/site-a") == serviceUID)
        }
        let taken = requests.take()
        #expect(taken.map(\.id) == ["33B1225950027", "33B1225950031"])
        #expect(taken.map(\.field) == ["active_energy", nil])
        #expect(requests.take().isEmpty)
    }
}
