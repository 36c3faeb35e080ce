import RuleEngine

/// One golden case of a pack: `tests/NAME.in` replayed with `tests/NAME.yaml`
/// (or `tests/site.yaml`) must print exactly `tests/NAME.out`.
///
/// The replay clock starts at `Replay.defaultClock` unless the input moves it,
/// so a case gives the same bytes on every machine. The output ends with the
/// replay's pending split sets and its summary line.
public struct GoldenCase: Sendable {
    public var name: String
    public var packDirectory: String
    public var inputPath: String
    public var outputPath: String
    public var configPath: String?

    /// The cases of the pack in `directory`, sorted by name.
    public static func discover(in directory: String) -> [GoldenCase] {
        let tests = "\(directory)/tests"
        let files = (FileSystem.list(tests) ?? []).sorted()
        return files.filter { $0.hasSuffix(".in") }.map { file in
            let name = String(file.dropLast(3))
            let own = "\(tests)/\(name).yaml"
            let shared = "\(tests)/site.yaml"
            let config = FileSystem.exists(own) ? own : FileSystem.exists(shared) ? shared : nil
            return GoldenCase(name: name, packDirectory: directory, inputPath: "\(tests)/\(file)",
                              outputPath: "\(tests)/\(name).out", configPath: config)
        }
    }

    /// The recorded expectation, or nil when there is none yet.
    public var expected: String? {
        FileSystem.read(outputPath).map { String(decoding: $0, as: UTF8.self) }
    }

    /// Runs the case; the error is a printable reason (diagnostics or a bad input line).
    /// `build` loads the pack and the case's site config: rulecheck passes the
    /// services' path (`Site.load`), so a case's config is read as a service reads it.
    public func run(origin: Origin, build: (_ rules: String, _ config: String?) throws(DiagnosticReport) -> Program) -> Result<String, GoldenFailure> {
        run(origin: origin) { (rules: String, config: String?) throws(DiagnosticReport) -> ProgramSet in
            ProgramSet(single: try build(rules, config))
        }
    }

    /// Runs the case with every pack `build` loads from its directory: a
    /// pack's cases with that pack, the cases of a directory of packs
    /// (`rules/tests`) with all of them.
    public func run(origin: Origin, buildAll: (_ rules: String, _ config: String?) throws(DiagnosticReport) -> ProgramSet) -> Result<String, GoldenFailure> {
        replay(origin: origin, buildAll: buildAll).map(\.output)
    }

    /// What a case printed, and what in it looks like a mistake unless the case declares it.
    public struct Outcome: Sendable {
        public var output: String
        /// Each an explanation with what to do: a case that forwards nothing
        /// (without `@expect-drops`), a clock off by more than a day (without `@expect-clock-offset`).
        public var suspicions: [String]
    }

    /// A clock offset a case may show without declaring it: a meter a day off is a replay without `@now`.
    public static let largestPlainClockOffset: Int64 = 86_400

    /// Runs the case like `run`, and judges its output.
    public func replay(origin: Origin, buildAll: (_ rules: String, _ config: String?) throws(DiagnosticReport) -> ProgramSet) -> Result<Outcome, GoldenFailure> {
        let programs: ProgramSet
        do throws(DiagnosticReport) {
            programs = try buildAll(packDirectory, configPath)
        } catch {
            return .failure(GoldenFailure(message: error.description))
        }
        guard let input = FileSystem.read(inputPath) else {
            return .failure(GoldenFailure(message: "cannot read \(inputPath)"))
        }
        var replay = Replay(router: PackRouter(programs: programs, origin: origin), now: Replay.instant(Replay.defaultClock)!)
        var out = ""
        do {
            try replay.run(input) { out += $0 + "\n" }
        } catch {
            return .failure(GoldenFailure(message: "\(inputPath): \(error.description)"))
        }
        replay.end { out += $0 + "\n" }
        var suspicions: [String] = []
        if replay.forwarded == 0 && !replay.expectations.contains(.drops) {
            suspicions.append("it forwards no clean message (mistyped ids? a topic no route reads?); "
                              + "if that is the point of the case, add a line '\(Replay.Expectation.drops.rawValue)' to \(inputPath)")
        }
        if replay.largestClockOffset > Self.largestPlainClockOffset && !replay.expectations.contains(.clockOffset) {
            suspicions.append("a meter's clock is off by \(replay.largestClockOffset) s, more than a day (no '@now' near the meters' time?); "
                              + "if that is the point of the case, add a line '\(Replay.Expectation.clockOffset.rawValue)' to \(inputPath)")
        }
        return .success(Outcome(output: out, suspicions: suspicions))
    }
}

public struct GoldenFailure: Error, Sendable, CustomStringConvertible {
    public var message: String
    public var description: String { message }
}
