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
        /// Not to be kept (too large, `no-store`): each follower fetches (and streams) for
        /// itself; `reason` is the `Cache-Status` detail (`too-large`).
        case uncacheable(reason: String)
        /// The fetch failed in a way followers should report too (S3 down, timeout).
        case failed(any Error & Sendable)
        /// The leader gave up for reasons of its own (its client left early); followers retry.
        case abandoned
    }

    private let done = DispatchGroup()
    private let state = Mutex<(outcome: Outcome?, superseded: Bool)>((nil, false))
    /// When the leader last moved a byte (uptime nanoseconds): followers wait while it does.
    private let lastProgress = Atomic<UInt64>(DispatchTime.now().uptimeNanoseconds)

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

    /// The leader received bytes from S3: its fetch is alive, however long it takes.
    public func recordProgress() {
        lastProgress.store(DispatchTime.now().uptimeNanoseconds, ordering: .relaxed)
    }

    /// How a follower's wait ended.
    public enum Wait: Sendable {
        /// The leader finished.
        case finished(Outcome)
        /// The leader's fetch received no byte for the stall limit.
        case stalled
        /// The leader's fetch is still moving, but the follower may wait no longer.
        case tooLong
    }

    /// Waits for the leader for as long as its fetch makes progress, and at most `atMost` seconds.
    ///
    /// A fixed limit alone would fail followers of a slow but healthy download that their leader
    /// completes; the leader's own S3 timeouts already end a fetch that stops. `atMost` keeps a
    /// follower's silence below what the web server in front waits for an answer.
    public func wait(stallLimit: Double, atMost: Double = 86_400) -> Wait {
        let now = DispatchTime.now().uptimeNanoseconds
        let limit = Self.nanoseconds(stallLimit)
        let end = now &+ Self.nanoseconds(atMost)
        while true {
            let stallEnd = lastProgress.load(ordering: .relaxed) &+ limit
            if done.wait(timeout: DispatchTime(uptimeNanoseconds: min(stallEnd, end))) == .success {
                return state.withLock { $0.outcome }.map { .finished($0) } ?? .stalled
            }
            let current = DispatchTime.now().uptimeNanoseconds
            if current >= lastProgress.load(ordering: .relaxed) &+ limit { return .stalled }
            if current >= end { return .tooLong }
        }
    }

    private static func nanoseconds(_ seconds: Double) -> UInt64 {
        UInt64(max(0, min(seconds, 86_400)) * 1e9)
    }
}
