import ArgumentParser
import Foundation
import MQTT

@main
struct MeterSim: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "meter-sim",
        abstract: "A fleet of simulated Compere KPM33B energy meters talking MQTT.",
        discussion: """
        Each meter connects with client id = its meter id, publishes MQTT_RT_DATA every \
        --seconds and MQTT_ENY_NOW every --minutes of its own clock (payloads written byte \
        for byte like a real KPM33B), and answers the platform's commands on \
        MQTT_COMMOD_SET_<last 8>, MQTT_SETTIME_<last 8> and MQTT_COMMOD_READ_<last 8>. \
        Events go to standard output, one per line; --journal writes them to a file too. \
        All meters share one event-loop thread (epoll), one MQTT connection each; the \
        descriptor limit is raised to what the fleet needs (3 per meter). The final line \
        counts readings acknowledged by the broker; the exit status is 1 when any meter \
        never connected.
        """)

    @Option(help: "Broker URL: mqtt://HOST[:PORT] or mqtts://HOST[:PORT].")
    var broker = "mqtt://127.0.0.1:1883"

    @Option(help: "MQTT username for every meter.")
    var username: String?

    @Flag(help: "Use the last 8 characters of each meter id as its username (what the broker ACL expects).")
    var usernameFromId = false

    @Option(help: ArgumentHelp("Read the password from this environment variable.", valueName: "NAME"))
    var passwordEnv: String?

    @Option(help: ArgumentHelp("Read the password from this file (one trailing newline is dropped).", valueName: "PATH"))
    var passwordFile: String?

    @Option(help: ArgumentHelp("CA certificate file for mqtts:// (default: the system's CAs).", valueName: "PATH"))
    var cafile: String?

    @Option(help: "The model: kpm33b, kpm37 (split readings, daily totals, inputs, relay) or kpm312 (4 loops under ids base +0…+3, daily totals).")
    var model = "kpm33b"

    @Option(help: ArgumentHelp("The meters' clock at start, local time (default: now); a set-clock command corrects it.", valueName: "yyyyMMddHHmmss"))
    var clock: String?

    @Option(help: "Number of meters, with ids 33B1225950027, 33B1225950028, ...")
    var meters: Int?

    @Option(help: ArgumentHelp("Comma-separated meter ids (13 characters of 0-9 and A-Z).", valueName: "A,B,..."))
    var ids: String?

    @Option(help: "Initial MQTT_RT_DATA interval in seconds (30, 60, 300, 600, 900, 1200, 1800 or 3600).")
    var seconds = 60

    @Option(help: "Initial MQTT_ENY_NOW interval in minutes (1, 5, 10, 15, 20, 30, 60 or 1440).")
    var minutes = 1

    @Option(help: "Run the meters' clocks this many times faster (60: a 60 s interval every real second).")
    var timeScale = 1.0

    @Option(help: "Share of data messages whose values are all zero (0...1).")
    var zeroRate = 0.0

    @Option(help: "Share of data messages sent twice, byte for byte (0...1).")
    var duplicateRate = 0.0

    @Option(help: ArgumentHelp("Meters whose clock says 2005 until they receive a set-clock command (repeatable or comma-separated).", valueName: "ID"))
    var wrongClock: [String] = []

    @Option(help: ArgumentHelp("Meters that split MQTT_RT_DATA into 9 parts like a KPM37.", valueName: "ID,..."))
    var splitIds: String?

    @Option(help: ArgumentHelp("Meters that never answer a command.", valueName: "ID,..."))
    var silentIds: String?

    @Option(help: ArgumentHelp("Meters that answer every command with code 02.", valueName: "ID,..."))
    var failIds: String?

    @Option(help: ArgumentHelp("Also write every event to this file, without timestamps.", valueName: "FILE"))
    var journal: String?

    @Option(name: .customLong("for"), help: ArgumentHelp("Stop after this many seconds.", valueName: "SECONDS"))
    var runSeconds: Double?

    @Option(help: "Stop after this many data readings (all meters; a split reading counts once, a duplicate not).")
    var count: Int?

    @Option(help: "QoS of data messages (0 or 1; replies always use 1).")
    var qos = 1

    @Option(help: "Seed for readings and quirks, to repeat a run.")
    var seed: UInt64?

    @Option(help: "Meters that start connecting per second (0: all at once, like a site after a power cut).")
    var connectRate = 0.0

    @Flag(help: "Leave data messages off standard output (the journal still has them).")
    var quiet = false

    // MARK: Validation

    /// 13 characters of 0-9 and A-Z.
    static func isMeterID(_ id: String) -> Bool {
        id.utf8.count == 13 && id.utf8.allSatisfy { (0x30...0x39).contains($0) || (0x41...0x5A).contains($0) }
    }

    func meterIDs() throws -> [String] {
        if let ids {
            let list = Self.list(ids)
            if let meters, meters != list.count {
                throw ValidationError("--meters \(meters) does not match the \(list.count) ids of --ids")
            }
            return list
        }
        let n = meters ?? 1
        return (0..<n).map { "33B" + String(1_225_950_027 + $0) }
    }

    static func list(_ text: String?) -> [String] {
        (text ?? "").split(separator: ",").map { $0.trimmingCharacters(in: .whitespaces) }.filter { !$0.isEmpty }
    }

    func validate() throws {
        _ = try MQTTEndpoint.parse(broker)
        if let meters, meters < 1 { throw ValidationError("--meters must be at least 1") }
        if let clock, MeterTime(compact: clock) == nil { throw ValidationError("--clock expects yyyyMMddHHmmss") }
        guard MeterModel(rawValue: model) != nil else {
            throw ValidationError("--model must be one of \(MeterModel.allCases.map(\.rawValue).joined(separator: ", "))")
        }
        let all = try meterIDs()
        guard !all.isEmpty else { throw ValidationError("no meter ids") }
        for id in all where !Self.isMeterID(id) {
            throw ValidationError("meter id '\(id)' is not 13 characters of 0-9 and A-Z")
        }
        if Set(all).count != all.count { throw ValidationError("duplicate meter ids") }
        let known = Set(all)
        for (option, ids) in [("--wrong-clock", wrongClock.flatMap { Self.list($0) }), ("--split-ids", Self.list(splitIds)),
                              ("--silent-ids", Self.list(silentIds)), ("--fail-ids", Self.list(failIds))] {
            for id in ids where !known.contains(id) {
                throw ValidationError("\(option): '\(id)' is not one of the simulated meters")
            }
        }
        guard MeterCommands.allowedSeconds.contains(seconds) else {
            throw ValidationError("--seconds must be one of \(MeterCommands.allowedSeconds.map(String.init).joined(separator: ", "))")
        }
        guard MeterCommands.allowedMinutes.contains(minutes) else {
            throw ValidationError("--minutes must be one of \(MeterCommands.allowedMinutes.map(String.init).joined(separator: ", "))")
        }
        guard timeScale > 0, timeScale <= 100_000 else { throw ValidationError("--time-scale must be in (0, 100000]") }
        guard (0...1).contains(zeroRate), (0...1).contains(duplicateRate) else {
            throw ValidationError("--zero-rate and --duplicate-rate must be between 0 and 1")
        }
        guard qos == 0 || qos == 1 else { throw ValidationError("--qos must be 0 or 1") }
        if passwordEnv != nil && passwordFile != nil {
            throw ValidationError("give --password-env or --password-file, not both")
        }
        if username != nil && usernameFromId { throw ValidationError("give --username or --username-from-id, not both") }
        if let runSeconds, runSeconds <= 0 { throw ValidationError("--for must be positive") }
        if let count, count < 1 { throw ValidationError("--count must be at least 1") }
        guard connectRate >= 0 else { throw ValidationError("--connect-rate must not be negative") }
    }

    func resolvePassword() throws -> String? {
        if let name = passwordEnv {
            guard let value = ProcessInfo.processInfo.environment[name] else {
                throw ValidationError("environment variable \(name) (--password-env) is not set")
            }
            return value
        }
        if let path = passwordFile {
            guard let data = FileManager.default.contents(atPath: path), var text = String(data: data, encoding: .utf8) else {
                throw ValidationError("cannot read the password file \(path)")
            }
            if text.hasSuffix("\n") { text.removeLast() }
            if text.hasSuffix("\r") { text.removeLast() }
            return text
        }
        return nil
    }

    // MARK: Run

    func run() throws {
        let endpoint = try MQTTEndpoint.parse(broker)
        let password = try resolvePassword()
        let ids = try meterIDs()
        // One connection per meter: its socket, and libmosquitto's socket pair
        // unless the client could drop it; plus the journal, the standard
        // streams, epoll and spares. Raised for the worst case first, checked
        // for what the clients really hold before anything connects.
        _ = DescriptorLimit.raise(to: ids.count * DescriptorLimit.perClient + 64)
        let journal = try EventLog(path: self.journal, quiet: quiet)
        let settings = SimulationSettings(timeScale: timeScale, qos: qos, zeroRate: zeroRate, duplicateRate: duplicateRate)
        let baseSeed = seed ?? UInt64.random(in: 0...UInt64.max)
        let wrong = Set(wrongClock.flatMap { Self.list($0) }), split = Set(Self.list(splitIds))
        let silent = Set(Self.list(silentIds)), failing = Set(Self.list(failIds))

        let loop = try EventLoop()
        let start = ProcessInfo.processInfo.systemUptime
        var meters: [SimulatedMeter] = []
        for (index, id) in ids.enumerated() {
            var options = MQTTOptions(clientID: id, cleanSession: true, protocolVersion: .v311, keepAliveSeconds: 60)
            options.username = usernameFromId ? String(id.suffix(8)) : username
            options.password = password
            if let cafile { options.tls = MQTTTLS(caFile: cafile) }
            let quirks = SimulatedMeter.Quirks(split: split.contains(id), wrongClock: wrong.contains(id),
                                               silent: silent.contains(id), failing: failing.contains(id),
                                               model: MeterModel(rawValue: model) ?? .kpm33b,
                                               startClock: clock.flatMap { MeterTime(compact: $0) })
            meters.append(try SimulatedMeter(
                id: id, quirks: quirks, secondsInterval: seconds, minutesInterval: minutes, loop: loop, endpoint: endpoint,
                options: options, settings: settings, journal: journal,
                seed: baseSeed &+ UInt64(index) &* 0x9E37_79B9_7F4A_7C15, now: start))
        }
        let descriptors = meters.reduce(64) { $0 + ($1.connection.holdsSocketPair ? 3 : 1) }
        let limit = DescriptorLimit.raise(to: descriptors)
        guard limit.isEnough else {
            FileHandle.standardError.write(Data("meter-sim: cannot simulate \(ids.count) meters: \(limit)\n".utf8))
            throw ExitCode(1)
        }
        let fleet = Fleet(meters: meters, loop: loop, journal: journal, count: count, connectRate: connectRate, start: start)

        let signalSources = [SIGINT, SIGTERM].map { number -> DispatchSourceSignal in
            signal(number, SIG_IGN)
            let source = DispatchSource.makeSignalSource(signal: number, queue: .global())
            source.setEventHandler {
                loop.execute { fleet.stop("signal \(number == SIGINT ? "SIGINT" : "SIGTERM")") }
            }
            source.resume()
            return source
        }
        defer { signalSources.forEach { $0.cancel() } }

        journal.record("started", "\(meters.count) meters", "broker \(endpoint) scale \(timeScale) \(limit)")
        let runSeconds = self.runSeconds
        loop.execute {
            do {
                try fleet.start()
            } catch {
                fleet.stop("start failed: \(error)")
                return
            }
            if let runSeconds { loop.schedule(after: runSeconds) { fleet.stop("ran \(runSeconds) s") } }
        }
        loop.run()

        let summary = fleet.summary()
        journal.record("stopped", fleet.stopReason ?? "", summary)
        var failed = false
        if fleet.neverConnected > 0 {
            let examples = meters.filter { !$0.everConnected }.prefix(3)
                .map { "\($0.id): \($0.lastFailure ?? "no answer from the broker")" }.joined(separator: "; ")
            let text = "\(fleet.neverConnected) of \(meters.count) meters never connected (\(examples))"
            journal.record("failed", text)
            FileHandle.standardError.write(Data("meter-sim: \(text)\n".utf8))
            failed = true
        }
        journal.close()
        if failed { throw ExitCode(1) }
    }
}
