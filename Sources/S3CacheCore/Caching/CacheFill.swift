import Gzip
import ObjectCache
import S3Client

/// The leader's side of a miss: streams S3's bytes to its client as they arrive while
/// keeping a copy for the cache, then compresses that copy once.
///
/// If the client goes away mid-transfer the download still completes (the object is
/// wanted by the cache and possibly by followers); if the object is too large to keep, the
/// download stops with the client.
final class CacheFill {
    private let maxObjectSize: Int
    private let budget: FillBudget
    private let request: ReadRequest
    private let response: ResponseWriter
    private let baseReport: CacheReport
    /// Told as soon as S3's head shows the object will not be kept (and why, as a
    /// `Cache-Status` detail), so that followers stop waiting.
    private let onUncacheable: (String) -> Void
    private(set) var head: S3ResponseHead?
    /// The copy being kept; nil when the object is not cacheable.
    private var copy: [UInt8]?
    /// The length S3 announced, when the copy is being kept.
    private var expectedLength = 0
    /// Bytes of `budget` this fill holds, given back when it ends.
    private var reserved = 0
    private var sendsBody = true
    /// The end of the body, held back from the client until the object is stored (`release`).
    private var heldTail: [UInt8] = []
    /// What the response headers said, decided when S3's headers arrived.
    private(set) var report: CacheReport
    /// Where large objects go instead of memory, when there is a file tier.
    private let fileTarget: FileTarget?
    /// Set when the object goes to the file tier: its body, filled as the download passes.
    private(set) var fileFill: FileStreamFill?

    /// How a fill hands a large object to the file tier.
    struct FileTarget {
        var files: FileTier
        /// Objects at least this long go there (`FILE_MIN_SIZE`), unless they are compressible
        /// and small enough for memory, where they are kept gzipped.
        var minSize: Int
        /// A new body for the object, or nil when the tier cannot take it.
        var create: (_ length: Int, _ metadata: ObjectMetadata, _ modified: Int?) -> FileBody?
        /// The body is in the tier: other requests may use it from now on.
        var publish: (FileBody, ObjectMetadata) -> Void
    }

    /// Stops the download when neither the client nor the cache wants more bytes.
    struct NothingWanted: Error {}

    /// Bytes of a kept object's end that reach the client only once the object is in the cache:
    /// a client that has read the whole body and asks again must find it there.
    static let heldTailSize = 1024

    init(
        maxObjectSize: Int, budget: FillBudget, request: ReadRequest, response: ResponseWriter, report: CacheReport,
        fileTarget: FileTarget? = nil, onUncacheable: @escaping (String) -> Void
    ) {
        self.fileTarget = fileTarget
        self.maxObjectSize = maxObjectSize
        self.budget = budget
        self.request = request
        self.response = response
        self.baseReport = report
        self.report = report
        self.onUncacheable = onUncacheable
    }

    deinit {
        if reserved > 0 { budget.release(reserved) }
    }

    /// S3 answered 200 (or 304 to our revalidation, which carries no body and is handled by the caller).
    func begin(_ head: S3ResponseHead) throws {
        self.head = head
        guard head.status == 200 else { return }
        let length = head.header("Content-Length").flatMap(Int.init)
        // Compressible bodies are held twice for a moment: the copy and its gzip form.
        let cost = length.map { ContentCoding.isCompressible(head.header("Content-Type") ?? "") ? 2 * $0 : $0 }
        let noStore = CacheControl(head.header("Cache-Control")).noStore
        var fileBody: FileBody?
        if !noStore, let length, let fileTarget,
           Self.belongsInFiles(length: length, head: head, minSize: fileTarget.minSize, maxObjectSize: maxObjectSize)
        {
            fileBody = fileTarget.create(length, Self.metadata(head), HTTPDate.parse(head.header("Last-Modified") ?? "").map { Int($0) })
        }
        if let body = fileBody, let fileTarget {
            fileFill = FileStreamFill(body: body, files: fileTarget.files)
            report = baseReport
            report.stored = true
            fileTarget.publish(body, Self.metadata(head))
        } else if !noStore, let length, let cost, length >= 0, length <= maxObjectSize, budget.tryAcquire(cost) {
            reserved = cost
            expectedLength = length
            copy = []
            copy?.reserveCapacity(length)
            report = baseReport
            report.stored = true
        } else {
            let tooLarge = length.map { $0 < 0 || $0 > maxObjectSize } ?? true
            let reason = noStore ? "no-store" : tooLarge ? "too-large" : "fill-budget"
            report = CacheReport.bypass(reason)
            report.forwardStatus = 200
            onUncacheable(reason)
        }
        let etag = head.header("ETag") ?? ""
        let lastModified = head.header("Last-Modified") ?? ""
        let headers = Passthrough.clientHeaders(head) + Passthrough.varyHeaders(contentType: head.header("Content-Type")) + report.headers
        switch request.evaluate(etags: [etag, EntityTags.gzipTag(etag)], lastModified: lastModified) {
        case .notModified:
            try response.sendHead(
                status: 304, headers: headers.filter { !["content-length", "content-type"].contains($0.name.lowercased()) })
            sendsBody = false
        case .failed:
            var error = HTTPError(status: 412, code: "precondition_failed", message: "precondition failed")
            error.headers += report.headers
            try response.sendError(error)
            sendsBody = false
        case .proceed:
            try response.sendHead(status: 200, headers: headers)
        }
        if !sendsBody && copy == nil { throw NothingWanted() }
    }

    /// Whether an object of `length` goes to the file tier: large ones, except compressible
    /// ones that memory can hold gzipped.
    static func belongsInFiles(length: Int, head: S3ResponseHead, minSize: Int, maxObjectSize: Int) -> Bool {
        guard head.status == 200, length >= minSize, length > 0 else { return false }
        let compressible = head.header("Content-Encoding") == nil && ContentCoding.isCompressible(head.header("Content-Type") ?? "")
        return length > maxObjectSize || !compressible
    }

    func append(_ chunk: UnsafeRawBufferPointer) throws {
        if let fileFill {
            fileFill.append(chunk)
            guard sendsBody else { throw NothingWanted() }
            do {
                try response.sendBody(chunk)
            } catch {
                // The client left: the slices stored so far stay, the rest is left to later readers.
                sendsBody = false
                throw error
            }
            return
        }
        var toSend = chunk
        if copy != nil {
            if copy!.count + chunk.count <= maxObjectSize {
                copy!.append(contentsOf: chunk)
                if sendsBody, copy!.count > expectedLength - Self.heldTailSize {
                    // The last bytes wait for `release`; what is held already stays in order.
                    let keep = min(chunk.count, copy!.count - max(0, expectedLength - Self.heldTailSize))
                    heldTail.append(contentsOf: chunk[(chunk.count - keep)...])
                    toSend = UnsafeRawBufferPointer(rebasing: chunk[..<(chunk.count - keep)])
                }
            } else {
                copy = nil  // longer than announced: give up keeping it
                try sendHeldTail()
            }
        }
        if sendsBody {
            do {
                try response.sendBody(toSend)
            } catch {
                sendsBody = false
                heldTail = []
                if copy == nil { throw error }
            }
        }
        if !sendsBody && copy == nil { throw NothingWanted() }
    }

    /// Sends what was held back: the object is stored (or will not be), so the client may
    /// see its response complete.
    func release() throws {
        try sendHeldTail()
    }

    private func sendHeldTail() throws {
        guard !heldTail.isEmpty else { return }
        let tail = heldTail
        heldTail = []
        if sendsBody { try tail.withUnsafeBytes { try response.sendBody($0) } }
    }

    /// The object to cache, once the transfer completed; nil when it is not cacheable.
    func finish() -> CachedObject? {
        guard let head, let copy else { return nil }
        return Self.makeObject(body: copy, head: head)
    }

    /// Smallest body worth compressing: below it gzip's header and trailer eat the gain.
    static let minimumCompressibleSize = 1024

    /// Builds the stored form: gzip when the type is compressible and it saves at least 10%.
    static func makeObject(body: [UInt8], head: S3ResponseHead) -> CachedObject {
        let metadata = metadata(head)
        let contentType = metadata.contentType
        // An object S3 already holds encoded (Content-Encoding set) is kept exactly as it is.
        if head.header("Content-Encoding") == nil, body.count >= minimumCompressibleSize,
           ContentCoding.isCompressible(contentType),
           let compressed = try? body.withUnsafeBytes({ try Gzip.compress($0) }),
           compressed.count * 10 <= body.count * 9
        {
            return CachedObject(
                body: compressed, isCompressed: true, originalLength: body.count, metadata: metadata,
                headerLines: CachedResponder.headerLines(metadata, originalLength: body.count, gzipLength: compressed.count))
        }
        return CachedObject(
            body: body, isCompressed: false, originalLength: body.count, metadata: metadata,
            headerLines: CachedResponder.headerLines(metadata, originalLength: body.count, gzipLength: nil))
    }

    /// The same stored bytes with the metadata of `head`, a 304 or HEAD answer for the same
    /// version (its entity tag is kept when `head` has none).
    static func updating(_ object: CachedObject, from head: S3ResponseHead) -> CachedObject {
        let metadata = updating(object.metadata, from: head)
        return CachedObject(
            body: object.body, isCompressed: object.isCompressed, originalLength: object.originalLength, metadata: metadata,
            headerLines: CachedResponder.headerLines(
                metadata, originalLength: object.originalLength, gzipLength: object.isCompressed ? object.body.count : nil))
    }

    /// `stored` as a 304 or HEAD answer for the same version describes it now.
    static func updating(_ stored: ObjectMetadata, from head: S3ResponseHead) -> ObjectMetadata {
        var metadata = metadata(head)
        if metadata.etag.isEmpty { metadata.etag = stored.etag }
        if metadata.lastModified.isEmpty { metadata.lastModified = stored.lastModified }
        return metadata
    }

    /// What is kept of S3's response headers: those relayed to clients on every answer.
    static func metadata(_ head: S3ResponseHead) -> ObjectMetadata {
        let extraNames: Set<String> = ["cache-control", "content-disposition", "content-language", "expires", "content-encoding"]
        let extra = Passthrough.clientHeaders(head)
            .filter { extraNames.contains($0.name.lowercased()) }
            .map { ObjectMetadata.Header(name: $0.name, value: $0.value) }
        return ObjectMetadata(
            contentType: head.header("Content-Type") ?? "application/octet-stream", etag: head.header("ETag") ?? "",
            lastModified: head.header("Last-Modified") ?? "", extraHeaders: extra)
    }
}
