/// A set of buckets named in a setting: `a,b,c`, or `*` for every bucket.
public struct BucketSet: Sendable, Equatable {
    private var names: Set<String>
    private var everyBucket: Bool

    /// Nil when an entry is not a valid bucket name. An empty text is the empty set.
    public init?(parsing text: String) {
        names = []
        everyBucket = false
        for entry in text.split(separator: ",").map({ $0.trimmingWhitespace() }) where !entry.isEmpty {
            if entry == "*" {
                everyBucket = true
            } else {
                guard BucketName.isValid(entry) else { return nil }
                names.insert(entry)
            }
        }
    }

    public func contains(_ bucket: String) -> Bool { everyBucket || names.contains(bucket) }
}

/// What an object response must carry so that uploaded content cannot act as the operator's site.
///
/// Every object response says `X-Content-Type-Options: nosniff`, so a browser never runs a PNG
/// labelled `text/html` as HTML or a text file as script. In a bucket listed in
/// `SAFE_CONTENT_BUCKETS`, active content (HTML, SVG, XML, JavaScript) is also served as a
/// download (`Content-Disposition: attachment`) inside `Content-Security-Policy: sandbox`, which
/// gives a document opened anyway a unique origin and no scripts.
struct ContentSafety {
    /// Whether active content is sandboxed for this response's bucket.
    let sandboxesActiveContent: Bool

    static let noSniff = "X-Content-Type-Options: nosniff\r\n"
    static let sandboxHeaders: [(name: String, value: String)] = [
        ("Content-Disposition", "attachment"), ("Content-Security-Policy", "sandbox"),
    ]

    /// Whether a response of `contentType` must be sandboxed.
    func sandboxes(contentType: String) -> Bool {
        sandboxesActiveContent && Self.isActive(contentType)
    }

    /// Media types a browser executes or renders with scripts: HTML, XHTML, SVG, any XML (which
    /// can carry XHTML or an XSLT stylesheet), and JavaScript. A type that does not parse counts
    /// as active: a browser might sniff it.
    static func isActive(_ contentType: String) -> Bool {
        let type = (contentType.split(separator: ";").first.map { $0.trimmingWhitespace().lowercased() }) ?? ""
        if !type.contains("/") { return true }
        if type.hasSuffix("+xml") || type.hasSuffix("/xml") { return true }
        return [
            "text/html", "application/xhtml+xml", "image/svg+xml", "text/xsl", "text/javascript", "application/javascript",
            "application/x-javascript", "application/ecmascript", "text/ecmascript", "text/jscript", "application/x-ecmascript",
            "text/x-javascript", "text/vbscript", "application/x-shockwave-flash", "application/pdf",
        ].contains(type)
    }
}
