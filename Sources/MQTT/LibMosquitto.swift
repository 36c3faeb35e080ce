internal import CMosquitto

/// Process-wide libmosquitto state.
enum LibMosquitto {
    /// `mosquitto_lib_init` exactly once per process. Swift initialises a global
    /// lazily under `swift_once`, so concurrent first uses are safe. It is never
    /// undone (`mosquitto_lib_cleanup`): connections may live until exit.
    static let initialised: Void = {
        _ = mosquitto_lib_init()
    }()

    /// "2.0.11" for the library the process actually loaded.
    static var version: String {
        var major: Int32 = 0, minor: Int32 = 0, revision: Int32 = 0
        _ = mosquitto_lib_version(&major, &minor, &revision)
        return "\(major).\(minor).\(revision)"
    }
}
