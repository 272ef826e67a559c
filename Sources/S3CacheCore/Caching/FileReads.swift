#if canImport(Glibc)
import Glibc
#endif
import FastCGI
import ObjectCache
import Platform
import S3Client

/// Answers about objects in the file tier. The worker decides everything (conditionals,
/// `If-Range`, the range, the headers); then nginx sends the bytes from the file itself
/// (`X-Accel-Redirect` to the internal locations of `s3cache-locations.conf`) when every slice
/// they need is on disk. Otherwise the worker streams them, reading the slices it has and
/// fetching the others from S3, `Range` plus `If-Match` each, one fetch per slice however many
/// requests want it.
final class FileReads {
    private let cache: ObjectCache
    private let files: FileTier
    private let store: any ObjectStore
    private let gate: BackendGate
    private let waits: FollowerWaits

    /// Where the internal locations are: `…/whole/<name>` sends the file as a 200,
    /// `…/range/<name>` lets nginx cut the one range the worker decided on.
    static let redirectPrefix = "/_s3cache_files/"
    /// Bytes read from a file per write to nginx when the worker streams it.
    private static let readChunk = 256 << 10

    init(cache: ObjectCache, files: FileTier, store: any ObjectStore, gate: BackendGate, waits: FollowerWaits) {
        self.cache = cache
        self.files = files
        self.store = store
        self.gate = gate
        self.waits = waits
    }

    /// S3 answered a slice fetch for another version than the body's: the object changed.
    struct ObjectChanged: Error {}

    /// The answer to `request` from `file`.
    func send(_ file: CachedFile, address: ObjectAddress, report: CacheReport, request: ReadRequest, response: ResponseWriter) throws {
        let metadata = file.metadata
        let body = file.body
        if request.hasPreconditions, try CachedResponder.answerPreconditions(
            metadata, etags: [metadata.etag], sentTag: metadata.etag, isCompressed: false, report: report, request: request,
            response: response)
        {
            return
        }
        let length = body.length
        let whole = CachedResponder.wholeHeaders(metadata, originalLength: length, gzipLength: nil, sendsGzip: false)
        /// An answer that fetches some of its slices says so (`detail=partial`): not all of it
        /// came from the cache.
        func reported(_ start: Int, _ end: Int) -> [(name: String, value: String)] {
            guard report.result == .hit, !body.isPresent(from: start, through: end) else { return report.headers }
            var partial = report
            partial.detail = "partial"
            return partial.headers
        }
        switch request.byteRange(length: length, strongETag: metadata.etag, lastModified: metadata.lastModified) {
        case .unsatisfiable:
            try CachedResponder.sendUnsatisfiable(length: length, report: report, response: response)
        case let .partial(start, end):
            let partial = CachedResponder.partialHeaders(metadata, start: start, end: end, length: length, isCompressed: false)
            if response.isHead {
                try response.sendHead(status: 206, headers: partial + report.headers)
                return
            }
            if try redirect(body, from: start, through: end, partial: true, headers: whole + report.headers, request: request, response: response) {
                return
            }
            let reportHeaders = reported(start, end)
            // A range's client may stop reading at any point (a player probing a file): only
            // the slice its first bytes need is fetched before the head.
            if !body.isPresent(slice: start / body.sliceSize) {
                try fetchFirstMissingSlice(body, from: start, through: end, address: address)
            }
            try response.sendHead(status: 206, headers: partial + reportHeaders)
            try stream(body, address: address, from: start, through: end, response: response)
        case .whole:
            if response.isHead {
                try response.sendHead(status: 200, headers: whole + report.headers)
                return
            }
            if try redirect(body, from: 0, through: length - 1, partial: false, headers: whole + report.headers, request: request, response: response) {
                return
            }
            let reportHeaders = reported(0, length - 1)
            try fetchFirstMissingSlice(body, from: 0, through: length - 1, address: address)
            try response.sendHead(status: 200, headers: whole + reportHeaders)
            try stream(body, address: address, from: 0, through: length - 1, response: response)
        }
    }

    /// Hands the answer to nginx when the bytes are all on disk and nginx would answer exactly
    /// as the worker decided; false when the worker must stream it.
    ///
    /// nginx re-checks `If-Match` against the file before anything else, and with no ETag of
    /// its own refuses every one (412), so those requests are streamed; `If-Unmodified-Since`
    /// it checks against the file's time, which is S3's `Last-Modified` where S3 sent one.
    private func redirect(
        _ body: FileBody, from start: Int, through end: Int, partial: Bool, headers: [(name: String, value: String)],
        request: ReadRequest, response: ResponseWriter
    ) throws -> Bool {
        if response.answersMissingFile { return false }
        if let ifMatch = request.ifMatch, ifMatch.trimmingWhitespace() != "*" { return false }
        if request.ifUnmodifiedSince != nil, body.modified == nil { return false }
        guard body.isPresent(from: start, through: end) else { return false }
        let location = Self.redirectPrefix + (partial ? "range/" : "whole/") + body.name
        try response.sendHead(status: 200, headers: headers + [("X-Accel-Redirect", location)])
        response.redirected(status: partial ? 206 : 200, bytes: end - start + 1)
        files.statistics.redirects.add(1, ordering: .relaxed)
        files.statistics.bytesRedirected.add(end - start + 1, ordering: .relaxed)
        return true
    }

    /// Fetches the first slice of `start...end` that is not on disk before anything is sent:
    /// when S3 no longer holds this version, the request can still start over with the new one
    /// rather than be cut short (as it is when the object changes later in the stream). For a
    /// whole GET, whose client reads it all, and for the first slice of a range.
    private func fetchFirstMissingSlice(_ body: FileBody, from start: Int, through end: Int, address: ObjectAddress) throws {
        guard let index = body.slices(from: start, through: end).first(where: { !body.isPresent(slice: $0) }),
              case let .fill(fill) = files.claim(body, slice: index)
        else { return }
        try fetch(body, index: index, fill: fill, wanted: nil, address: address, response: nil)
    }

    /// Bytes `start...end` of `body`, slice by slice: read from the file where they are on
    /// disk, fetched from S3 (and stored) where they are not.
    ///
    /// Media players and probes ask for everything from an offset (`bytes=0-`) and hang up once
    /// they have read a little. The bytes on disk go out at once and sit in socket buffers, so
    /// before the first slice this answer would fetch after sending some, the worker gives the
    /// client `readAheadPause` (250 ms) to hang up: a probe that read what it wanted then costs S3 nothing.
    func stream(_ body: FileBody, address: ObjectAddress, from start: Int, through end: Int, response: ResponseWriter) throws {
        var paused = false
        for index in body.slices(from: start, through: end) {
            let slice = body.bounds(ofSlice: index)
            let wanted = max(start, slice.lowerBound)...min(end, slice.upperBound - 1)
            if response.bodyBytesSent > 0, !body.isPresent(slice: index) {
                if response.clientGone(within: paused ? 0 : Self.readAheadPause) { throw FastCGIError.clientGone }
                paused = true
            }
            try sendSlice(body, index: index, wanted: wanted, address: address, response: response)
        }
    }

    /// How long a streamed answer waits, once, for its client to hang up before it fetches a
    /// slice nobody may read.
    static let readAheadPause = 0.25

    private func sendSlice(
        _ body: FileBody, index: Int, wanted: ClosedRange<Int>, address: ObjectAddress, response: ResponseWriter
    ) throws {
        for _ in 0..<4 {
            switch files.claim(body, slice: index) {
            case .present:
                if try read(body, wanted, response: response) { return }
                return try fetch(body, index: index, fill: nil, wanted: wanted, address: address, response: response)
            case let .fill(fill):
                return try fetch(body, index: index, fill: fill, wanted: wanted, address: address, response: response)
            case .uncached:
                return try fetch(body, index: index, fill: nil, wanted: wanted, address: address, response: response)
            case let .wait(flight):
                switch WorkerPool.blocking({ flight.wait(stallLimit: waits.stallLimit, atMost: waits.longest) }) {
                case .finished: continue
                case .stalled, .tooLong:
                    return try fetch(body, index: index, fill: nil, wanted: wanted, address: address, response: response)
                }
            }
        }
        try fetch(body, index: index, fill: nil, wanted: wanted, address: address, response: response)
    }

    /// Sends `wanted` from the data file; false when the file is gone (evicted meanwhile).
    private func read(_ body: FileBody, _ wanted: ClosedRange<Int>, response: ResponseWriter) throws -> Bool {
        guard let fd = try? FileSystem.open(body.path, write: false) else { return false }
        defer { FileSystem.close(fd) }
        var buffer = [UInt8](repeating: 0, count: min(Self.readChunk, wanted.count))
        var position = wanted.lowerBound
        while position <= wanted.upperBound {
            let count = min(buffer.count, wanted.upperBound - position + 1)
            let read = try buffer.withUnsafeMutableBytes { raw in
                try FileSystem.read(into: UnsafeMutableRawBufferPointer(rebasing: raw[..<count]), from: fd, at: position)
            }
            guard read == count else {
                // Shorter than the record said: never send what is not there.
                throw SystemError("pread(\(body.name)): file shorter than its record", errno: EIO)
            }
            try buffer.withUnsafeBytes { try response.sendBody(UnsafeRawBufferPointer(rebasing: $0[..<count])) }
            position += count
        }
        files.statistics.bytesStreamed.add(wanted.count, ordering: .relaxed)
        return true
    }

    /// Fetches slice `index` from S3, pinned to the body's version (`If-Match`), storing it
    /// through `fill` when given and sending the `wanted` part of it as it arrives.
    private func fetch(
        _ body: FileBody, index: Int, fill: SliceFill?, wanted: ClosedRange<Int>?, address: ObjectAddress, response: ResponseWriter?
    ) throws {
        let slice = body.bounds(ofSlice: index)
        let etag = body.metadata.etag
        guard gate.tryAcquire() else { throw HTTPError.backendBusy }
        defer { gate.release() }
        var position = slice.lowerBound
        var clientGone = false
        do {
            _ = try WorkerPool.blocking {
                try store.getObject(
                    bucket: address.bucket, key: address.key,
                    headers: [("Range", "bytes=\(slice.lowerBound)-\(slice.upperBound - 1)"), ("If-Match", etag)],
                    onHead: { head in
                        guard Self.isSlice(head, slice, of: body.length, etag: etag) else { throw ObjectChanged() }
                    },
                    onBody: { chunk in
                        guard position + chunk.count <= slice.upperBound else { throw ObjectChanged() }
                        fill?.write(chunk)
                        files.statistics.bytesFetched.add(chunk.count, ordering: .relaxed)
                        if let wanted, let response, !clientGone {
                            let low = max(wanted.lowerBound, position), high = min(wanted.upperBound + 1, position + chunk.count)
                            guard low < high else {
                                position += chunk.count
                                return
                            }
                            do {
                                try response.sendBody(UnsafeRawBufferPointer(rebasing: chunk[(low - position)..<(high - position)]))
                            } catch {
                                // The slice is still worth finishing for the next reader.
                                clientGone = true
                                if fill == nil { throw error }
                            }
                        }
                        position += chunk.count
                    })
            }
        } catch let error as S3Error where error.status == 412 || error.isNotFound {
            cache.invalidate(body.key, body: body)
            throw ObjectChanged()
        } catch is ObjectChanged {
            cache.invalidate(body.key, body: body)
            throw ObjectChanged()
        }
        guard position == slice.upperBound else { throw ObjectChanged() }
        fill?.finish()
        if clientGone { throw FastCGIError.clientGone }
    }


    /// Whether S3's answer is exactly the slice asked for, of the version asked for.
    private static func isSlice(_ head: S3ResponseHead, _ slice: Range<Int>, of length: Int, etag: String) -> Bool {
        if let tag = head.header("ETag"), tag != etag { return false }
        if head.status == 206 {
            return head.header("Content-Range")?.trimmingWhitespace() == "bytes \(slice.lowerBound)-\(slice.upperBound - 1)/\(length)"
        }
        // A server that ignores Range answers with the whole object: usable only when that is the slice.
        return head.status == 200 && slice.lowerBound == 0 && slice.upperBound == length
            && head.header("Content-Length").flatMap(Int.init) == length
    }
}
