// Shared by every fuzz target (each target's directory holds a symlink to
// this file). Built with -DFUZZING (and -sanitize=fuzzer), `main` hands the
// command line to libFuzzer's driver (SwiftPM names an executable's entry
// point itself, so libFuzzer's own `main` cannot be used); a plain build gets
// a `main` that runs the target on the files named on the command line (a
// reproducer or a corpus), so a finding can be replayed without sanitizers.
import Foundation

#if FUZZING
@_silgen_name("LLVMFuzzerRunDriver")
func LLVMFuzzerRunDriver(
    _ argc: UnsafeMutablePointer<CInt>,
    _ argv: UnsafeMutablePointer<UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>>,
    _ callback: @convention(c) (UnsafePointer<UInt8>?, Int) -> CInt) -> CInt

/// libFuzzer's entry point. Its archive's own `main` is linked in for it,
/// and the linker's `--defsym main=…` that SwiftPM passes wins over it.
@_cdecl("LLVMFuzzerTestOneInput")
public func LLVMFuzzerTestOneInput(_ data: UnsafePointer<UInt8>?, _ size: Int) -> CInt {
    fuzzOne(size == 0 ? [] : Array(UnsafeBufferPointer(start: data, count: size)))
    return 0
}

@main
struct FuzzMain {
    static func main() {
        var argc = CommandLine.argc
        var argv = CommandLine.unsafeArgv
        exit(LLVMFuzzerRunDriver(&argc, &argv) { data, size in LLVMFuzzerTestOneInput(data, size) })
    }
}
#else
@main
struct FuzzReplay {
    static func main() {
        var count = 0
        for path in CommandLine.arguments.dropFirst() {
            var isDirectory: ObjCBool = false
            guard FileManager.default.fileExists(atPath: path, isDirectory: &isDirectory) else { continue }
            let files = isDirectory.boolValue
                ? ((try? FileManager.default.contentsOfDirectory(atPath: path)) ?? []).sorted().map { "\(path)/\($0)" } : [path]
            for file in files {
                guard let data = FileManager.default.contents(atPath: file) else { continue }
                fuzzOne([UInt8](data))
                count += 1
            }
        }
        print("ran \(count) input\(count == 1 ? "" : "s")")
    }
}
#endif
