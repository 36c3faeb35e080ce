import ArgumentParser
import Foundation
import RuleEngine
import RuleTesting
import SiteSettings

struct Run: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Replay a capture (TOPIC JSON per line) through a pack and print what would be published.",
        discussion: """
        Output, one line each: TOPIC PAYLOAD for a message (payload byte for byte); \
        '+ TOPIC PAYLOAD' for a retained one ('+ TOPIC' alone: an empty retained payload); \
        '# drop REASON TOPIC: DETAIL' for a drop (unless --no-drops); at the end, \
        '# pending incomplete TOPIC: DETAIL' for each split set still waiting for parts and \
        '# summary: forwarded N, retained N, dropped N (REASON N, …), pending N'. \
        Input lines '@now yyyyMMddHHmmss' and '@advance SECONDS' move the replay clock. \
        A line may start with its receive time as mosquitto_sub -F '%U %t %p' (Unix time) or \
        -F '%I %t %p' (ISO 8601) writes it; the replay clock then follows the capture. \
        Meters keep local time: the replay converts with this machine's time zone unless \
        --utc-offset, --tz or an '@tz ±HH:MM' line in the input says otherwise.
        """)

    @Option(help: "A rule pack directory, or a directory of packs; repeat for several.")
    var rules: [String]

    @Option(help: "The site config file.")
    var config: String?

    @Option(help: "Replay clock start, yyyyMMddHHmmss local time (default: now).")
    var now: String?

    @Option(help: "The site's UTC offset (±HH:MM) for meters' local clocks (default: this machine's time zone).")
    var utcOffset: String?

    @Option(help: "The site's time zone by name (e.g. Europe/Zurich), instead of this machine's.")
    var tz: String?

    @Flag(help: "Do not print drops.")
    var noDrops = false

    @Argument(help: "The capture file (default: standard input).")
    var capture: String?

    func run() throws {
        let programs: ProgramSet
        do {
            programs = try Site.load(rules: rules, config: config).programs
        } catch {
            print(error.description)
            throw ExitCode(1)
        }
        // Meters keep local time: the site's offset at each moment, as the services take it.
        let zone: @Sendable (Int64) -> Int
        if let utcOffset {
            guard let offset = Replay.utcOffset(utcOffset) else { RuleCheck.fail("--utc-offset expects ±HH:MM") }
            zone = { _ in offset }
        } else {
            guard let timeZone = tz.map({ TimeZone(identifier: $0) }) ?? TimeZone.current else { RuleCheck.fail("unknown time zone '\(tz ?? "")'") }
            zone = { timeZone.secondsFromGMT(for: Date(timeIntervalSince1970: Double($0))) }
        }
        var start: Instant
        if let now {
            guard let t = Replay.instant(now) else { RuleCheck.fail("--now expects yyyyMMddHHmmss") }
            let offset = zone(t.epochMillis / 1000)
            start = Instant(epochMillis: t.epochMillis - Int64(offset) * 1000, utcOffsetSeconds: offset)
        } else {
            let seconds = Date().timeIntervalSince1970
            start = Instant(epochSeconds: seconds, utcOffsetSeconds: zone(Int64(seconds)))
        }
        let input: Data
        if let capture {
            guard let data = FileManager.default.contents(atPath: capture) else { RuleCheck.fail("cannot read \(capture)") }
            input = data
        } else {
            input = FileHandle.standardInput.readDataToEndOfFile()
        }
        var replay = Replay(router: PackRouter(programs: programs, origin: Origin(name: "rulecheck", version: "run")), now: start, zone: zone)
        replay.showDrops = !noDrops
        var out = ""
        out.reserveCapacity(input.count)
        do {
            try replay.run([UInt8](input)) { line in
                out += line
                out += "\n"
                if out.utf8.count > 1 << 16 { FileHandle.standardOutput.write(Data(out.utf8)); out = "" }
            }
        } catch {
            FileHandle.standardOutput.write(Data(out.utf8))
            FileHandle.standardError.write(Data("\(capture ?? "stdin"): \(error.description)\n".utf8))
            throw ExitCode(1)
        }
        replay.end { line in
            out += line
            out += "\n"
        }
        FileHandle.standardOutput.write(Data(out.utf8))
    }
}
