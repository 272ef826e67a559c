/// Content negotiation for the stored gzip bytes.
enum ContentCoding {
    /// Whether `Accept-Encoding` admits gzip (`gzip` or `*` with a non-zero q-value).
    static func acceptsGzip(_ header: String?) -> Bool {
        guard let header else { return false }
        var gzip: Double?, wildcard: Double?
        for item in header.split(separator: ",") {
            let parts = item.split(separator: ";").map { $0.trimmingWhitespace().lowercased() }
            guard let coding = parts.first else { continue }
            var quality = 1.0
            for parameter in parts.dropFirst() where parameter.hasPrefix("q=") {
                quality = Double(parameter.dropFirst(2)) ?? 0
            }
            if coding == "gzip" || coding == "x-gzip" { gzip = quality } else if coding == "*" { wildcard = quality }
        }
        return (gzip ?? wildcard ?? 0) > 0
    }

    /// Media types worth compressing: text and structured text. Images, video and archives are
    /// already compressed and would only cost CPU.
    static func isCompressible(_ contentType: String) -> Bool {
        let type = (contentType.split(separator: ";").first.map { $0.trimmingWhitespace().lowercased() }) ?? ""
        if type.hasPrefix("text/") { return true }
        if type.hasSuffix("+json") || type.hasSuffix("+xml") || type.hasSuffix("+yaml") { return true }
        return [
            "application/json", "application/javascript", "application/x-javascript", "application/ecmascript",
            "application/xml", "application/yaml", "application/x-yaml", "application/toml", "application/x-ndjson",
            "application/graphql", "application/wasm", "application/x-sh", "application/sql", "application/csv",
            "image/svg+xml", "image/bmp", "image/x-icon", "image/vnd.microsoft.icon", "font/ttf", "font/otf",
            "application/vnd.ms-fontobject",
        ].contains(type)
    }
}
