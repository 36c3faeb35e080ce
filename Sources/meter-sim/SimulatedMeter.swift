import Foundation
import MQTT

/// Settings shared by every meter of a run.
struct SimulationSettings: Sendable {
    /// The meters' clocks run this many times faster than real time.
    var timeScale: Double
    var qos: Int
    var zeroRate: Double
    var duplicateRate: Double
}

/// One simulated KPM33B: its own MQTT connection (client id = meter id), its
/// own clock, upload intervals and readings, and its command topics.
///
/// `tick` runs on the simulation thread, `handle` on the connection's network
/// thread; the mutable state is behind `lock`.
final class SimulatedMeter: @unchecked Sendable {
    struct Quirks: Sendable {
        /// KPM37 style: `MQTT_RT_DATA` in 9 parts.
        var split = false
        /// The clock starts in 2005 and stays wrong until a set-clock command.
        var wrongClock = false
        /// Never answers (nor applies) a command.
        var silent = false
        /// Answers "02" to every command.
        var failing = false
    }

    let id: String
    /// The last 8 characters: the suffix of the command topics.
    let shortID: String
    let quirks: Quirks
    let connection: MQTTConnection
    private let settings: SimulationSettings
    private let journal: Journal

    private let lock = NSLock()
    // Guarded by `lock`:
    /// The meter clock read `clockBase` at real (uptime) second `realBase`.
    private var clockBase: MeterTime
    private var realBase: Double
    private var secondsInterval: Int
    private var minutesInterval: Int
    private var nextRealTime = MeterTime(seconds: 0)
    private var nextEnergy = MeterTime(seconds: 0)
    private var electrical: ElectricalState
    private var lastIntegration: Double
    private var rng: SplitMix64
    private var announcedSubscribed = false

    init(id: String, quirks: Quirks, secondsInterval: Int, minutesInterval: Int, endpoint: MQTTEndpoint,
         options: MQTTOptions, settings: SimulationSettings, journal: Journal, seed: UInt64, now: Double) throws {
        self.id = id
        self.shortID = String(id.suffix(8))
        self.quirks = quirks
        self.settings = settings
        self.journal = journal
        self.secondsInterval = secondsInterval
        self.minutesInterval = minutesInterval
        var rng = SplitMix64(seed: seed)
        electrical = ElectricalState(rng: &rng)
        self.rng = rng
        realBase = now
        lastIntegration = now
        if quirks.wrongClock {
            clockBase = MeterTime(year: 2005, month: 1, day: 1)!
        } else {
            // The meter's clock shows local wall time; it knows no time zone.
            let date = Date()
            let local = Int64(date.timeIntervalSince1970) + Int64(TimeZone.current.secondsFromGMT(for: date))
            clockBase = MeterTime(seconds: local - 946_684_800)
        }
        connection = try MQTTConnection(endpoint: endpoint, options: options)
        scheduleFromClock(now: now)
    }

    /// Subscribes to the command topics (QoS 1) and connects.
    func start() throws {
        connection.onMessage = { [weak self] message in self?.handle(message) }
        connection.onConnectionChange = { [weak self] connected, reason in
            guard let self else { return }
            if connected {
                journal.record("connected", id)
            } else {
                lock.withLock { announcedSubscribed = false }
                journal.record("disconnected", id, reason)
            }
        }
        for kind in [MeterCommands.Kind.setInterval, .setTime, .readInterval] {
            try connection.subscribe(kind.rawValue + shortID, qos: 1)
        }
        try connection.start()
    }

    /// Records "subscribed ID" once per connection, when every SUBACK is in.
    func pollSubscribed() {
        guard !lock.withLock({ announcedSubscribed }), connection.waitUntilSubscribed(timeout: 0) else { return }
        lock.withLock { announcedSubscribed = true }
        journal.record("subscribed", id)
    }

    // MARK: Data

    /// Publishes the data messages due at real (uptime) second `now`; returns
    /// the number of readings sent (a split reading counts once, a duplicate not).
    func tick(now: Double) -> Int {
        var messages: [(topic: String, payload: String)] = []
        var readings = 0
        lock.withLock {
            let clock = clockAt(now)
            let hours = (now - lastIntegration) * settings.timeScale / 3600
            electrical.integrate(hours: hours, daySecond: clock.secondOfDay)
            lastIntegration = now

            if clock >= nextRealTime {
                let interval = Int64(secondsInterval)
                let time = clock.floor(to: interval)
                electrical.drift(daySecond: time.secondOfDay, rng: &rng)
                let zero = rng.chance(settings.zeroRate)
                let parts = quirks.split ? KPM33BPayloads.splitParts : 1
                let payloads = KPM33BPayloads.realTime(id: id, time: time, state: electrical, zero: zero, parts: parts)
                var reading = payloads.map { (KPM33BPayloads.realTimeTopic, $0) }
                if rng.chance(settings.duplicateRate) { reading += reading }
                messages += reading
                nextRealTime = MeterTime(seconds: time.seconds + interval)
                readings += 1
            }
            if clock >= nextEnergy {
                let interval = Int64(minutesInterval) * 60
                let time = clock.floor(to: interval)
                let zero = rng.chance(settings.zeroRate)
                let payload = KPM33BPayloads.energy(id: id, time: time, state: electrical, zero: zero)
                messages.append((KPM33BPayloads.energyTopic, payload))
                if rng.chance(settings.duplicateRate) { messages.append((KPM33BPayloads.energyTopic, payload)) }
                nextEnergy = MeterTime(seconds: time.seconds + interval)
                readings += 1
            }
        }
        for (topic, payload) in messages {
            publish(topic, payload, qos: settings.qos, isData: true)
        }
        return readings
    }

    /// Real seconds from `now` until this meter's next data message is due.
    func secondsUntilNextMessage(now: Double) -> Double {
        lock.withLock {
            let next = min(nextRealTime, nextEnergy)
            let clockSeconds = Double(clockBase.seconds) + (now - realBase) * settings.timeScale
            return max(0, (Double(next.seconds) - clockSeconds) / settings.timeScale)
        }
    }

    // MARK: Commands (network thread)

    private func handle(_ message: MQTTMessage) {
        journal.record("received", message.topic, message.payloadText)
        guard let kind = [MeterCommands.Kind.setInterval, .setTime, .readInterval]
            .first(where: { message.topic == $0.rawValue + shortID }) else {
            journal.record("ignored", message.topic, "not a command topic of \(id)")
            return
        }
        if quirks.silent {
            journal.record("ignored", message.topic, "silent meter")
            return
        }
        let decision = lock.withLock {
            MeterCommands.decide(kind: kind, payload: message.payload, id: id, secondsInterval: secondsInterval,
                                 minutesInterval: minutesInterval, failing: quirks.failing)
        }
        switch decision {
        case .ignore(let reason):
            journal.record("ignored", message.topic, reason)
        case .reply(let topic, let payload, let effect):
            if let effect { apply(effect) }
            publish(topic, payload, qos: 1, isData: false)
        }
    }

    private func apply(_ effect: MeterCommands.Effect) {
        let now = ProcessInfo.processInfo.systemUptime
        let description: String = lock.withLock {
            // Energy up to now belongs to the old settings.
            let clock = clockAt(now)
            electrical.integrate(hours: (now - lastIntegration) * settings.timeScale / 3600, daySecond: clock.secondOfDay)
            lastIntegration = now
            switch effect {
            case .secondsInterval(let value):
                secondsInterval = value
                scheduleFromClock(now: now)
                return "seconds interval \(value)"
            case .minutesInterval(let value):
                minutesInterval = value
                scheduleFromClock(now: now)
                return "minutes interval \(value)"
            case .clock(let time):
                clockBase = time
                realBase = now
                scheduleFromClock(now: now)
                return "clock \(time.compact)"
            }
        }
        journal.record("applied", id, description)
    }

    // MARK: Helpers

    private func publish(_ topic: String, _ payload: String, qos: Int, isData: Bool) {
        do {
            try connection.publish(topic: topic, payload: Array(payload.utf8), qos: qos, retain: false)
            journal.record("sent", topic, payload, isData: isData)
        } catch {
            journal.record("dropped", topic, error.description)
        }
    }

    /// The meter clock at real (uptime) second `now`. Caller holds `lock`.
    private func clockAt(_ now: Double) -> MeterTime {
        MeterTime(seconds: clockBase.seconds + Int64(((now - realBase) * settings.timeScale).rounded(.down)))
    }

    /// Next due times: the next interval boundaries of the meter clock. Caller holds `lock`.
    private func scheduleFromClock(now: Double) {
        let clock = clockAt(now)
        let seconds = Int64(secondsInterval), minutes = Int64(minutesInterval) * 60
        nextRealTime = MeterTime(seconds: clock.floor(to: seconds).seconds + seconds)
        nextEnergy = MeterTime(seconds: clock.floor(to: minutes).seconds + minutes)
    }
}
