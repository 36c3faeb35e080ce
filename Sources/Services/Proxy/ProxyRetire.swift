import MQTT
import RuleEngine
import SiteSettings

/// `kpm33b-proxy retire ID…`: clears every retained message the proxy keeps
/// for these meters — the discovery message (on the central broker, and on the
/// internal one when `proxy.discovery_on_internal`) and the meter's Home
/// Assistant device or entity configs — so that a meter taken off the site
/// leaves nothing behind. It reads back what the central broker retains, the
/// way the proxy does (`DiscoveryLedger`), and clears exactly that. Runs beside
/// a running proxy, with its own client ids (`…-retire`).
public enum ProxyRetire {
    /// Connects, reads back, clears, waits for every acknowledgement (at most
    /// `timeoutSeconds`); returns the exit status.
    public static func run(ids: [String], site: Site, options: ServiceOptions, log: Log, timeoutSeconds: Double = 15) -> Int32 {
        let program = site.programs
        for id in ids where !program.isValidDeviceID(id) {
            log.error("retire_refused", ["meter": id, "detail": "not a meter id of pack '\(program.packName)'"])
            return 64
        }
        for id in ids where !program.isExcluded(id) {
            log.warning("retire_not_excluded", [
                "meter": id, "detail": "add it to 'exclude' in the site config, or the proxy announces it again with its next reading",
            ])
        }
        let origin = Origin(name: "kpm33b-proxy", version: ServiceVersion.current)
        var ledger = DiscoveryLedger(discoveryFilters: program.discoverySubscriptions, discoveryPrefix: program.siteConfig.homeAssistant.discoveryPrefix,
                                     originName: origin.name)
        let readBackTopic = "\(program.rootTopic)/proxy/read-back"
        let loop: EventLoop
        let central: MQTTClient
        var internalClient: MQTTClient?
        do {
            loop = try EventLoop()
            func client(_ broker: String) throws -> MQTTClient {
                let settings = try BrokerSettings(
                    settings: site.settings, broker: broker, client: "proxy",
                    override: broker == "central" ? options.centralURL : options.internalURL,
                    defaultClientID: "kpm33b-proxy", instance: program.instance, cleanSession: true)
                var clientOptions = settings.options
                clientOptions.clientID += "-retire"
                return try MQTTClient(loop: loop, endpoint: settings.endpoint, options: clientOptions)
            }
            central = try client("central")
            if site.settings.proxy.discoveryOnInternal { internalClient = try client("internal") }
            for filter in ledger.filters { try central.subscribe(filter, qos: 1) }
            try central.subscribe(readBackTopic, qos: 1)
        } catch let error as ServiceError {
            log.error("retire_failed", ["error": error.message])
            return 1
        } catch {
            log.error("retire_failed", ["error": "\(error)"])
            return 1
        }
        let token = "\(central.options.clientID) \(ids.joined(separator: ","))"
        var waiting = 0
        var failed = false
        var cleared = 0
        var readBack = false
        var tokenMid: Int32 = -1
        func publish(_ client: MQTTClient, _ topic: String, _ payload: [UInt8], counted: Bool = true) {
            do {
                _ = try client.publish(topic: topic, payload: payload, qos: 1, retain: true)
                waiting += 1
                if counted { cleared += 1 }
            } catch {
                log.error("retire_failed", ["topic": topic, "error": "\(error)"])
                failed = true
            }
        }
        func clear() {
            readBack = true
            var discoveryTopics: [String] = []
            for id in ids {
                for message in ledger.clearAll(id: id, program: program.running(id), origin: origin) {
                    publish(central, message.topic, message.payload)
                }
                if let topic = program.discoveryTopic(for: id) { discoveryTopics.append(topic) }
                // An owner's word that it stopped hearing the meter (`MeterSilence`): not read
                // back, and clearing a topic nobody holds costs nothing.
                publish(central, MeterSilence.topic(root: program.rootTopic, id: id), [], counted: false)
            }
            if let internalClient, !discoveryTopics.isEmpty {
                // The internal copy is not read back: clearing a topic nobody holds costs nothing there.
                waiting += 1  // until it is connected
                var sent = false
                internalClient.onConnectionChange = { connected, reason in
                    guard connected else {
                        log.warning("retire_connection", ["broker": internalClient.endpoint.description, "reason": reason])
                        return
                    }
                    guard !sent else { return }
                    sent = true
                    waiting -= 1
                    for topic in discoveryTopics { publish(internalClient, topic, []) }
                    if waiting <= 0 { loop.stop() }
                }
                internalClient.start()
            }
            if waiting <= 0 { loop.stop() }
        }
        central.onConnectionChange = { connected, reason in
            if !connected { log.warning("retire_connection", ["broker": central.endpoint.description, "reason": reason]) }
        }
        central.onSubscriptionsSettled = {
            do {
                tokenMid = try central.publish(topic: readBackTopic, payload: Array(token.utf8), qos: 1, retain: false)
            } catch {
                log.error("retire_failed", ["error": "\(error)"])
                failed = true
                loop.stop()
            }
        }
        central.onMessage = { message in
            if message.topic == readBackTopic {
                if !readBack && message.payload.elementsEqual(token.utf8) { clear() }
            } else if !readBack {
                ledger.observe(topic: message.topic, payload: Array(message.payload))
            }
        }
        central.onPublished = { mid in
            guard mid != tokenMid else { return }
            waiting -= 1
            if waiting <= 0 { loop.stop() }
        }
        internalClient?.onPublished = { _ in
            waiting -= 1
            if waiting <= 0 { loop.stop() }
        }
        // This thread runs the loop below: starting here is starting on it.
        central.start()
        loop.schedule(after: timeoutSeconds) {
            log.error("retire_failed", ["detail": readBack
                ? "\(waiting) clear(s) not acknowledged within \(Int(timeoutSeconds)) s"
                : "could not read back the central broker within \(Int(timeoutSeconds)) s"])
            failed = true
            loop.stop()
        }
        loop.run()
        central.stop()
        internalClient?.stop()
        guard !failed else { return 1 }
        log.info("retired", ["meters": ids.joined(separator: ","), "cleared": String(cleared)])
        return 0
    }
}
