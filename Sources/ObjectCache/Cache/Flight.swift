import Dispatch
import Synchronization

/// One backend fetch that concurrent requests for the same key share (single flight).
///
/// The first request for an uncached key becomes the leader and fetches; the others wait
/// here and are answered from its outcome. An invalidation (PUT or DELETE through us) marks
/// a flight superseded: its result, possibly read before the write, is never inserted.
public final class Flight: Sendable {
    /// How a shared fetch ended, as the followers need it.
    public enum Outcome: Sendable {
        /// The object (or its absence) as fetched; followers serve this.
        case record(CacheRecord)
        /// Too large to keep: each follower fetches (and streams) for itself.
        case uncacheable
        /// The fetch failed in a way followers should report too (S3 down, timeout).
        case failed(any Error & Sendable)
        /// The leader gave up for reasons of its own (its client left early); followers retry.
        case abandoned
    }

    private let done = DispatchGroup()
    private let state = Mutex<(outcome: Outcome?, superseded: Bool)>((nil, false))

    init() {
        done.enter()
    }

    /// Whether a write through the gateway happened while this fetch was running.
    public var isSuperseded: Bool { state.withLock { $0.superseded } }

    func supersede() {
        state.withLock { $0.superseded = true }
    }

    /// Publishes the outcome and wakes every follower. Called exactly once, by the leader.
    func finish(_ outcome: Outcome) {
        state.withLock { $0.outcome = outcome }
        done.leave()
    }

    /// Waits for the leader; nil when `timeout` seconds passed first.
    public func wait(timeout: Double) -> Outcome? {
        guard done.wait(timeout: .now() + timeout) == .success else { return nil }
        return state.withLock { $0.outcome }
    }
}
