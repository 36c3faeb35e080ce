import JSON

extension JSONValue {
    /// A service's status document with `log_lines_dropped`: the lines its
    /// standard output did not take in time (`Log.droppedLines`).
    func withLogLinesDropped(_ log: Log) -> JSONValue {
        guard case .object(var object) = self else { return self }
        object["log_lines_dropped"] = .integer(Int64(log.droppedLines))
        return .object(object)
    }
}
