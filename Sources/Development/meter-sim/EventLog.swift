import Foundation
import Synchronization

/// One line per event: to standard output with a timestamp, and — with
/// `--journal FILE` — to a file without one, for tests to read.
///
/// Line formats (`TOPIC PAYLOAD` is the capture format):
///     sent TOPIC PAYLOAD            a data message or a command reply
///     received TOPIC PAYLOAD        a command
///     ignored TOPIC REASON          a command not answered
///     applied ID WHAT               a command's effect
///     dropped TOPIC REASON          a publish that failed (QoS 0 while offline)
///     connected ID | disconnected ID REASON | subscribed ID
///     all-connected N meters in S s   every meter had its first CONNACK
///     started N meters ... | stopped REASON N readings acknowledged by the broker (M sent); ...
///     failed K of N meters never connected (ID: cause; ...)   then exit status 1
///
/// (The proxy's crash-safe outbox is the `Journal` target; this is only the
/// simulator's log of what it did, named after its `--journal` option.)
final class EventLog: Sendable {
    private struct Outputs {
        var file: FileHandle?
        let timestamp: ISO8601DateFormatter
    }
    /// The file and the formatter, used by every meter's callbacks and the main thread.
    private let outputs: Mutex<Outputs>
    private let quiet: Bool

    init(path: String?, quiet: Bool) throws {
        self.quiet = quiet
        var file: FileHandle?
        if let path {
            guard FileManager.default.createFile(atPath: path, contents: Data()),
                  let handle = FileHandle(forWritingAtPath: path) else {
                throw ValidationErrorText("cannot write the journal file \(path)")
            }
            file = handle
        }
        let timestamp = ISO8601DateFormatter()
        timestamp.formatOptions = [.withInternetDateTime, .withFractionalSeconds]
        outputs = Mutex(Outputs(file: file, timestamp: timestamp))
    }

    /// `isData`: a data message, left off standard output with `--quiet`.
    func record(_ event: String, _ subject: String, _ detail: String = "", isData: Bool = false) {
        var line = detail.isEmpty ? "\(event) \(subject)" : "\(event) \(subject) \(detail)"
        line = line.replacingOccurrences(of: "\r", with: "\\r").replacingOccurrences(of: "\n", with: "\\n")
        outputs.withLock { outputs in
            if !(quiet && isData) {
                FileHandle.standardOutput.write(Data("\(outputs.timestamp.string(from: Date())) \(line)\n".utf8))
            }
            outputs.file?.write(Data((line + "\n").utf8))
        }
    }

    func close() {
        outputs.withLock { outputs in try? outputs.file?.close() }
    }
}

/// An error whose text is the whole message.
struct ValidationErrorText: Error, CustomStringConvertible {
    let description: String
    init(_ description: String) { self.description = description }
}
