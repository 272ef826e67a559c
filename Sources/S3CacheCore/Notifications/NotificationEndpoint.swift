import FastCGI
import ObjectCache
import S3Client

/// `POST /notifications`: bucket event notifications (AWS through SNS, MinIO's webhook, Ceph
/// RGW's HTTP push) turned into invalidations, so that a write that reached S3 some other way
/// is not served from the cache until the TTL runs out.
///
/// The sender proves itself with the shared `NOTIFY_TOKEN`, checked before the body is read.
/// A body is read whole (at most `maxBody` bytes) and parsed before anything is invalidated:
/// a malformed one changes nothing. Invalidating is idempotent, so a redelivered event is
/// harmless.
struct NotificationEndpoint {
    /// Largest body accepted (the bound; nginx's location allows the same).
    static let maxBody = 1 << 20

    let token: String
    let confirmsSNS: Bool
    let snsEndpoints: [String]
    let rules: AccessRules
    let cache: ObjectCache?
    let statistics: NotificationStatistics
    let idleTimeout: Double

    init?(_ configuration: Configuration, cache: ObjectCache?, statistics: NotificationStatistics) {
        guard let token = configuration.notifyToken else { return nil }
        self.token = token
        confirmsSNS = configuration.notifyConfirmSNS
        snsEndpoints = configuration.notifySNSEndpoints
        rules = configuration.accessRules
        self.cache = cache
        self.statistics = statistics
        idleTimeout = configuration.uploadIdleTimeout
    }

    /// What the access log adds about a notification request.
    struct Outcome {
        var events = 0
        var applied = 0
        var ignored = 0
    }

    func serve(method: String, exchange: any Exchange, response: ResponseWriter) throws {
        guard method == "POST" else { throw HTTPError.methodNotAllowed(method, allow: "POST") }
        guard authenticated(exchange) else {
            statistics.refused.add(1, ordering: .relaxed)
            throw HTTPError(
                status: 401, code: "unauthorized", message: "a valid notification token is required",
                headers: [("WWW-Authenticate", "Bearer")])
        }
        let message: BucketNotification
        do {
            message = try BucketNotification.read(try readBody(exchange))
        } catch let error as BucketNotification.Invalid {
            statistics.refused.add(1, ordering: .relaxed)
            throw HTTPError(status: 400, code: "invalid_notification", message: error.description)
        } catch {
            statistics.refused.add(1, ordering: .relaxed)
            throw error
        }
        statistics.received.add(1, ordering: .relaxed)
        switch message {
        case let .events(events):
            let outcome = apply(events)
            try response.sendJSON(
                status: 200,
                JSON.object([
                    ("events", .int(Int64(outcome.events))), ("applied", .int(Int64(outcome.applied))),
                    ("ignored", .int(Int64(outcome.ignored))),
                ]))
        case let .subscriptionConfirmation(url, topic):
            try confirm(url, topic: topic, response: response)
        case let .other(type):
            try response.sendJSON(status: 200, JSON.object([("ignored", .string(type))]))
        }
    }

    /// `Authorization: Bearer <token>` (MinIO's `auth_token`) or `?token=` (SNS and RGW cannot
    /// set headers), compared in constant time.
    private func authenticated(_ exchange: any Exchange) -> Bool {
        if let header = exchange.param("HTTP_AUTHORIZATION") {
            let parts = header.split(separator: " ", maxSplits: 1, omittingEmptySubsequences: true)
            if parts.count == 2, parts[0].lowercased() == "bearer" { return Self.matches(String(parts[1]), token) }
            return false
        }
        guard let query = exchange.param("QUERY_STRING") else { return false }
        for pair in query.split(separator: "&") where pair.hasPrefix("token=") {
            guard let given = PercentDecoding.decodeText(pair.dropFirst(6)) else { return false }
            return Self.matches(given, token)
        }
        return false
    }

    /// Equal strings, in time that depends only on the lengths: the digests are compared, so
    /// not even the length of the configured token shows.
    static func matches(_ given: String, _ expected: String) -> Bool {
        ConstantTime.equal(Array(given.utf8).withUnsafeBytes { SHA256.digest($0) }, Array(expected.utf8).withUnsafeBytes { SHA256.digest($0) })
    }

    /// The whole body, at most `maxBody` bytes. nginx has read it before it passes the request
    /// on (request buffering is on for this location), so `CONTENT_LENGTH` is known and no more
    /// than one byte past it is ever asked for.
    private func readBody(_ exchange: any Exchange) throws -> [UInt8] {
        let declared = exchange.param("CONTENT_LENGTH").flatMap { Int($0) }
        if let declared, declared > Self.maxBody { throw Self.tooLarge }
        var body = [UInt8](repeating: 0, count: min(max(0, declared ?? Self.maxBody), Self.maxBody) + 1)
        var filled = 0
        try WorkerPool.blocking {
            try body.withUnsafeMutableBytes { buffer in
                while filled < buffer.count {
                    let count = try exchange.readBody(
                        into: UnsafeMutableRawBufferPointer(rebasing: buffer[filled...]), idleTimeout: idleTimeout)
                    if count == 0 { break }
                    filled += count
                }
            }
        }
        guard filled <= Self.maxBody, declared.map({ filled <= $0 }) ?? true else { throw Self.tooLarge }
        body.removeSubrange(filled...)
        return body
    }

    private static let tooLarge = HTTPError(
        status: 413, code: "payload_too_large", message: "a notification body may hold at most \(maxBody) bytes")

    /// Forgets every key an object event names, in buckets the gateway serves.
    private func apply(_ events: [BucketEvent]) -> Outcome {
        var outcome = Outcome(events: events.count)
        for event in events {
            guard event.changesObject, rules.levels[event.bucket] != nil,
                  event.encodedKey.utf8.count <= 3 * ObjectAddress.maxKeyBytes
            else {
                outcome.ignored += 1
                continue
            }
            for key in event.keys { cache?.invalidate(CacheKey(event.bucket + "/" + key)) }
            outcome.applied += 1
        }
        statistics.eventsApplied.add(outcome.applied, ordering: .relaxed)
        statistics.eventsIgnored.add(outcome.ignored, ordering: .relaxed)
        return outcome
    }

    /// Visits an SNS `SubscribeURL` when `NOTIFY_CONFIRM_SNS` allows it and the URL is SNS's own
    /// (or a configured SNS-compatible service's): never a URL a sender chose freely.
    private func confirm(_ url: String, topic: String, response: ResponseWriter) throws {
        guard confirmsSNS else {
            try response.sendJSON(
                status: 200,
                JSON.object([
                    ("confirmed", .bool(false)), ("topic", .string(topic)),
                    ("message", .string("NOTIFY_CONFIRM_SNS is off: confirm the subscription in SNS")),
                ]))
            return
        }
        guard Self.isSNSConfirmation(url, extraEndpoints: snsEndpoints) else {
            throw HTTPError(
                status: 400, code: "invalid_notification",
                message: "SubscribeURL is not an SNS ConfirmSubscription URL on an allowed host")
        }
        let status: Int
        do {
            status = try WorkerPool.blocking { try URLVisit.get(url, timeout: 10) }
        } catch {
            throw HTTPError(status: 502, code: "subscription_not_confirmed", message: "SNS could not be reached to confirm: \(error)")
        }
        guard (200..<300).contains(status) else {
            throw HTTPError(status: 502, code: "subscription_not_confirmed", message: "SNS answered \(status) to the confirmation")
        }
        statistics.confirmations.add(1, ordering: .relaxed)
        try response.sendJSON(status: 200, JSON.object([("confirmed", .bool(true)), ("topic", .string(topic))]))
    }

    /// `https://sns.<region>.amazonaws.com[.cn]/?Action=ConfirmSubscription&…`, or a URL under
    /// one of `extraEndpoints` with `Action=ConfirmSubscription`.
    static func isSNSConfirmation(_ url: String, extraEndpoints: [String]) -> Bool {
        guard url.utf8.allSatisfy({ $0 > 0x20 && $0 < 0x7f }), let query = url.split(separator: "?", maxSplits: 1).dropFirst().first,
              query.split(separator: "&").contains("Action=ConfirmSubscription")
        else { return false }
        if extraEndpoints.contains(where: { url.hasPrefix($0) }) { return true }
        guard url.hasPrefix("https://") else { return false }
        let rest = url.dropFirst("https://".count)
        guard let end = rest.firstIndex(where: { $0 == "/" || $0 == "?" }), rest[end] == "/" else { return false }
        let labels = rest[..<end].split(separator: ".", omittingEmptySubsequences: false)
        let suffixOK = labels.count == 4 && labels[2] == "amazonaws" && labels[3] == "com"
            || labels.count == 5 && labels[2] == "amazonaws" && labels[3] == "com" && labels[4] == "cn"
        return suffixOK && labels[0] == "sns"
            && !labels[1].isEmpty && labels[1].utf8.allSatisfy { ($0 >= 0x61 && $0 <= 0x7a) || ($0 >= 0x30 && $0 <= 0x39) || $0 == 0x2d }
    }
}
