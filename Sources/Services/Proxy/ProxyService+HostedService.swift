import MQTT
import SiteSettings

/// The proxy's part of the host's lifecycle: its subscriptions and timers,
/// what a connection means to it, the reload's live settings, the drain of
/// the journal and its state files at the end.
extension ProxyService: HostedService {
    func start() throws(ServiceError) {
        refreshUTCOffset()
        wireCentral()
        wireInternal()
        do {
            for filter in core.programs.subscriptions { try internalClient.subscribe(shared(filter), qos: 1) }
            // The broker's own figures: QoS 0, nothing queued for them while the proxy is away.
            for figure in InternalBrokerFigures.topics { try internalClient.subscribe(figure.topic, qos: 0) }
            if let topic = homeAssistantStatusTopic { try centralClient.subscribe(topic, qos: 1) }
            for filter in core.announcements.ledger.filters { try centralClient.subscribe(filter, qos: 1) }
            // The other instances' statuses: who announces which meter (`ProxyCore.mayAnnounce`).
            for filter in [peerStatusRoot, peerStatusRoot + "/+"] { try centralClient.subscribe(filter, qos: 1) }
            // The owners' word on the meters they stopped hearing (`MeterSilence`).
            try centralClient.subscribe(MeterSilence.filter(root: core.programs.rootTopic), qos: 1)
            try centralClient.subscribe(core.announcements.readBackRound.topic, qos: 1)
        } catch {
            throw ServiceError("\(error)")
        }
        loop.repeating(every: 1) { [unowned self] in everySecond() }
        scheduleStatus()
    }

    var startedFields: [(String, String)] {
        [("subscriptions", core.programs.subscriptions.joined(separator: ",")), ("status_topic", statusTopic),
         ("state_dir", configuration.stateDirectory)]
    }

    func connectionChanged(_ broker: ServiceHost.Broker, connected: Bool, reason: String) {
        switch broker {
        case .internal:
            core.internalConnectionChanged(connected)
        case .central:
            core.centralConnectionChanged(connected, at: .now())
            if connected { centralConnected() }
        }
    }

    func endOfIteration() {
        core.endOfIteration(at: .now())
        // Records wait for the central window: its next PUBACK ends the loop's coalescing wait.
        if core.delivery.awaitsWindow { centralClient.awaitAcknowledgements() }
    }

    /// The ledger's: it reads them back from the central broker.
    var discoveryTopics: [String] { core.announcements.ledger.discoveryFilters }

    func apply(_ site: Site) {
        applyLive(site)
    }

    var drainSeconds: Double { Self.drainSeconds }

    /// Stop taking messages: the journal is written and the meters' broker
    /// left; what the journal holds is delivered until the drain's deadline.
    func beginDrain() -> [(String, String)] {
        core.writeJournal()
        internalClient.stop()
        return [("journal_messages", String(core.journal.unacknowledgedCount))]
    }

    /// Everything delivered, or nothing can be any more.
    var isDrained: Bool { core.delivery.isDrained || !centralClient.isConnected }

    func publishOffline(drainComplete: Bool) -> Int32? {
        if !core.delivery.isDrained {
            log.info("journal_kept", ["messages": String(core.journal.unacknowledgedCount), "detail": "delivered at the next start"])
        }
        return publishStatus(state: "offline")
    }

    func stopped() -> [(String, String)] {
        core.saveState()
        core.journal.close()
        return [("received", String(core.statistics.received)), ("forwarded", String(core.statistics.forwarded)),
                ("journal_messages", String(core.journal.unacknowledgedCount))]
    }

    /// The meters heard since the start, the forwarding rate and the journal's depth.
    var supervisionSummary: String {
        let statistics = core.statistics
        return "\(core.engine.metersHeard) meters, \(forwardedPerMinute.rate(statistics.forwarded)) forwarded/min, "
            + "journal \(core.journal.unacknowledgedCount) messages"
            + (core.delivery.isBackPressureActive ? " (full: not reading the meters' broker)" : "")
    }
}
