public import Synchronization

/// Counters of `POST /notifications`, for `/stats` and `/metrics`.
public final class NotificationStatistics: Sendable {
    /// Notifications accepted (authenticated and well-formed).
    public let received = Atomic<Int>(0)
    /// Refused: wrong or missing token, too large, malformed.
    public let refused = Atomic<Int>(0)
    /// Object events that invalidated a key.
    public let eventsApplied = Atomic<Int>(0)
    /// Events for buckets the gateway does not serve, or that do not change an object.
    public let eventsIgnored = Atomic<Int>(0)
    /// SNS subscriptions confirmed.
    public let confirmations = Atomic<Int>(0)

    public init() {}
}
