import MQTT
import RuleEngine
import SiteSettings

/// `kpm33b-proxy retire ID…`: clears every retained message the proxy keeps
/// for these meters — the discovery message (on the central broker, and on the
/// internal one when `proxy.discovery_on_internal`) and each Home Assistant
/// entity config — so that a meter taken off the site leaves nothing behind.
/// Runs beside a running proxy, with its own client ids (`…-retire`).
public enum ProxyRetire {
    /// Connects, clears, waits for every acknowledgement (at most
    /// `timeoutSeconds`); returns the exit status.
    public static func run(ids: [String], site: Site, options: ServiceOptions, log: Log, timeoutSeconds: Double = 15) -> Int32 {
        let program = site.programs
        for id in ids where !program.isValidDeviceID(id) {
            log.error("retire_refused", ["meter": id, "detail": "not a meter id of pack '\(program.packName)'"])
            return 64
        }
        let origin = Origin(name: "kpm33b-proxy", version: ServiceVersion.current)
        var central: [String] = []
        var internalTopics: [String] = []
        for id in ids {
            if let topic = program.discoveryTopic(for: id) {
                central.append(topic)
                if site.settings.proxy.discoveryOnInternal { internalTopics.append(topic) }
            }
            if program.siteConfig.homeAssistant.enabled {
                central += program.homeAssistantConfigs(for: id, origin: origin).map(\.topic)
            }
            if !program.isExcluded(id) {
                log.warning("retire_not_excluded", [
                    "meter": id, "detail": "add it to 'exclude' in the site config, or the proxy announces it again with its next reading",
                ])
            }
        }
        let loop: EventLoop
        var clients: [(MQTTClient, [String])] = []
        do {
            loop = try EventLoop()
            for (broker, topics) in [("central", central), ("internal", internalTopics)] where !topics.isEmpty {
                let settings = try BrokerSettings(
                    settings: site.settings, broker: broker, client: "proxy",
                    override: broker == "central" ? options.centralURL : options.internalURL,
                    defaultClientID: "kpm33b-proxy", cleanSession: true)
                var clientOptions = settings.options
                clientOptions.clientID += "-retire"
                clients.append((try MQTTClient(loop: loop, endpoint: settings.endpoint, options: clientOptions), topics))
            }
        } catch let error as ServiceError {
            log.error("retire_failed", ["error": error.message])
            return 1
        } catch {
            log.error("retire_failed", ["error": "\(error)"])
            return 1
        }
        var waiting = 0
        var failed = false
        for (client, topics) in clients {
            waiting += topics.count
            var sent = false
            client.onConnectionChange = { connected, reason in
                guard connected else {
                    log.warning("retire_connection", ["broker": client.endpoint.description, "reason": reason])
                    return
                }
                guard !sent else { return }
                sent = true
                for topic in topics {
                    do {
                        _ = try client.publish(topic: topic, payload: [UInt8](), qos: 1, retain: true)
                    } catch {
                        log.error("retire_failed", ["topic": topic, "error": "\(error)"])
                        failed = true
                        waiting -= 1
                    }
                }
                if waiting <= 0 { loop.stop() }
            }
            client.onPublished = { _ in
                waiting -= 1
                if waiting <= 0 { loop.stop() }
            }
        }
        // This thread runs the loop below: starting here is starting on it.
        for (client, _) in clients { client.start() }
        loop.schedule(after: timeoutSeconds) {
            log.error("retire_failed", ["detail": "\(waiting) clear(s) not acknowledged within \(Int(timeoutSeconds)) s"])
            failed = true
            loop.stop()
        }
        loop.run()
        for (client, _) in clients { client.stop() }
        guard !failed else { return 1 }
        log.info("retired", ["meters": ids.joined(separator: ","), "cleared": String(central.count + internalTopics.count)])
        return 0
    }
}
