import Foundation
import JSON
import RuleEngine
import SQLite
import Testing
import TestSupport
@testable import Services
@testable import ServicesFixtures

/// Both services' state databases: config-sender's meter records
/// (`config-sender.db`) and the proxy's guarded counters (`counters.db`).
@Suite struct ConfigSenderStateStoreTests {
    func sampleRecords() -> [String: MeterRecord] {
        var r = MeterRecord()
        r.digest = "0123456789abcdef"
        r.settings = ["upload_interval_seconds": 60, "upload_interval_minutes": 5]
        r.acknowledgedDate = "2026-01-12"
        r.acknowledgedAt = 1_768_212_000_000
        r.lastClockSentAt = 1_768_212_000_000
        r.commands["set_clock"] = CommandResult(outcome: .success, value: "20260112110000", date: "2026-01-12",
                                                at: 1_768_212_000_300, operationID: String(repeating: "a", count: 32), message: nil)
        var s = MeterRecord()
        s.lastError = "no reply to set_clock after 4 attempts"
        s.commands["set_clock"] = CommandResult(outcome: .timeout, value: "x", date: "2026-01-12", at: 5, operationID: nil,
                                                message: "no \"reply\"\n")
        return [senderMeterA: r, senderMeterB: s]
    }

    /// `n` meters, each acknowledged with three commands.
    func manyRecords(_ n: Int) -> [String: MeterRecord] {
        var records: [String: MeterRecord] = [:]
        records.reserveCapacity(n)
        for i in 0..<n {
            var r = sampleRecords()[senderMeterA]!
            r.acknowledgedAt = Int64(i)
            for name in ["set_upload_interval_seconds", "set_upload_interval_minutes"] {
                r.commands[name] = CommandResult(outcome: .success, value: "60", date: "2026-01-12", at: Int64(i),
                                                 operationID: String(repeating: "b", count: 32), message: "ok")
            }
            records["33B12\(String(1_000_000_00 + i))"] = r
        }
        return records
    }

    @Test func restartKeepsTheStateAndSqlite3ReadsIt() throws {
        let dir = try senderTemporaryDirectory("sender-state")
        defer { try? FileManager.default.removeItem(at: dir) }
        let store = ConfigStateStore(directory: dir.appendingPathComponent("nested").path)
        #expect(store.pageCacheSetting == nil)
        let first = try store.load(now: senderT0)
        #expect(first.records.isEmpty)
        #expect(first.events.map(\.name) == ["state_new", "state_loaded"])
        // The writer thread's page cache is bounded below SQLite's default of 2 MB.
        #expect(store.pageCacheSetting == -Int64(ConfigStateStore.pageCacheKiB))
        #expect(ConfigStateStore.pageCacheKiB < 2_000)
        try store.save(sampleRecords())
        let (records, events) = try ConfigStateStore(directory: store.directory).load(now: senderT0)
        #expect(records == sampleRecords())
        #expect(events.map(\.name) == ["state_loaded"])
        // What an operator sees.
        let shown = try sqlite3(store.path, "PRAGMA user_version; PRAGMA journal_mode; "
            + "SELECT id, acknowledged_date, settings FROM meters ORDER BY id; SELECT meter, name, result FROM commands ORDER BY meter;")
        #expect(shown == """
            1
            wal
            \(senderMeterA)|2026-01-12|{"upload_interval_minutes":5,"upload_interval_seconds":60}
            \(senderMeterB)||
            \(senderMeterA)|set_clock|success
            \(senderMeterB)|set_clock|timeout

            """)
    }

    @Test func upgradeImportsTheJSONStateFileOnceAndRenamesIt() throws {
        let dir = try senderTemporaryDirectory("sender-state")
        defer { try? FileManager.default.removeItem(at: dir) }
        let store = ConfigStateStore(directory: dir.path)
        // The file exactly as the previous release wrote it, with one bad meter entry.
        var document = legacyStateDocument(sampleRecords()).objectValue!
        var meters = document["meters"]!.objectValue!
        meters["33B0000000000"] = .object(["commands": .object(["set_clock": .object(["result": "maybe"])])])
        document["meters"] = .object(meters)
        try Data(JSONValue.object(document).serialized() + [0x0A]).write(to: URL(fileURLWithPath: store.legacyPath))

        let (records, events) = try store.load(now: senderT0)
        #expect(records == sampleRecords())
        #expect(events.map(\.name) == ["state_new", "state_meter_skipped", "state_imported", "state_loaded"])
        #expect(events.first { $0.name == "state_imported" }?["meters"] == "2")
        #expect(!FileManager.default.fileExists(atPath: store.legacyPath))
        #expect(FileManager.default.fileExists(atPath: store.legacyPath + ".imported"))

        // Once: the next start reads the database alone, and what changed since is kept.
        var changed = records
        changed[senderMeterB]?.lastError = nil
        try store.save(changed)
        let again = try ConfigStateStore(directory: dir.path).load(now: senderT0)
        #expect(again.records == changed)
        #expect(again.events.map(\.name) == ["state_loaded"])
    }

    @Test func theJSONStateFileSkipsABadMeterAndRefusesAnUnknownVersion() throws {
        let text = #"{"version":1,"meters":{"A1":{"digest":"d","acknowledged_date":"2026-01-12","settings":{"x":5},"#
            + #""commands":{"set_clock":{"result":"success","date":"2026-01-12","at_ms":7}}},"B2":{"digest":5}}}"#
        let (records, skipped) = try LegacyStateFile.decode(Array(text.utf8))
        #expect(records.keys.sorted() == ["A1"])
        #expect(records["A1"]?.settings == ["x": 5])
        #expect(records["A1"]?.commands["set_clock"]?.outcome == .success)
        #expect(skipped.map(\.0) == ["B2"] && skipped.first?.1 == "'digest' is not a string")
        #expect(throws: StateStoreError.self) { try LegacyStateFile.decode(Array(#"{"version":2,"meters":{}}"#.utf8)) }
        #expect(throws: StateStoreError.self) { try LegacyStateFile.decode(Array("not json".utf8)) }
    }

    @Test func aDamagedDatabaseIsMovedAsideReportedAndReplaced() throws {
        let dir = try senderTemporaryDirectory("sender-state")
        defer { try? FileManager.default.removeItem(at: dir) }
        // A database whose pages were overwritten, and files that are no database at all.
        let damaged = try damagedDatabase(in: dir)
        for (n, garbage) in [damaged, Data("{\"version\":1,\"meters\":{\"33B".utf8), Data([0, 1, 2, 3] + [UInt8](repeating: 7, count: 5000))].enumerated() {
            let stateDirectory = dir.appendingPathComponent("\(n)").path
            let store = ConfigStateStore(directory: stateDirectory)
            try FileManager.default.createDirectory(atPath: stateDirectory, withIntermediateDirectories: true)
            try garbage.write(to: URL(fileURLWithPath: store.path))
            let (records, events) = try store.load(now: senderT0)
            #expect(records.isEmpty)
            let warning = try #require(events.first { $0.name == "state_corrupt" })
            #expect(warning.level == .warning)
            let aside = try #require(warning["moved_to"])
            #expect(try Data(contentsOf: URL(fileURLWithPath: aside)) == garbage)
            #expect(store.problem?.contains(aside) == true)
            // The fresh database works and the next start is quiet.
            try store.save(sampleRecords())
            let next = ConfigStateStore(directory: stateDirectory)
            #expect(try next.load(now: senderT0).records == sampleRecords())
            #expect(next.problem == nil)
        }
    }

    /// The status says so too, not only the log.
    @Test func aDamagedDatabaseIsInTheStatus() throws {
        let f = try SenderCoreFixture(statusMinIntervalSeconds: 0) { state in
            try Data("not a database, not at all".utf8).write(to: state.appendingPathComponent(ConfigStateStore.fileName))
        }
        f.connect()
        f.core.endOfIteration(at: f.now)
        let problems = try #require(f.lastStatus?["problems"]?.arrayValue)
        #expect(problems.count == 1)
        #expect(problems.first?.stringValue?.contains("moved to") == true)
    }

    @Test func aNewerSchemaIsRefusedAndLeftAlone() throws {
        let dir = try senderTemporaryDirectory("sender-state")
        defer { try? FileManager.default.removeItem(at: dir) }
        let store = ConfigStateStore(directory: dir.path)
        _ = try store.load(now: senderT0)
        try store.save(sampleRecords())
        try SQLiteDatabase(path: store.path).execute("PRAGMA user_version = 7")
        let before = try Data(contentsOf: URL(fileURLWithPath: store.path))
        #expect(throws: StateStoreError.self) { try ConfigStateStore(directory: dir.path).load(now: senderT0) }
        #expect(try Data(contentsOf: URL(fileURLWithPath: store.path)) == before)
        #expect(try sqlite3(store.path, "SELECT count(*) FROM meters") == "2\n")
    }

    /// Migrations run in order from the file's `user_version`, in one transaction.
    @Test func migrationsRunFromTheFilesVersion() throws {
        let dir = try senderTemporaryDirectory("sender-state")
        defer { try? FileManager.default.removeItem(at: dir) }
        let path = dir.appendingPathComponent("m.db").path
        let v1 = ["CREATE TABLE t (a INTEGER)"]
        let created = try StateDatabase.open(path: path, synchronous: "FULL", migrations: v1, now: senderT0)
        #expect(created.foundVersion == 0)
        try created.database.execute("INSERT INTO t VALUES (1)")
        let v2 = v1 + ["ALTER TABLE t ADD COLUMN b TEXT DEFAULT 'x'"]
        let migrated = try StateDatabase.open(path: path, synchronous: "FULL", migrations: v2, now: senderT0)
        #expect(migrated.foundVersion == 1)
        #expect(try migrated.database.text("SELECT a || b FROM t") == "1x")
        #expect(try migrated.database.integer("PRAGMA user_version") == 2)
        // A migration that fails leaves the file at its version.
        let broken = v2 + ["ALTER TABLE t ADD COLUMN c TEXT", "THIS IS NOT SQL"]
        #expect(throws: StateStoreError.self) {
            try StateDatabase.open(path: path, synchronous: "FULL", migrations: broken, now: senderT0)
        }
        #expect(try sqlite3(path, "PRAGMA user_version; SELECT count(*) FROM pragma_table_info('t')") == "2\n2\n")
        // Version 0 of config-sender's own schema: an empty file gets the tables.
        let store = ConfigStateStore(directory: dir.path)
        try Data().write(to: URL(fileURLWithPath: store.path))
        #expect(try store.load(now: senderT0).events.map(\.name) == ["state_new", "state_loaded"])
        #expect(try sqlite3(store.path, "PRAGMA user_version; SELECT count(*) FROM commands") == "1\n0\n")
    }

    /// 10,000 meters: the writer thread writes them in bounded transactions;
    /// afterwards a change writes the rows it names, and only those.
    @Test func writeVolumeFollowsWhatChangedAndBatchesAreBounded() throws {
        let dir = try senderTemporaryDirectory("sender-state")
        defer { try? FileManager.default.removeItem(at: dir) }
        let store = ConfigStateStore(directory: dir.path, batchSize: 1_000)
        _ = try store.load(now: senderT0)
        var records = manyRecords(10_000)
        let start = ContinuousClock.now
        store.submit(records.map { ($0.key, MeterRecordChange(from: nil, to: $0.value)) })
        let handedOver = ContinuousClock.now - start
        #expect(store.flush(seconds: 120))
        print("config-sender state: 10,000 meters handed over in \(handedOver), written in \(ContinuousClock.now - start), rows \(store.rowsWritten)")
        #expect(store.batchesWritten == 10)
        #expect(store.rowsWritten == 40_000)  // a meter row and three command rows each

        func rows(_ change: () -> Void) throws -> Int64 {
            let before = store.rowsWritten, old = records
            change()
            try store.write(records.keys.filter { old[$0] != records[$0] }.map { ($0, MeterRecordChange(from: old[$0], to: records[$0])) }
                + old.keys.filter { records[$0] == nil }.map { ($0, MeterRecordChange(from: old[$0], to: nil)) })
            return store.rowsWritten - before
        }
        let id = records.keys.sorted()[4_321]
        #expect(try rows {} == 0)
        #expect(try rows { records[id]?.acknowledgedDate = "2026-01-13" } == 1)
        #expect(try rows { records[id]?.commands["set_clock"]?.at += 1 } == 1)
        #expect(try rows { records[id]?.commands["set_clock"] = nil } == 1)
        #expect(try rows { records[id] = nil } == 3)  // the meter and its two remaining commands
        #expect(try ConfigStateStore.readRecords(path: store.path) == records)
    }

    /// Changes of one meter handed over before the writer took them are merged:
    /// what waits is bounded by the number of meters, and the rows of both are written.
    @Test func changesWaitingForTheWriterAreMerged() throws {
        let dir = try senderTemporaryDirectory("sender-state")
        defer { try? FileManager.default.removeItem(at: dir) }
        let store = ConfigStateStore(directory: dir.path, writeDelaySeconds: 0.3)
        _ = try store.load(now: senderT0)
        let a = sampleRecords()[senderMeterA]!
        var b = a
        b.commands["set_upload_interval_seconds"] = CommandResult(outcome: .success, value: "30", date: "2026-01-12", at: 9,
                                                                  operationID: nil, message: nil)
        var c = b
        c.lastError = "a sentence"
        store.submit([("33B0000000001", MeterRecordChange(from: nil, to: a))])  // taken at once, written slowly
        for (old, new) in [(nil, a), (a, b), (b, c)] {
            for i in 2...500 { store.submit([("33B0000000\(String(1000 + i).suffix(3))", MeterRecordChange(from: old, to: new))]) }
        }
        // 1,498 changes of 500 meters: at most 500 being written and 500 waiting.
        #expect(store.backlog <= 1_000)
        #expect(store.flush(seconds: 60))
        let saved = try ConfigStateStore.readRecords(path: store.path)
        #expect(saved.count == 500)
        #expect(saved["33B0000000002"] == c)
        #expect(saved["33B0000000001"] == a)
    }
}

extension ConfigStateStore {
    /// Writes `records` whole, at once.
    func save(_ records: [String: MeterRecord]) throws(StateStoreError) {
        try write(records.map { ($0.key, MeterRecordChange(from: nil, to: $0.value)) })
    }
}

@Suite struct ProxyCounterStoreTests {
    let t0 = Instant(epochMillis: 1_768_212_000_000)

    func counters(_ meters: Int) -> [CounterSnapshot] {
        (0..<meters).flatMap { i in
            ["active_energy", "reverse_energy"].map { CounterSnapshot(device: "33B12\(1_000_000_00 + i)", field: $0, value: Double(i) + 0.5, time: 1_768_000_000) }
        }
    }

    @Test func upgradeImportsCountersJSONOnceAndRenamesIt() throws {
        let dir = try senderTemporaryDirectory("proxy-state")
        defer { try? FileManager.default.removeItem(at: dir) }
        let saved = counters(3)
        // counters.json exactly as the previous release wrote it.
        let document: JSONValue = [
            "version": 1,
            "counters": .array(saved.map { c in
                ["device": .string(c.device), "field": .string(c.field), "value": .real(c.value), "time": .integer(c.time)]
            }),
        ]
        let store = CounterStore(directory: dir.path)
        try Data(document.serialized() + [0x0A]).write(to: URL(fileURLWithPath: store.legacyPath))
        let loaded = try store.load(now: t0)
        #expect(loaded.counters == saved)
        #expect(loaded.imported?.count == 6)
        #expect(loaded.imported?.renamedTo == store.legacyPath + ".imported")
        #expect(!FileManager.default.fileExists(atPath: store.legacyPath))
        #expect(loaded.problem == nil && loaded.movedAside == nil)

        var changed = saved
        changed[0].value = 99
        try store.save(changed)
        let again = try CounterStore(directory: dir.path).load(now: t0)
        #expect(again.imported == nil)
        #expect(again.counters == changed)
        #expect(try sqlite3(store.path, "SELECT device, field, value FROM counters ORDER BY device, field LIMIT 1")
            == "33B12100000000|active_energy|99.0\n")
    }

    @Test func aDamagedDatabaseIsMovedAsideAndReported() throws {
        let dir = try senderTemporaryDirectory("proxy-state")
        defer { try? FileManager.default.removeItem(at: dir) }
        let store = CounterStore(directory: dir.path)
        let garbage = try damagedDatabase(in: dir)
        try garbage.write(to: URL(fileURLWithPath: store.path))
        let loaded = try store.load(now: t0)
        #expect(loaded.counters.isEmpty)
        let aside = try #require(loaded.movedAside)
        #expect(aside.path == store.path + ".corrupt-\(t0.epochMillis)")
        #expect(try Data(contentsOf: URL(fileURLWithPath: aside.path)) == garbage)
        try store.save(counters(2))
        #expect(try CounterStore(directory: dir.path).load(now: t0).counters == counters(2))
    }

    @Test func writeVolumeFollowsWhatChangedAndBatchesAreBounded() throws {
        let dir = try senderTemporaryDirectory("proxy-state")
        defer { try? FileManager.default.removeItem(at: dir) }
        let store = CounterStore(directory: dir.path)
        _ = try store.load(now: t0)
        var all = counters(10_000)
        let start = ContinuousClock.now
        #expect(store.submit(CounterChanges(changed: all)) == 20_000)
        let handedOver = ContinuousClock.now - start
        #expect(store.flush(seconds: 60))
        #expect(store.batchesWritten == 4, "20,000 rows in transactions of at most 5,000")
        #expect(store.rowsWritten == 20_000)
        print("proxy counters: 10,000 meters (20,000 rows) handed over in \(handedOver), written in \(store.batchesWritten) transactions")
        #expect(handedOver < .seconds(2), "handing over must not wait for the disk (the machine may be loaded)")
        #expect(store.submit(CounterChanges()) == 0)
        let before = store.rowsWritten
        all[12_345].value += 1
        #expect(store.submit(CounterChanges(changed: [all[12_345]])) == 1)
        #expect(store.flush(seconds: 10))
        #expect(store.rowsWritten - before == 1)
        let gone = all.remove(at: 7)
        #expect(store.submit(CounterChanges(forgotten: [.init(device: gone.device, field: gone.field)])) == 1)
        #expect(store.flush(seconds: 10))
        #expect(store.rowsWritten - before == 2)
        #expect(store.takeFailures().isEmpty)
        #expect(try CounterStore(directory: dir.path).load(now: t0).counters == all.sorted { ($0.device, $0.field) < ($1.device, $1.field) })
    }
}

extension CounterStore {
    /// Hands `counters` over and waits until they are written.
    func save(_ counters: [CounterSnapshot]) throws {
        submit(CounterChanges(changed: counters))
        guard flush(seconds: 30) else { throw StateStoreError(takeFailures().last ?? "not written within 30 s") }
    }
}

/// A real database of a few hundred rows whose pages past the first were overwritten.
func damagedDatabase(in dir: URL) throws -> Data {
    let path = dir.appendingPathComponent("damaged-source.db").path
    defer { for s in ["", "-wal", "-shm"] { try? FileManager.default.removeItem(atPath: path + s) } }
    do {
        let database = try SQLiteDatabase(path: path)
        try database.execute("CREATE TABLE t (k TEXT PRIMARY KEY, v TEXT); PRAGMA user_version = 1")
        let insert = try database.prepare("INSERT INTO t VALUES (?, ?)")
        for i in 0..<500 { try insert.run([.text("key \(i)"), .text(String(repeating: "v", count: 100))]) }
    }
    var bytes = [UInt8](try Data(contentsOf: URL(fileURLWithPath: path)))
    #expect(bytes.count > 16_384)
    for i in 4096..<12_288 { bytes[i] = UInt8(truncatingIfNeeded: i &* 7) }
    return Data(bytes)
}

/// `sqlite3 PATH SQL`'s output: what an operator reads.
func sqlite3(_ path: String, _ sql: String) throws -> String {
    let process = Process()
    process.executableURL = URL(fileURLWithPath: "/usr/bin/env")
    process.arguments = ["sqlite3", path, sql]
    let pipe = Pipe()
    process.standardOutput = pipe
    try process.run()
    let output = pipe.fileHandleForReading.readDataToEndOfFile()
    process.waitUntilExit()
    return String(decoding: output, as: UTF8.self)
}

/// The state file of the previous release, written the way it wrote it
/// (kept verbatim: the upgrade reads what deployed sites have; the
/// integration tests read the database in this shape too).
func legacyStateDocument(_ records: [String: MeterRecord]) -> JSONValue {
    var meters: [(String, JSONValue)] = []
    for id in records.keys.sorted() {
        let r = records[id]!
        var m = JSONObject()
        if let v = r.digest { m["digest"] = .string(v) }
        if !r.settings.isEmpty {
            m["settings"] = .object(JSONObject(r.settings.keys.sorted().map { ($0, JSONValue.integer(Int64(r.settings[$0]!))) }))
        }
        if let v = r.acknowledgedDate { m["acknowledged_date"] = .string(v) }
        if let v = r.acknowledgedAt { m["acknowledged_at_ms"] = .integer(v) }
        if let v = r.lastClockSentAt { m["last_clock_sent_at_ms"] = .integer(v) }
        if let v = r.lastError { m["last_error"] = .string(v) }
        var commands = JSONObject()
        for name in r.commands.keys.sorted() {
            let c = r.commands[name]!
            var o = JSONObject()
            o["result"] = .string(c.outcome.rawValue)
            if let v = c.value { o["value"] = .string(v) }
            o["date"] = .string(c.date)
            o["at_ms"] = .integer(c.at)
            if let v = c.operationID { o["oprid"] = .string(v) }
            if let v = c.message { o["msg"] = .string(v) }
            commands[name] = .object(o)
        }
        m["commands"] = .object(commands)
        meters.append((id, .object(m)))
    }
    return .object(["version": .integer(1), "meters": .object(JSONObject(distinctKeys: meters))])
}

/// `config-sender show [ID]` and `kpm33b-proxy show [ID]`, run as an operator runs them.
@Suite struct StateShowTests {
    /// The binary's exit status, standard output and standard error.
    func run(_ product: String, _ arguments: [String]) throws -> (status: Int32, out: String, err: String) {
        let binary = try #require(builtProduct(named: product), "\(product) is not built")
        let process = Process()
        process.executableURL = URL(fileURLWithPath: binary)
        process.arguments = arguments
        let out = Pipe(), err = Pipe()
        process.standardOutput = out
        process.standardError = err
        try process.run()
        let output = out.fileHandleForReading.readDataToEndOfFile(), error = err.fileHandleForReading.readDataToEndOfFile()
        process.waitUntilExit()
        return (process.terminationStatus, String(decoding: output, as: UTF8.self), String(decoding: error, as: UTF8.self))
    }

    @Test func configSenderShowsEveryMeterOneMeterAndJSON() throws {
        let dir = try senderTemporaryDirectory("sender-show")
        defer { try? FileManager.default.removeItem(at: dir) }
        let store = ConfigStateStore(directory: dir.path)
        _ = try store.load(now: senderT0)
        let records = ConfigSenderStateStoreTests().sampleRecords()
        try store.save(records)

        let all = try run("config-sender", ["show", "--state-dir", dir.path])
        #expect(all.status == 0)
        let lines = all.out.split(separator: "\n")
        #expect(lines.count == 4)
        #expect(lines[0].hasPrefix("METER          ACKNOWLEDGED  SETTINGS"))
        #expect(lines[1].hasPrefix("\(senderMeterA)  2026-01-12    upload_interval_minutes=5,upload_interval_seconds=60  set_clock=success"))
        #expect(lines[2].hasPrefix("\(senderMeterB)  -") && lines[2].hasSuffix("set_clock=timeout  no reply to set_clock after 4 attempts"))
        #expect(lines[3].hasPrefix("2 meters, 1 with an error"))

        let one = try run("config-sender", ["show", senderMeterA, "--state-dir", dir.path])
        #expect(one.status == 0)
        #expect(one.out.contains("acknowledged     2026-01-12 (2026-01-12 10:00:00 UTC)"))
        #expect(one.out.contains("set_clock  success  20260112110000  2026-01-12  2026-01-12 10:00:00 UTC  \(String(repeating: "a", count: 32))"))

        let json = try run("config-sender", ["show", "--json", "--state-dir", dir.path])
        #expect(json.status == 0)
        let objects = try json.out.split(separator: "\n").map { try JSONValue.parse(Array($0.utf8)) }
        #expect(objects.map { $0["id"]?.stringValue } == [senderMeterA, senderMeterB])
        #expect(objects[1]["commands"]?["set_clock"]?["msg"]?.stringValue == "no \"reply\"\n")
        #expect(objects[0]["settings"]?["upload_interval_seconds"]?.intValue == 60)

        let unknown = try run("config-sender", ["show", "33B0000000000", "--state-dir", dir.path])
        #expect(unknown.status == 1 && unknown.out.isEmpty)
        #expect(unknown.err.contains("no record of meter 33B0000000000"))
        let missing = try run("config-sender", ["show", "--state-dir", dir.appendingPathComponent("nowhere").path])
        #expect(missing.status == 2 && missing.err.contains("cannot read the state database"))
    }

    @Test func proxyShowsItsCounters() throws {
        let dir = try senderTemporaryDirectory("proxy-show")
        defer { try? FileManager.default.removeItem(at: dir) }
        let store = CounterStore(directory: dir.path)
        _ = try store.load(now: Instant(epochMillis: 0))
        try store.save(ProxyCounterStoreTests().counters(2))

        let all = try run("kpm33b-proxy", ["show", "--state-dir", dir.path])
        #expect(all.status == 0)
        #expect(all.out == """
            METER           FIELD           LAST FORWARDED  METER'S CLOCK
            33B12100000000  active_energy   0.5             2026-01-09 23:06:40
            33B12100000000  reverse_energy  0.5             2026-01-09 23:06:40
            33B12100000001  active_energy   1.5             2026-01-09 23:06:40
            33B12100000001  reverse_energy  1.5             2026-01-09 23:06:40
            2 meters, 4 guarded counters (\(dir.path)/counters.db)

            """)
        let json = try run("kpm33b-proxy", ["show", "33B12100000001", "--json", "--state-dir", dir.path])
        #expect(json.status == 0)
        let object = try JSONValue.parse(Array(json.out.utf8))
        #expect(object["counters"]?["reverse_energy"]?["value"]?.doubleValue == 1.5)
        #expect(object["counters"]?["active_energy"]?["time"]?.intValue == 1_768_000_000)
        let unknown = try run("kpm33b-proxy", ["show", "33B0000000000", "--state-dir", dir.path])
        #expect(unknown.status == 1 && unknown.err.contains("no counter of meter 33B0000000000"))
    }
}
