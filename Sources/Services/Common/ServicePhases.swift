import Clock
import MQTT

/// A service's way from a stop request to its exit, the same for every
/// service on `ServiceHost`: **drain** (no new work; what is in flight may
/// finish until a deadline) → **offline** (the offline status went out;
/// waiting for the central broker's acknowledgement until a deadline) →
/// **finished** (the clients disconnect and the loop stops).
///
/// Pure: times come in as arguments, and the host runs what `advance` says.
struct ServicePhases {
    enum Phase: Equatable {
        case running
        /// No new work; what is in flight may finish until `deadline`.
        case draining(reason: String, deadline: MonotonicInstant)
        /// The offline status went out as `mid` (nil: the central broker was
        /// away, or the publish failed); its acknowledgement is awaited until `deadline`.
        case offline(reason: String, mid: Int32?, deadline: MonotonicInstant)
        case finished(reason: String)
    }

    /// What the host does when `advance` moves the phase on.
    enum Step: Equatable {
        /// The drain is over (`complete`: nothing was left in flight): save,
        /// then publish the offline status and call `offlinePublished`.
        case drainEnded(complete: Bool)
        /// The offline status was not acknowledged in time; finished all the same.
        case offlineNotAcknowledged
    }

    private(set) var phase = Phase.running

    var isRunning: Bool { phase == .running }
    var isFinished: Bool { if case .finished = phase { true } else { false } }

    /// Why the service stops, once it does.
    var reason: String? {
        switch phase {
        case .running: nil
        case .draining(let reason, _), .offline(let reason, _, _), .finished(let reason): reason
        }
    }

    /// The next time `advance` has something to do without an event; nil: none.
    var deadline: MonotonicInstant? {
        switch phase {
        case .running, .finished: nil
        case .draining(_, let deadline), .offline(_, _, let deadline): deadline
        }
    }

    /// A stop request: the drain starts. False when the service was stopping already.
    mutating func stop(reason: String, drainSeconds: Double, now: MonotonicInstant) -> Bool {
        guard phase == .running else { return false }
        phase = .draining(reason: reason, deadline: now.adding(seconds: drainSeconds))
        return true
    }

    /// Moves on when the drain is over (`drained`, or its deadline passed) or
    /// the offline status's deadline passed; nil: nothing to do yet.
    mutating func advance(drained: Bool, now: MonotonicInstant) -> Step? {
        switch phase {
        case .running, .finished:
            return nil
        case .draining(_, let deadline):
            guard drained || now >= deadline else { return nil }
            return .drainEnded(complete: drained)
        case .offline(let reason, _, let deadline):
            guard now >= deadline else { return nil }
            phase = .finished(reason: reason)
            return .offlineNotAcknowledged
        }
    }

    /// After `.drainEnded`: the offline status went out as `mid` (nil: it did
    /// not, and there is nothing to wait for).
    mutating func offlinePublished(mid: Int32?, ackSeconds: Double, now: MonotonicInstant) {
        guard case .draining(let reason, _) = phase else { return }
        phase = mid == nil ? .finished(reason: reason) : .offline(reason: reason, mid: mid, deadline: now.adding(seconds: ackSeconds))
    }

    /// The central broker acknowledged `mid`: finished if it was the offline status.
    mutating func acknowledged(_ mid: Int32) {
        if case .offline(let reason, let offline?, _) = phase, offline == mid { phase = .finished(reason: reason) }
    }
}
