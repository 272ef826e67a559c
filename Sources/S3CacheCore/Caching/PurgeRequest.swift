import FastCGI
import ObjectCache

/// `PURGE /objects/{bucket}/{key}`: one key; `{prefix}*`: every cached key with that prefix;
/// `/objects/{bucket}/*`: the whole bucket. `Purge-Mode: soft` expires entries instead of
/// dropping them.
///
/// Only an unescaped `*` at the end of the request target is a wildcard: a key that itself
/// ends with `*` is purged as `%2A`.
struct PurgeRequest {
    let address: ObjectAddress
    let scope: PurgeScope
    let mode: PurgeMode
    /// The prefix within the bucket, for a wildcard purge.
    let prefix: String?

    init(_ address: ObjectAddress, exchange: any Exchange) throws {
        self.address = address
        let target = exchange.param("REQUEST_URI") ?? ""
        let path = target.utf8.prefix { $0 != UInt8(ascii: "?") }
        if path.last == UInt8(ascii: "*") {
            // The key was decoded from the same target, so it ends with this `*`.
            let prefix = String(address.key.dropLast())
            self.prefix = prefix
            scope = .prefix(address.bucket + "/" + prefix)
        } else {
            prefix = nil
            scope = .key(address.cacheKey)
        }
        switch (exchange.param("HTTP_PURGE_MODE") ?? "hard").trimmingWhitespace().lowercased() {
        case "hard", "": mode = .hard
        case "soft": mode = .soft
        default:
            throw HTTPError.badRequest("Purge-Mode must be soft or hard")
        }
    }

    /// The JSON answer: what was purged and how many entries it took.
    func answer(purged: Int) -> String {
        JSON.object([
            ("bucket", .string(address.bucket)),
            prefix.map { ("prefix", .string($0)) } ?? ("key", .string(address.key)),
            ("mode", .string(mode.rawValue)),
            ("purged", .int(Int64(purged))),
        ])
    }
}
