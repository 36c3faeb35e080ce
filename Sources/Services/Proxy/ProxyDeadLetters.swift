import MQTT
import RuleEngine
import SiteSettings

/// `kpm33b-proxy dead-letters list|replay|discard`: what the central broker
/// refused for good (`DeadLetters`), for an operator. Runs beside a running
/// proxy: the file is shared under its lock, held only while it is read or
/// rewritten, never while the broker is waited for.
public enum ProxyDeadLetters {
    /// Prints one line per letter (`time code reason topic payload`) on
    /// stdout, with a count on the log; returns the exit status.
    public static func list(stateDirectory: String, log: Log) -> Int32 {
        let store = DeadLetters(directory: stateDirectory)
        do throws(ServiceError) {
            let (letters, unreadable) = try store.load()
            for letter in letters {
                log.write(raw: "\(letter.time) 0x\(String(letter.code, radix: 16)) \"\(letter.reason)\" \(letter.retain ? "+ " : "")\(letter.topic) "
                    + String(decoding: letter.payload, as: UTF8.self) + "\n")
            }
            log.info("dead_letters", ["count": String(letters.count), "unreadable_lines": String(unreadable), "path": store.path])
            return 0
        } catch {
            log.error("dead_letters_failed", ["error": error.message])
            return 1
        }
    }

    /// Removes every letter; returns the exit status.
    public static func discard(stateDirectory: String, log: Log) -> Int32 {
        let store = DeadLetters(directory: stateDirectory)
        do throws(ServiceError) {
            var count = 0
            try store.update { (letters: [DeadLetters.Letter]) throws(ServiceError) -> [DeadLetters.Letter] in
                count = letters.count
                return []
            }
            log.info("dead_letters_discarded", ["count": String(count)])
            return 0
        } catch {
            log.error("dead_letters_failed", ["error": error.message])
            return 1
        }
    }

    /// Publishes every letter again on the central broker (QoS 1, retained as
    /// it was), with the proxy's broker settings and a client id ending in
    /// `-dead-letters`; the letters the broker acknowledged leave the file,
    /// those it refused again stay with the new reason. Exit status 0 when
    /// every letter was delivered.
    public static func replay(site: Site, options: ServiceOptions, stateDirectory: String, log: Log,
                              timeoutSeconds: Double = 15) -> Int32 {
        let store = DeadLetters(directory: stateDirectory)
        let letters: [DeadLetters.Letter]
        do throws(ServiceError) {
            letters = try store.load().letters
        } catch {
            log.error("dead_letters_failed", ["error": error.message])
            return 1
        }
        guard !letters.isEmpty else {
            log.info("dead_letters_replayed", ["delivered": "0", "refused": "0", "detail": "there are none"])
            return 0
        }
        let loop: EventLoop
        let central: MQTTClient
        do {
            loop = try EventLoop()
            let settings = try BrokerSettings(settings: site.settings, broker: "central", client: "proxy", override: options.centralURL,
                                              defaultClientID: "kpm33b-proxy", instance: site.programs.instance, cleanSession: true)
            var clientOptions = settings.options
            clientOptions.clientID += "-dead-letters"
            central = try MQTTClient(loop: loop, endpoint: settings.endpoint, options: clientOptions)
        } catch let error as ServiceError {
            log.error("dead_letters_failed", ["error": error.message])
            return 1
        } catch {
            log.error("dead_letters_failed", ["error": "\(error)"])
            return 1
        }
        // Message id → index of the letter; the outcome of each.
        var sent: [Int32: Int] = [:]
        var refusals: [Int: (code: Int32, reason: String)] = [:]
        var delivered = Set<Int>()
        var started = false
        central.onConnectionChange = { connected, reason in
            guard connected else {
                log.warning("dead_letters_connection", ["broker": central.endpoint.description, "reason": reason])
                return
            }
            guard !started else { return }
            started = true
            for (index, letter) in letters.enumerated() {
                do {
                    sent[try central.publish(topic: letter.topic, payload: letter.payload, qos: 1, retain: letter.retain)] = index
                } catch {
                    log.error("dead_letter_not_sent", ["topic": letter.topic, "error": "\(error)"])
                }
            }
            if sent.isEmpty { loop.stop() }
        }
        central.onPublishRejected = { mid, code, reason in
            if let index = sent[mid] { refusals[index] = (code, reason) }
        }
        central.onPublished = { mid in
            guard let index = sent.removeValue(forKey: mid) else { return }
            if refusals[index] == nil { delivered.insert(index) }
            if sent.isEmpty { loop.stop() }
        }
        central.start()
        loop.schedule(after: timeoutSeconds) {
            log.error("dead_letters_failed", ["detail": "\(sent.count) not acknowledged within \(Int(timeoutSeconds)) s; they stay"])
            loop.stop()
        }
        loop.run()
        central.stop()
        for (index, refusal) in refusals.sorted(by: { $0.key < $1.key }) {
            log.warning("dead_letter_refused_again", ["topic": letters[index].topic, "code": "0x" + String(refusal.code, radix: 16),
                                                      "reason": refusal.reason])
        }
        // What was delivered leaves the file; a letter added meanwhile stays.
        do throws(ServiceError) {
            try store.update { (current: [DeadLetters.Letter]) throws(ServiceError) -> [DeadLetters.Letter] in
                var remaining = current
                for index in delivered {
                    if let i = remaining.firstIndex(of: letters[index]) { remaining.remove(at: i) }
                }
                return remaining.map { letter in
                    guard let index = letters.firstIndex(of: letter), let refusal = refusals[index] else { return letter }
                    var again = letter
                    again.code = Int(refusal.code)
                    again.reason = refusal.reason
                    return again
                }
            }
        } catch {
            log.error("dead_letters_failed", ["error": error.message])
            return 1
        }
        log.info("dead_letters_replayed", ["delivered": String(delivered.count), "refused": String(refusals.count),
                                           "left": String(letters.count - delivered.count)])
        return delivered.count == letters.count ? 0 : 1
    }
}
