import Foundation
import MQTT
import Testing
@testable import ServicesFixtures

/// SECURITY.md against the shipped ACLs: every account is described, and
/// what it says of relay requests is what the central ACL grants.
@Suite struct SecurityDocumentTests {
    /// `user` → its `topic` lines (access, topic), per ACL file.
    static func blocks(_ path: String) throws -> [String: [(access: String, topic: String)]] {
        let text = try String(contentsOf: senderPackageRoot.appendingPathComponent(path), encoding: .utf8)
        var blocks: [String: [(access: String, topic: String)]] = [:]
        var user: String?
        for line in text.split(separator: "\n").map(String.init) where !line.hasPrefix("#") {
            let words = line.split(separator: " ").map(String.init)
            if words.count == 2, words[0] == "user" {
                user = words[1]
                blocks[words[1], default: []] += []
            } else if let user, words.count == 3, words[0] == "topic" {
                blocks[user, default: []].append((words[1], words[2]))
            }
        }
        return blocks
    }

    @Test func everyAccountOfBothBrokersIsDescribed() throws {
        let document = try String(contentsOf: senderPackageRoot.appendingPathComponent("SECURITY.md"), encoding: .utf8)
        for path in ["broker/internal/acl", "broker/central/acl"] {
            let users = try Self.blocks(path).keys
            #expect(users.count >= 2, "\(path)")
            for user in users {
                #expect(document.contains("`\(user)`"), "SECURITY.md does not describe \(path)'s account \(user)")
            }
        }
    }

    /// Only Home Assistant's and the operator's accounts may send a relay
    /// request; config-sender reads them and may not write one.
    @Test func onlyHomeAssistantAndTheOperatorMaySwitchARelay() throws {
        let request = "kpm33b/37A1225950001/relay/set"
        var writers: [String] = []
        for (user, lines) in try Self.blocks("broker/central/acl") {
            if lines.contains(where: { ["write", "readwrite"].contains($0.access) && MQTTTopic.matches(filter: $0.topic, topic: request) }) {
                writers.append(user)
            }
        }
        #expect(writers.sorted() == ["homeassistant", "operator"])
    }
}
