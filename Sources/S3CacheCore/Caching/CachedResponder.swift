import Gzip
import ObjectCache

/// Answers a request from a cache entry: encoding negotiation, conditionals and ranges, all
/// from memory. One per worker thread.
final class CachedResponder {
    let statistics: CacheStatistics
    /// Answers for objects in the file tier; nil without one.
    let files: FileReads?
    /// The last `Accept-Encoding` seen and whether it admits gzip: clients send the same value
    /// request after request, and parsing it is most of the negotiation's cost.
    private var lastAcceptEncoding: (header: String, acceptsGzip: Bool)?

    init(statistics: CacheStatistics, files: FileReads?) {
        self.statistics = statistics
        self.files = files
    }

    /// The header lines of a whole-object 200, rendered once when the object is stored.
    static func headerLines(_ metadata: ObjectMetadata, originalLength: Int, gzipLength: Int?) -> HeaderLines {
        let identity = render(wholeHeaders(metadata, originalLength: originalLength, gzipLength: gzipLength, sendsGzip: false))
        let gzip = gzipLength.map { _ in
            render(wholeHeaders(metadata, originalLength: originalLength, gzipLength: gzipLength, sendsGzip: true))
        }
        return HeaderLines(identity: identity, gzip: gzip ?? "")
    }

    /// The headers of a whole-object 200, identity or gzip.
    static func wholeHeaders(_ metadata: ObjectMetadata, originalLength: Int, gzipLength: Int?, sendsGzip: Bool)
        -> [(name: String, value: String)]
    {
        let common = commonHeaders(metadata, isCompressed: gzipLength != nil)
        if sendsGzip, let gzipLength {
            return [("Content-Type", metadata.contentType), ("Content-Encoding", "gzip"), ("Content-Length", String(gzipLength)),
                    ("ETag", EntityTags.gzipTag(metadata.etag)), ("Accept-Ranges", "bytes")] + common
        }
        return [("Content-Type", metadata.contentType), ("Content-Length", String(originalLength)), ("ETag", metadata.etag),
                ("Accept-Ranges", "bytes")] + common
    }

    /// A whole-object 200 head: the lines rendered at store time, or, when the response must
    /// be sandboxed (its `Content-Disposition` replaced), the same headers as a list.
    private func sendWholeHead(_ object: CachedObject, gzip: Bool, report: CacheReport, response: ResponseWriter) throws {
        if response.sandboxes(contentType: object.metadata.contentType) {
            let headers = Self.wholeHeaders(
                object.metadata, originalLength: object.originalLength,
                gzipLength: object.isCompressed ? object.body.count : nil, sendsGzip: gzip)
            try response.sendHead(status: 200, headers: headers + report.headers)
        } else {
            try response.sendHead(status: 200, prepared: gzip ? object.headerLines.gzip : object.headerLines.identity, headers: report.headers)
        }
    }

    /// What every answer about the object carries, whatever its status and coding.
    static func commonHeaders(_ metadata: ObjectMetadata, isCompressed: Bool) -> [(name: String, value: String)] {
        var common: [(name: String, value: String)] = [("Last-Modified", metadata.lastModified)]
        common += metadata.extraHeaders.map { ($0.name, $0.value) }
        if isCompressed || ContentCoding.isCompressible(metadata.contentType) { common.append(("Vary", "Accept-Encoding")) }
        return common
    }

    private static func render(_ headers: [(name: String, value: String)]) -> String {
        headers.map { "\($0.name): \($0.value)\r\n" }.joined()
    }

    func send(
        _ record: CacheRecord, address: ObjectAddress, report: CacheReport, request: ReadRequest, response: ResponseWriter
    ) throws {
        switch record.state {
        case let .file(file):
            guard let files else { throw HTTPError.internalError("a file-tier entry without a file tier") }
            try files.send(file, address: address, report: report, request: request, response: response)
        case .missing:
            var error = HTTPError.notFound
            error.headers += report.headers
            try response.sendError(error)
        case let .object(object):
            try send(object, report: report, request: request, response: response)
        }
    }

    private func acceptsGzip(_ header: String?) -> Bool {
        guard let header else { return false }
        if let last = lastAcceptEncoding, last.header == header { return last.acceptsGzip }
        let accepts = ContentCoding.acceptsGzip(header)
        lastAcceptEncoding = (header, accepts)
        return accepts
    }

    private func send(_ object: CachedObject, report: CacheReport, request: ReadRequest, response: ResponseWriter) throws {
        let metadata = object.metadata
        let useGzip = object.isCompressed && acceptsGzip(request.acceptEncoding)

        if request.hasPreconditions {
            let gzipTag = EntityTags.gzipTag(metadata.etag)
            if try Self.answerPreconditions(
                metadata, etags: [metadata.etag, gzipTag], sentTag: useGzip ? gzipTag : metadata.etag,
                isCompressed: object.isCompressed, report: report, request: request, response: response)
            {
                return
            }
        }

        let length = object.originalLength
        switch request.byteRange(length: length, strongETag: metadata.etag, lastModified: metadata.lastModified) {
        case .unsatisfiable:
            try Self.sendUnsatisfiable(length: length, report: report, response: response)
        case let .partial(start, end):
            try response.sendHead(
                status: 206,
                headers: Self.partialHeaders(metadata, start: start, end: end, length: length, isCompressed: object.isCompressed)
                    + report.headers)
            try sendOriginal(object, from: start, through: end, response: response)
        case .whole where useGzip:
            try sendWholeHead(object, gzip: true, report: report, response: response)
            try sendStored(object, response: response)
        case .whole:
            try sendWholeHead(object, gzip: false, report: report, response: response)
            try sendOriginal(object, from: 0, through: length - 1, response: response)
        }
    }

    /// The 304 or 412 the request's preconditions call for, against `etags` (every tag issued for
    /// the object) and its date; true when that answered the request. A 304 carries `sentTag`,
    /// the tag of the representation the client would have got.
    static func answerPreconditions(
        _ metadata: ObjectMetadata, etags: [String], sentTag: String, isCompressed: Bool, report: CacheReport,
        request: ReadRequest, response: ResponseWriter
    ) throws -> Bool {
        switch request.evaluate(etags: etags, lastModified: metadata.lastModified) {
        case .notModified:
            try response.sendHead(
                status: 304, headers: [("ETag", sentTag)] + commonHeaders(metadata, isCompressed: isCompressed) + report.headers)
            return true
        case .failed:
            var error = HTTPError(status: 412, code: "precondition_failed", message: "precondition failed")
            error.headers += report.headers
            try response.sendError(error)
            return true
        case .proceed:
            return false
        }
    }

    /// 416 for a range outside an object of `length` bytes.
    static func sendUnsatisfiable(length: Int, report: CacheReport, response: ResponseWriter) throws {
        var error = HTTPError(status: 416, code: "range_not_satisfiable", message: "the requested range is not satisfiable")
        error.headers += [("Content-Range", "bytes */\(length)")] + report.headers
        try response.sendError(error)
    }

    /// The headers of a 206 with bytes `start...end` of the object as S3 holds it.
    static func partialHeaders(_ metadata: ObjectMetadata, start: Int, end: Int, length: Int, isCompressed: Bool)
        -> [(name: String, value: String)]
    {
        [
            ("Content-Type", metadata.contentType), ("Content-Length", String(end - start + 1)),
            ("Content-Range", "bytes \(start)-\(end)/\(length)"), ("ETag", metadata.etag), ("Accept-Ranges", "bytes"),
        ] + commonHeaders(metadata, isCompressed: isCompressed)
    }

    private func sendStored(_ object: CachedObject, response: ResponseWriter) throws {
        guard !response.isHead else { return }
        try object.body.withUnsafeBytes { try response.sendBody($0) }
        statistics.bytesServedFromCache.add(object.body.count, ordering: .relaxed)
    }

    /// Bytes `start...end` of the object as S3 holds it, inflating on the fly when stored compressed.
    private func sendOriginal(_ object: CachedObject, from start: Int, through end: Int, response: ResponseWriter) throws {
        guard !response.isHead, end >= start else { return }
        defer { statistics.bytesServedFromCache.add(end - start + 1, ordering: .relaxed) }
        guard object.isCompressed else {
            try object.body.withUnsafeBytes { try response.sendBody(UnsafeRawBufferPointer(rebasing: $0[start...end])) }
            return
        }
        let inflater = try GzipInflater(limit: Int64(object.originalLength))
        var position = 0
        try object.body.withUnsafeBytes { compressed in
            var offset = 0
            while offset < compressed.count, position <= end {
                let chunk = UnsafeRawBufferPointer(rebasing: compressed[offset..<min(offset + 32 * 1024, compressed.count)])
                try inflater.inflate(chunk) { piece in
                    let pieceStart = position
                    position += piece.count
                    let low = max(start, pieceStart), high = min(end + 1, position)
                    if low < high {
                        try response.sendBody(UnsafeRawBufferPointer(rebasing: piece[(low - pieceStart)..<(high - pieceStart)]))
                    }
                }
                offset += chunk.count
            }
        }
    }
}
