/// What the audit log needs to know about a request, gathered while it is answered.
struct AuditFacts {
    var principal: Principal?
    /// Why the request was refused (`signature`, `unknown_key`, `skew`, `expired`, `denied`, …).
    var reason: String?
    /// The key id a refused signature named.
    var refusedKeyID: String?

    var keyID: String? { principal?.keyID ?? refusedKeyID }

    mutating func refusedAuthentication(_ failure: AuthenticationFailure) {
        reason = failure.reason
        refusedKeyID = failure.keyID
    }

    /// Every write (allowed or refused) and every refused authentication is audited.
    func isDue(method: String) -> Bool {
        guard let method = ObjectMethod(rawValue: method) else { return reason != nil }
        switch method {
        case .put, .delete, .purge: return true
        // A refused signature, and a read a key's grants refused; not every anonymous read of a
        // closed bucket (the access log has those).
        case .get, .head: return reason != nil && (reason != "denied" || principal?.keyID != nil)
        }
    }
}

/// One audit line: who wrote (or tried to), what, and how it ended.
struct AuditEntry {
    var method: String
    var status: Int
    var keyID: String?
    var remoteAddress: String
    var requestID: String?
    var reason: String?
    var bucket: String?
    var key: String?
}

extension AccessLog {
    /// `{"time":…,"level":"notice","msg":"audit",…}`, written at once and whatever `LOG_LEVEL`
    /// says: an audit trail with holes is not one. Never a secret, a signature or a query.
    func writeAudit(_ entry: AuditEntry) {
        var line: [UInt8] = []
        line.reserveCapacity(512)
        line += #"{"time":""#.utf8
        Self.appendTimestamp(to: &line)
        line += #"","level":"notice","msg":"audit""#.utf8
        Self.appendString("bucket", entry.bucket, to: &line)
        Self.appendString("key", entry.key, to: &line)
        Self.appendString("key_id", entry.keyID ?? "-", to: &line)
        Self.appendString("method", entry.method, to: &line)
        Self.appendString("reason", entry.reason, to: &line)
        Self.appendString("remote_addr", entry.remoteAddress, to: &line)
        Self.appendString("request_id", entry.requestID, to: &line)
        Self.appendNumber("status", Int64(entry.status), to: &line)
        line += "}\n".utf8
        writeImmediately(line)
    }
}
