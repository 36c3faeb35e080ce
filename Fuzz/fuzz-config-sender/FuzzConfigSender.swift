import Foundation
import RuleEngine
import Services

/// config-sender's parsing of what it receives: a meter's reply to a
/// command (`Program.parseReply` on each reply topic of the pack) and a
/// discovery message (`DiscoveryMessage.parse`).
///
/// Input: byte 0 picks the topic; the rest is the payload.
let program: Program = {
    do {
        return try Compiler.build(rules: ProcessInfo.processInfo.environment["FUZZ_RULES"] ?? "rules/kpm33b", config: nil)
    } catch {
        fatalError("fuzz-config-sender: the pack does not compile:\n\(error)")
    }
}()

let topics = ["MQTT_COMMOD_SET_REP", "MQTT_METER_TIME_REP", "kpm33b/discovery/33B1225950027", "kpm33b/discovery/"]

func fuzzOne(_ data: [UInt8]) {
    guard let selector = data.first else { return }
    let topic = topics[Int(selector) % topics.count]
    let payload = Array(data.dropFirst())
    if topic.hasPrefix("kpm33b/discovery/") {
        _ = DiscoveryMessage.parse(topic: topic, payload: payload)
    } else if let reply = program.parseReply(topic: topic, payload: payload) {
        // A reply names only commands of the pack and carries the id it was sent with.
        precondition(!reply.commands.isEmpty)
    }
}
