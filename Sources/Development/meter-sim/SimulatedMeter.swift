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
/// Loop thread only: the connection is an `MQTTClient` on the fleet's
/// `EventLoop`, and everything here — the data timer, command handling,
/// acknowledgements — runs on that loop's thread, so no lock is needed.
final class SimulatedMeter {
    struct Quirks: Sendable {
        /// KPM37 style: `MQTT_RT_DATA` in 9 parts.
        var split = false
        /// The clock starts in 2005 and stays wrong until a set-clock command.
        var wrongClock = false
        /// Never answers (nor applies) a command.
        var silent = false
        /// Answers "02" to every command.
        var failing = false
        /// The model: what is sent (parts, daily totals, inputs) and answered (relay).
        var model: MeterModel = .kpm33b
        /// The clock at start instead of the local time (`--clock`; the demo starts just before midnight).
        var startClock: MeterTime?
    }

    /// What the fleet learns from a meter.
    struct Hooks {
        /// A reading was handed to the connection (a split reading once, a duplicate not).
        var readingSent: () -> Void = {}
        /// Every message of a reading was acknowledged by the broker (QoS 1
        /// PUBACK; QoS 0: written to the socket).
        var readingAcknowledged: () -> Void = {}
        /// The first CONNACK of this meter.
        var firstConnected: () -> Void = {}
    }

    let id: String
    /// The last 8 characters: the suffix of the command topics.
    let shortID: String
    let quirks: Quirks
    let connection: MQTTClient
    private let settings: SimulationSettings
    private let journal: EventLog
    var hooks = Hooks()

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
    private var dataTimer: LoopTimer?
    private var stopped = false
    /// The ids this meter publishes for: its own, or base +0…+3 for a KPM312.
    private let loopIDs: [String]
    /// KPM37: the relay output and the digital inputs (bit 0: the first).
    private(set) var relayOn = false
    private var inputs: UInt32 = 0
    /// The meter-clock day and hour of the last tick: 00:00 sends the daily
    /// totals, each new hour toggles input 1 (a simulated contact).
    private var lastDay: Int64 = -1
    private var lastHour: Int64 = -1

    /// Whether a CONNACK ever came, and why the last attempt failed.
    private(set) var everConnected = false
    private(set) var lastFailure: String?
    /// Data messages in flight: message id → reading serial; per reading, messages not yet acknowledged.
    private var readingOfMessage: [Int32: Int] = [:]
    private var messagesLeft: [Int: Int] = [:]
    private var readingSerial = 0

    init(id: String, quirks: Quirks, secondsInterval: Int, minutesInterval: Int, loop: EventLoop, endpoint: MQTTEndpoint,
         options: MQTTOptions, settings: SimulationSettings, journal: EventLog, seed: UInt64, now: Double) throws {
        self.id = id
        self.shortID = String(id.suffix(8))
        self.quirks = quirks
        self.loopIDs = quirks.model.loopIDs(id)
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
        } else if let start = quirks.startClock {
            clockBase = start
        } else {
            // The meter's clock shows local wall time; it knows no time zone.
            let date = Date()
            let local = Int64(date.timeIntervalSince1970) + Int64(TimeZone.current.secondsFromGMT(for: date))
            clockBase = MeterTime(seconds: local - 946_684_800)
        }
        connection = try MQTTClient(loop: loop, endpoint: endpoint, options: options, dropSocketPair: true)
        lastDay = clockBase.seconds / 86400
        lastHour = clockBase.seconds / 3600
        scheduleFromClock(now: now)
    }

    /// Subscribes to the command topics (QoS 1), connects, arms the data timer. Loop thread.
    func start() throws {
        connection.onMessage = { [unowned self] message in handle(message.copy()) }
        connection.onConnectionChange = { [unowned self] connected, reason in
            if connected {
                journal.record("connected", id)
                if !everConnected {
                    everConnected = true
                    hooks.firstConnected()
                }
            } else if !stopped {
                lastFailure = reason
                journal.record("disconnected", id, reason)
            }
        }
        connection.onSubscriptionsSettled = { [unowned self] in journal.record("subscribed", id) }
        connection.onPublished = { [unowned self] mid in acknowledged(mid) }
        for kind in commandKinds {
            try connection.subscribe(kind.rawValue + shortID, qos: 1)
        }
        connection.start()
        armDataTimer(now: ProcessInfo.processInfo.systemUptime)
    }

    /// Sends DISCONNECT and stops the data timer. Loop thread.
    func stop() {
        stopped = true
        dataTimer?.cancel()
        dataTimer = nil
        connection.stop()
    }

    /// Readings handed over and not yet acknowledged.
    var readingsInFlight: Int { messagesLeft.count }

    // MARK: Data

    private func armDataTimer(now: Double) {
        dataTimer?.cancel()
        guard !stopped else { return }
        dataTimer = connection.loop.schedule(after: secondsUntilNextMessage(now: now)) { [unowned self] in
            dataTimer = nil
            let now = ProcessInfo.processInfo.systemUptime
            tick(now: now)
            armDataTimer(now: now)
        }
    }

    /// Publishes the data messages due at real (uptime) second `now`.
    func tick(now: Double) {
        var readings: [[(topic: String, payload: String)]] = []
        let clock = clockAt(now)
        let hours = (now - lastIntegration) * settings.timeScale / 3600
        electrical.integrate(hours: hours, daySecond: clock.secondOfDay)
        lastIntegration = now

        let model = quirks.model
        if clock >= nextRealTime {
            let interval = Int64(secondsInterval)
            let time = clock.floor(to: interval)
            electrical.drift(daySecond: time.secondOfDay, rng: &rng)
            let zero = rng.chance(settings.zeroRate)
            let parts = quirks.split ? KPM33BPayloads.splitParts : model.realTimeParts
            for loop in loopIDs {
                let payloads = model.extendedTags
                    ? KPM37Payloads.realTime(id: loop, time: time, state: electrical, zero: zero, parts: parts)
                    : KPM33BPayloads.realTime(id: loop, time: time, state: electrical, zero: zero, parts: parts)
                var reading = payloads.map { (KPM33BPayloads.realTimeTopic, $0) }
                if rng.chance(settings.duplicateRate) { reading += reading }
                readings.append(reading)
            }
            nextRealTime = MeterTime(seconds: time.seconds + interval)
        }
        if clock >= nextEnergy {
            let interval = Int64(minutesInterval) * 60
            let time = clock.floor(to: interval)
            let zero = rng.chance(settings.zeroRate)
            for loop in loopIDs {
                let payloads = model == .kpm33b
                    ? [KPM33BPayloads.energy(id: loop, time: time, state: electrical, zero: zero)]
                    : KPM37Payloads.energy(id: loop, time: time, state: electrical, zero: zero, parts: model.energyParts, extended: model.extendedTags)
                var reading = payloads.map { (KPM33BPayloads.energyTopic, $0) }
                if rng.chance(settings.duplicateRate) { reading += reading }
                readings.append(reading)
            }
            nextEnergy = MeterTime(seconds: time.seconds + interval)
        }
        // 00:00 of the meter's clock: yesterday's totals (MQTT_DAY_DATA).
        let day = clock.seconds / 86400, hour = clock.seconds / 3600
        if model.sendsDailyTotals && day > lastDay {
            let midnight = MeterTime(seconds: day * 86400)
            for loop in loopIDs { readings.append([(KPM37Payloads.dailyTopic, KPM37Payloads.daily(id: loop, time: midnight, state: electrical))]) }
        }
        // A new hour: input 1 changes (MQTT_TELEIND on every change).
        if model.hasInputsAndRelay && hour > lastHour {
            inputs ^= 1
            readings.append([(KPM37Payloads.ioTopic, ioPayload(at: clock))])
        }
        lastDay = day
        lastHour = hour
        for reading in readings {
            readingSerial += 1
            var handed = 0
            for (topic, payload) in reading {
                if let mid = publish(topic, payload, qos: settings.qos, isData: true) {
                    readingOfMessage[mid] = readingSerial
                    handed += 1
                }
            }
            if handed > 0 { messagesLeft[readingSerial, default: 0] += handed }
            hooks.readingSent()
        }
    }

    /// Real seconds from `now` until this meter's next data message is due.
    func secondsUntilNextMessage(now: Double) -> Double {
        let next = min(nextRealTime, nextEnergy)
        let clockSeconds = Double(clockBase.seconds) + (now - realBase) * settings.timeScale
        return max(0, (Double(next.seconds) - clockSeconds) / settings.timeScale)
    }

    private func acknowledged(_ mid: Int32) {
        guard let serial = readingOfMessage.removeValue(forKey: mid), let left = messagesLeft[serial] else { return }
        if left > 1 {
            messagesLeft[serial] = left - 1
        } else {
            messagesLeft[serial] = nil
            hooks.readingAcknowledged()
        }
    }

    // MARK: Commands

    private func handle(_ message: MQTTMessage) {
        journal.record("received", message.topic, message.payloadText)
        guard let kind = commandKinds.first(where: { message.topic == $0.rawValue + shortID }) else {
            journal.record("ignored", message.topic, "not a command topic of \(id)")
            return
        }
        if quirks.silent {
            journal.record("ignored", message.topic, "silent meter")
            return
        }
        let decision = MeterCommands.decide(kind: kind, payload: message.payload, id: id, secondsInterval: secondsInterval,
                                            minutesInterval: minutesInterval, failing: quirks.failing)
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
        // Energy up to now belongs to the old settings.
        let clock = clockAt(now)
        electrical.integrate(hours: (now - lastIntegration) * settings.timeScale / 3600, daySecond: clock.secondOfDay)
        lastIntegration = now
        let description: String
        switch effect {
        case .secondsInterval(let value):
            secondsInterval = value
            description = "seconds interval \(value)"
        case .minutesInterval(let value):
            minutesInterval = value
            description = "minutes interval \(value)"
        case .clock(let time):
            clockBase = time
            realBase = now
            description = "clock \(time.compact)"
        case .relay(let on):
            // The output follows the command; its change is reported like any other.
            let changed = relayOn != on
            relayOn = on
            journal.record("applied", id, "relay \(on ? "on" : "off")")
            if changed { publish(KPM37Payloads.ioTopic, ioPayload(at: clock), qos: 1, isData: false) }
            return
        }
        scheduleFromClock(now: now)
        armDataTimer(now: now)
        journal.record("applied", id, description)
    }

    // MARK: Helpers

    /// The command topics this model subscribes to (+ its last 8 characters).
    private var commandKinds: [MeterCommands.Kind] {
        [.setInterval, .setTime, .readInterval] + (quirks.model.hasInputsAndRelay ? [.relay] : [])
    }

    /// `MQTT_TELEIND` with the inputs and the relay as they are now.
    private func ioPayload(at clock: MeterTime) -> String {
        KPM37Payloads.io(id: id, time: clock, inputs: inputs, outputs: relayOn ? 1 : 0)
    }

    /// Hands a message to the connection; its id, or nil when it was refused.
    @discardableResult
    private func publish(_ topic: String, _ payload: String, qos: Int, isData: Bool) -> Int32? {
        do {
            let mid = try connection.publish(topic: topic, payload: Array(payload.utf8), qos: qos, retain: false)
            journal.record("sent", topic, payload, isData: isData)
            return mid
        } catch {
            journal.record("dropped", topic, error.description)
            return nil
        }
    }

    /// The meter clock at real (uptime) second `now`.
    private func clockAt(_ now: Double) -> MeterTime {
        MeterTime(seconds: clockBase.seconds + Int64(((now - realBase) * settings.timeScale).rounded(.down)))
    }

    /// Next due times: the next interval boundaries of the meter clock.
    private func scheduleFromClock(now: Double) {
        let clock = clockAt(now)
        let seconds = Int64(secondsInterval), minutes = Int64(minutesInterval) * 60
        nextRealTime = MeterTime(seconds: clock.floor(to: seconds).seconds + seconds)
        nextEnergy = MeterTime(seconds: clock.floor(to: minutes).seconds + minutes)
    }
}
