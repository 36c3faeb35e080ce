import Foundation

/// The path of an executable product built next to the running test binary
/// (`swift build` puts executables and the test bundle in the same folder),
/// or nil. The environment variable `PRODUCT_DIR` overrides the folder.
public func builtProduct(named name: String) -> String? {
    var folders: [URL] = []
    if let dir = ProcessInfo.processInfo.environment["PRODUCT_DIR"] {
        folders.append(URL(fileURLWithPath: dir))
    }
    // Linux: the test bundle is itself an executable in the products folder.
    if let exe = try? FileManager.default.destinationOfSymbolicLink(atPath: "/proc/self/exe") {
        folders.append(URL(fileURLWithPath: exe).deletingLastPathComponent())
    }
    // macOS: PRODUCTS/NAME.xctest/Contents/MacOS/NAME.
    if let exe = Bundle.main.executableURL {
        folders.append(exe.deletingLastPathComponent())
        folders.append(exe.deletingLastPathComponent().deletingLastPathComponent()
            .deletingLastPathComponent().deletingLastPathComponent())
    }
    for folder in folders {
        let candidate = folder.appendingPathComponent(name).path
        if FileManager.default.isExecutableFile(atPath: candidate) { return candidate }
    }
    return nil
}
