// swift-tools-version:6.0
import PackageDescription

// Four C libraries, each reached through one system library target (pkg-config)
// and wrapped by exactly one small Swift target; nothing above the adapters
// imports a C module. (engine-bench's simdjson baseline, a C++ library, is
// reached the same way through a C++ target with a C interface.)
// Dynamic exclusivity checks (swift_beginAccess per access to a class's stored
// property) cost about 7 % of the proxy's instructions per reading (tools/bench
// --scenario cost). They are off in release builds of the targets on the
// proxy's hot path, each single-threaded by construction (the engine and the
// journal are fed from one thread; MQTT's and the services' state belongs to
// the event loop's thread); debug builds, which the tests run, keep them.
let uncheckedExclusivity: [SwiftSetting] = [.unsafeFlags(["-enforce-exclusivity=unchecked"], .when(configuration: .release))]

let package = Package(
    name: "kpm33b-proxy",
    platforms: [.macOS(.v15)],
    products: [
        .executable(name: "rulecheck", targets: ["rulecheck"]),
        .executable(name: "kpm33b-proxy", targets: ["kpm33b-proxy"]),
        .executable(name: "config-sender", targets: ["config-sender"]),
        .executable(name: "meter-sim", targets: ["meter-sim"]),
        .executable(name: "engine-bench", targets: ["engine-bench"]),
        .executable(name: "mqtt-load", targets: ["mqtt-load"]),
        .executable(name: "journal-bench", targets: ["journal-bench"]),
        .executable(name: "mqtt-forward", targets: ["mqtt-forward"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.5.0"),
    ],
    targets: [
        // Sources/ groups the targets by layer; dependencies point down only:
        // Products → Services → Engine → Libraries and Adapters. Development
        // holds what is not shipped.

        // Adapters: the C libraries (Debian: libmosquitto-dev, libyaml-dev,
        // libjansson-dev, libsqlite3-dev), each through one system library target.
        .systemLibrary(name: "CMosquitto", path: "Sources/Adapters/CMosquitto", pkgConfig: "libmosquitto",
                       providers: [.apt(["libmosquitto-dev"]), .brew(["mosquitto"])]),
        .systemLibrary(name: "CYAML", path: "Sources/Adapters/CYAML", pkgConfig: "yaml-0.1",
                       providers: [.apt(["libyaml-dev"]), .brew(["libyaml"])]),
        .systemLibrary(name: "CJansson", path: "Sources/Adapters/CJansson", pkgConfig: "jansson",
                       providers: [.apt(["libjansson-dev"]), .brew(["jansson"])]),
        .systemLibrary(name: "CSQLite", path: "Sources/Adapters/CSQLite", pkgConfig: "sqlite3",
                       providers: [.apt(["libsqlite3-dev"]), .brew(["sqlite"])]),

        // Libraries (pure Swift). What may stand in an MQTT topic: one copy of
        // each rule, for the engine and the MQTT adapter alike.
        .target(name: "Topics", path: "Sources/Libraries/Topics"),

        // The monotonic clock and a min-heap (timers, deadlines): Glibc only, so
        // that pure code measuring time (config-sender's planner) needs no adapter.
        .target(name: "Clock", path: "Sources/Libraries/Clock"),

        // Adapters, one Swift target per C library. YAML: libyaml's events as a
        // tree with each node's file position (rule packs, the site config).
        .target(name: "YAML", dependencies: ["CYAML"], path: "Sources/Adapters/YAML"),
        // JSON: jansson behind a value type (parsing what the services read).
        .target(name: "JSON", dependencies: ["CJansson"], path: "Sources/Adapters/JSON"),
        // MQTT: one client (`MQTTClient`) on an epoll event loop (`EventLoop`),
        // for the services, the tools and the tests alike; its loop-bound
        // objects check in debug builds that they run on their loop.
        .target(name: "MQTT", dependencies: ["CMosquitto", "Topics", "Clock"], path: "Sources/Adapters/MQTT", swiftSettings: uncheckedExclusivity),
        // SQLite: connections, statements and transactions for the state databases.
        .target(name: "SQLite", dependencies: ["CSQLite"], path: "Sources/Adapters/SQLite"),

        // Engine. The rule engine: packs and the site config loaded, checked and
        // compiled into a matcher; pure, no sockets, clocks, threads or randomness.
        .target(name: "RuleEngine", dependencies: ["YAML", "Topics"], path: "Sources/Engine/RuleEngine", swiftSettings: uncheckedExclusivity),

        // Libraries. The CRC-32C instruction (SSE4.2), which Swift cannot emit: one C
        // function compiled for it and a cpuid check; the journal falls back to its
        // tables on a CPU without it. DWARF 4: valgrind 3.19 (tools/bench's cost
        // scenario) refuses a binary with clang's default DWARF 5.
        .target(name: "CCRC32C", path: "Sources/Libraries/CCRC32C", cSettings: [.unsafeFlags(["-gdwarf-4"])]),
        // Libraries. The proxy's crash-safe outgoing-message journal: Glibc only, no Foundation.
        .target(name: "Journal", dependencies: ["CCRC32C"], path: "Sources/Libraries/Journal", swiftSettings: uncheckedExclusivity),

        // Engine. The services' settings in the site config (brokers, TLS,
        // passwords, journal, timers), read from the engine's parse of the same
        // file; which changed settings a reload applies (`ReloadPolicy`).
        .target(name: "SiteSettings", dependencies: ["RuleEngine", "Topics", "YAML", "Journal"], path: "Sources/Engine/SiteSettings"),

        // Engine. Golden cases and capture replay: rulecheck's and the tests', not the services'.
        .target(name: "RuleTesting", dependencies: ["RuleEngine"], path: "Sources/Engine/RuleTesting"),

        // Services: the host both services run on (loop, clients, signals,
        // reload, shutdown phases, systemd), the proxy's and config-sender's
        // cores (events in, actions out), their state databases, and one type per
        // message the services and Home Assistant exchange.
        .target(name: "Services", dependencies: [
            "RuleEngine", "SiteSettings", "MQTT", "Clock", "JSON", "Journal", "SQLite",
            .product(name: "ArgumentParser", package: "swift-argument-parser")], swiftSettings: uncheckedExclusivity),

        // Products: the command lines a site runs. rulecheck: lint, golden tests
        // and new packs for pack authors and CI.
        .executableTarget(name: "rulecheck", dependencies: [
            "RuleEngine", "RuleTesting", "SiteSettings", .product(name: "ArgumentParser", package: "swift-argument-parser")], path: "Sources/Products/rulecheck"),
        // The data and discovery flow (and `retire`, `show`, dead letters).
        .executableTarget(name: "kpm33b-proxy", dependencies: [
            "Services", .product(name: "ArgumentParser", package: "swift-argument-parser")], path: "Sources/Products/kpm33b-proxy"),
        // The configuration flow (and `show`).
        .executableTarget(name: "config-sender", dependencies: [
            "Services", .product(name: "ArgumentParser", package: "swift-argument-parser")], path: "Sources/Products/config-sender"),
        // Development (not shipped). Simulated meters that follow the protocol.
        .executableTarget(name: "meter-sim", dependencies: [
            "MQTT", "JSON", .product(name: "ArgumentParser", package: "swift-argument-parser")], path: "Sources/Development/meter-sim"),
        // engine-bench's baseline: jansson used the way a C program uses it,
        // through the JSON adapter (which alone imports CJansson).
        .target(name: "JanssonBaseline", dependencies: ["JSON"], path: "Sources/Development/JanssonBaseline"),
        // Its strongest baseline: simdjson's on-demand API (Debian libsimdjson-dev,
        // C++ only) in a small C++ target with a C interface, wrapped by one Swift target.
        .target(name: "CSimdjsonBaseline", path: "Sources/Development/CSimdjsonBaseline",
                cxxSettings: [.define("SIMDJSON_THREADS_ENABLED", to: "1"), .define("NDEBUG")],
                linkerSettings: [.linkedLibrary("simdjson")]),
        // Its Swift face: the same per-message work as the engine, on the same bytes.
        .target(name: "SimdjsonBaseline", dependencies: ["CSimdjsonBaseline"], path: "Sources/Development/SimdjsonBaseline"),
        // The engine against both baselines, as ratios measured in one run.
        .executableTarget(name: "engine-bench", dependencies: ["RuleEngine", "JanssonBaseline", "SimdjsonBaseline"], path: "Sources/Development/engine-bench"),
        // End-to-end load generator and counting subscriber for tools/bench.
        .executableTarget(name: "mqtt-load", dependencies: ["MQTT", "RuleEngine"], path: "Sources/Development/mqtt-load"),
        // The floor under the proxy for tools/bench's cost scenario: a forwarder
        // over raw libmosquitto calls (the one development tool that imports a C
        // module, as its point is to leave the adapter out) and over MQTTClient.
        .executableTarget(name: "mqtt-forward", dependencies: ["MQTT", "CMosquitto"], path: "Sources/Development/mqtt-forward"),
        // The journal's per-message cost against an in-memory queue.
        .executableTarget(name: "journal-bench", dependencies: ["Journal"], path: "Sources/Development/journal-bench"),

        // libFuzzer targets (tools/fuzz builds them with -sanitize=fuzzer and
        // -DFUZZING; a plain build makes each a runner of saved inputs).
        .executableTarget(name: "fuzz-engine", dependencies: ["RuleEngine"], path: "Fuzz/fuzz-engine"),
        .executableTarget(name: "fuzz-rules", dependencies: ["RuleEngine"], path: "Fuzz/fuzz-rules"),
        .executableTarget(name: "fuzz-config-sender", dependencies: ["Services", "RuleEngine"], path: "Fuzz/fuzz-config-sender"),

        // Tests. TestSupport starts real Mosquitto brokers on free loopback ports
        // and gives the tests MQTT clients that wait (`TestClient`: an
        // `MQTTClient` on a `TestLoop` of its own).
        .target(name: "TestSupport", dependencies: ["MQTT"], path: "Tests/TestSupport"),
        .testTarget(name: "YAMLTests", dependencies: ["YAML"]),
        .testTarget(name: "JSONTests", dependencies: ["JSON", "JanssonBaseline"]),
        .testTarget(name: "RuleEngineTests", dependencies: ["RuleEngine", "RuleTesting", "TestSupport", "JSON", "MQTT", "Topics"]),
        .testTarget(name: "SiteSettingsTests", dependencies: ["SiteSettings", "RuleEngine", "Journal", "TestSupport", "rulecheck"]),
        // rulecheck as a user runs it: its binary in a scratch copy of rules/ and config/.
        .testTarget(name: "RulecheckTests", dependencies: ["rulecheck", "TestSupport"]),
        .testTarget(name: "MQTTTests", dependencies: ["MQTT", "Clock", "TestSupport", "Topics"]),
        .testTarget(name: "MeterSimTests", dependencies: ["meter-sim", "MQTT", "TestSupport", "JSON"]),
        .testTarget(name: "JournalTests", dependencies: ["Journal"]),
        // What the services' tests share: site configs, sample readings, the
        // proxy run as a process, Home Assistant's schema.
        .target(name: "ServicesFixtures", dependencies: [
            "Services", "SiteSettings", "RuleEngine", "RuleTesting", "TestSupport", "JSON", "MQTT", "Clock", "Journal"], path: "Tests/ServicesFixtures"),
        // The services' cores without a process or a socket: fast, and run in
        // parallel by tools/test.
        .testTarget(name: "ServicesCoreTests", dependencies: [
            "ServicesFixtures", "Services", "SiteSettings", "RuleEngine", "RuleTesting", "TestSupport", "JSON", "MQTT", "Clock", "Journal", "SQLite"]),
        // The services as processes on real brokers: run one at a time.
        .testTarget(name: "ServicesTests", dependencies: [
            "ServicesFixtures", "Services", "SiteSettings", "RuleEngine", "RuleTesting", "TestSupport", "JSON", "MQTT", "Clock", "Journal", "SQLite"]),
    ],
    cxxLanguageStandard: .cxx17
)
