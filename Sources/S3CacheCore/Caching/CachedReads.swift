import FastCGI
import ObjectCache
import S3Client

/// GET and HEAD through the cache: hits from memory, one backend fetch per key however many
/// requests want it, revalidation of expired entries, and stale answers when S3 fails.
final class CachedReads {
    private let cache: ObjectCache
    private let store: any ObjectStore
    private let gate: BackendGate
    private let fillBudget: FillBudget
    private let responder: CachedResponder
    /// How long a follower waits for the leader.
    private let waits: FollowerWaits

    /// Where objects of at least this size go when a file tier is configured (`FILE_MIN_SIZE`).
    private let fileMinSize: Int
    private let fileReads: FileReads?

    init(
        cache: ObjectCache, store: any ObjectStore, gate: BackendGate, fillBudget: FillBudget, waits: FollowerWaits,
        fileMinSize: Int = .max
    ) {
        self.cache = cache
        self.store = store
        self.gate = gate
        self.fillBudget = fillBudget
        self.fileMinSize = fileMinSize
        fileReads = cache.files.map {
            FileReads(cache: cache, files: $0, store: store, gate: gate, waits: waits)
        }
        self.responder = CachedResponder(statistics: cache.statistics, files: fileReads)
        self.waits = waits
    }

    private var statistics: CacheStatistics { cache.statistics }

    func get(_ address: ObjectAddress, request: ReadRequest, response: ResponseWriter) throws -> CacheReport {
        do {
            return try lookUp(address, request: request, response: response)
        } catch is FileReads.ObjectChanged where !response.headSent {
            // S3 holds another version than the file tier's body, which is gone now: start over.
            return try lookUp(address, request: request, response: response)
        }
    }

    private func lookUp(_ address: ObjectAddress, request: ReadRequest, response: ResponseWriter) throws -> CacheReport {
        let key = address.cacheKey
        if request.range != nil {
            if let record = cache.freshRecord(key) { return try hit(record, address: address, request: request, response: response) }
            // A slice of an uncached object: let S3 cut it rather than download the whole object,
            // unless the file tier can take the object and fetch the slices the range needs.
            if fileReads == nil {
                return try bypass(address, stale: cache.staleRecord(key), request: request, response: response, detail: "range")
            }
        }
        for _ in 0..<3 {
            switch cache.access(key, reserveFetch: { gate.tryAcquire() }) {
            case let .hit(record):
                return try hit(record, address: address, request: request, response: response)
            case let .leader(flight, stale) where request.range != nil:
                let answer = try {
                    defer { gate.release() }
                    return try probe(flight, address: address, stale: stale, request: request, response: response)
                }()
                if let answer { return answer }
                return try bypass(address, stale: nil, request: request, response: response, detail: "range")
            case let .leader(flight, stale):
                defer { gate.release() }
                return try lead(flight, address: address, stale: stale, request: request, response: response)
            case let .refused(stale):
                return try refuse(stale: stale, address: address, request: request, response: response)
            case let .revalidating(stale):
                statistics.staleWhileRevalidating.add(1, ordering: .relaxed)
                let report = CacheReport(result: .stale, detail: "stale-while-revalidate")
                try responder.send(stale, address: address, report: report, request: request, response: response)
                return report
            case let .follower(flight, stale):
                if let report = try follow(flight, address: address, stale: stale, request: request, response: response) {
                    return report
                }
            }
        }
        return try bypass(address, stale: nil, request: request, response: response, detail: "contended")
    }

    func head(_ address: ObjectAddress, request: ReadRequest, response: ResponseWriter) throws -> CacheReport {
        let key = address.cacheKey
        if let record = cache.freshRecord(key) { return try hit(record, address: address, request: request, response: response) }
        var report = CacheReport(result: .miss, forwardStatus: 200)
        let stale = cache.staleRecord(key)
        if let answer = try askBackend(stale: stale, address: address, report: report, request: request, response: response, {
            try Passthrough(store: store).head(
                address, headers: request.forwardedHeaders, response: response, extraHeaders: report.headers)
        }) {
            return answer
        }
        report.forwardStatus = response.status
        statistics.misses.add(1, ordering: .relaxed)
        return report
    }

    private func hit(_ record: CacheRecord, address: ObjectAddress, request: ReadRequest, response: ResponseWriter) throws -> CacheReport {
        switch record.state {
        case .missing: statistics.negativeHits.add(1, ordering: .relaxed)
        case .object: statistics.hits.add(1, ordering: .relaxed)
        case .file:
            statistics.hits.add(1, ordering: .relaxed)
            cache.files?.statistics.hits.add(1, ordering: .relaxed)
        }
        let report = CacheReport.hit(ttl: max(0, Int(record.freshUntil - cache.clock.now())))
        try responder.send(record, address: address, report: report, request: request, response: response)
        return report
    }

    private func lead(
        _ flight: Flight, address: ObjectAddress, stale: CacheRecord?, request: ReadRequest, response: ResponseWriter
    ) throws -> CacheReport {
        let key = address.cacheKey
        let leader = Leader(flight, key: key, cache: cache)
        defer { leader.complete(.abandoned) }
        let complete = leader.complete

        let fileTarget = cache.files.map { files in
            CacheFill.FileTarget(
                files: files, minSize: fileMinSize,
                create: { [cache] length, metadata, modified in
                    cache.createFile(key, length: length, metadata: metadata, modified: modified)
                },
                publish: { [cache] body, metadata in
                    let state = CachedState.file(CachedFile(body: body, metadata: metadata))
                    complete(.record(cache.makeRecord(state, key: key, freshness: Self.freshness(state) ?? .configured)))
                })
        }
        let fill = CacheFill(
            maxObjectSize: cache.settings.maxObjectSize, budget: fillBudget, request: request, response: response,
            report: CacheReport(result: .miss, forwardStatus: 200), fileTarget: fileTarget,
            onUncacheable: { complete(.uncacheable(reason: $0)) })
        do {
            let head = try WorkerPool.blocking {
                try store.getObject(
                    bucket: address.bucket, key: address.key, headers: Self.revalidation(stale),
                    onHead: { try fill.begin($0) },
                    onBody: { chunk in
                        flight.recordProgress()
                        if fill.fileFill == nil { statistics.bytesFetched.add(chunk.count, ordering: .relaxed) }
                        try fill.append(chunk)
                    })
            }
            if head.status == 304, let stale {
                return try answerNotModified(stale, head: head, leader: leader, address: address, request: request, response: response)
            }
            if stale != nil { statistics.revalidationsChanged.add(1, ordering: .relaxed) }
            if fill.fileFill != nil {
                statistics.misses.add(1, ordering: .relaxed)  // published to the file tier when S3's head came
            } else if let object = fill.finish(), let freshness = Self.freshness(.object(object)) {
                complete(.record(cache.makeRecord(.object(object), key: key, freshness: freshness)))
                statistics.misses.add(1, ordering: .relaxed)
            } else {
                complete(.uncacheable(reason: "no-store"))
                statistics.bypasses.add(1, ordering: .relaxed)
            }
            try fill.release()
            return fill.report
        } catch let error as S3Error where error.isNotFound {
            return try answerNotFound(leader: leader, address: address, request: request, response: response)
        } catch let error as S3Error where error.isBackendFailure {
            complete(.failed(error))
            if let stale, !response.headSent {
                return try serveStale(stale, address: address, forwardStatus: error.status, detail: "stale-if-error", request: request, response: response)
            }
            throw CacheReportedError(error, report: fill.report)
        } catch is CacheFill.NothingWanted {
            complete(.abandoned)
            statistics.bypasses.add(1, ordering: .relaxed)
            return fill.report
        } catch let error as S3Error {
            complete(.failed(error))
            throw CacheReportedError(error, report: fill.report)
        }
    }

    /// A range request on a miss, with a file tier: S3's HEAD says how large the object is. A
    /// large one gets an empty body in the file tier, and the range is answered from it, which
    /// fetches just the slices it covers; anything else is a range S3 cuts itself, as without a
    /// file tier (nil: the caller lets S3 answer).
    private func probe(
        _ flight: Flight, address: ObjectAddress, stale: CacheRecord?, request: ReadRequest, response: ResponseWriter
    ) throws -> CacheReport? {
        let key = address.cacheKey
        let leader = Leader(flight, key: key, cache: cache)
        defer { leader.complete(.abandoned) }
        let complete = leader.complete
        let head: S3ResponseHead
        do {
            head = try WorkerPool.blocking {
                try store.headObject(bucket: address.bucket, key: address.key, headers: Self.revalidation(stale))
            }
        } catch let error as S3Error where error.isNotFound {
            return try answerNotFound(leader: leader, address: address, request: request, response: response)
        } catch let error as S3Error {
            complete(.failed(error))
            if let stale, error.isBackendFailure {
                return try serveStale(
                    stale, address: address, forwardStatus: error.status, detail: "stale-if-error", request: request, response: response)
            }
            throw CacheReportedError(error, report: CacheReport(result: .miss))
        }
        if head.status == 304, let stale {
            return try answerNotModified(stale, head: head, leader: leader, address: address, request: request, response: response)
        }
        if stale != nil { statistics.revalidationsChanged.add(1, ordering: .relaxed) }
        let metadata = CacheFill.metadata(head)
        if let length = head.header("Content-Length").flatMap(Int.init),
           let freshness = CacheControl.freshness(metadata),
           CacheFill.belongsInFiles(length: length, head: head, minSize: fileMinSize, maxObjectSize: cache.settings.maxObjectSize),
           let body = cache.createFile(
               key, length: length, metadata: metadata,
               modified: HTTPDate.parse(metadata.lastModified).map { Int($0) })
        {
            let record = cache.makeRecord(.file(CachedFile(body: body, metadata: metadata)), key: key, freshness: freshness)
            complete(.record(record))
            statistics.misses.add(1, ordering: .relaxed)
            let report = CacheReport(result: .miss, forwardStatus: 200, stored: true)
            try responder.send(record, address: address, report: report, request: request, response: response)
            return report
        }
        complete(.uncacheable(reason: "range"))
        return nil
    }

    /// The lead of one flight: ends it once, whoever gets there first (the head may release the
    /// followers long before the end of the body).
    private final class Leader {
        let flight: Flight
        let key: CacheKey
        let cache: ObjectCache
        private var completed = false

        init(_ flight: Flight, key: CacheKey, cache: ObjectCache) {
            self.flight = flight
            self.key = key
            self.cache = cache
        }

        func complete(_ outcome: Flight.Outcome) {
            guard !completed else { return }
            cache.complete(flight, key: key, outcome: outcome)
            completed = true
        }
    }

    /// `If-None-Match` with the stale copy's tag, when there is one to revalidate.
    private static func revalidation(_ stale: CacheRecord?) -> [(name: String, value: String)] {
        guard let etag = stale?.state.metadata?.etag, !etag.isEmpty else { return [] }
        return [("If-None-Match", etag)]
    }

    /// S3 says the object does not exist: remembered, and answered 404.
    private func answerNotFound(
        leader: Leader, address: ObjectAddress, request: ReadRequest, response: ResponseWriter
    ) throws -> CacheReport {
        let record = cache.makeRecord(.missing, key: leader.key)
        leader.complete(.record(record))
        statistics.misses.add(1, ordering: .relaxed)
        let report = CacheReport(result: .miss, forwardStatus: 404, stored: true)
        try responder.send(record, address: address, report: report, request: request, response: response)
        return report
    }

    /// S3's 304 to a revalidation: the stale copy renewed, with the metadata S3 holds now.
    private func answerNotModified(
        _ stale: CacheRecord, head: S3ResponseHead, leader: Leader, address: ObjectAddress, request: ReadRequest,
        response: ResponseWriter
    ) throws -> CacheReport {
        statistics.revalidations.add(1, ordering: .relaxed)
        let key = leader.key
        let current = revalidated(stale, notModified: head, address: address)
        guard let freshness = Self.freshness(current) else {
            // The object's metadata now says no-store: answer from the same bytes, keep nothing.
            leader.complete(.uncacheable(reason: "no-store"))
            cache.invalidate(key)
            let report = CacheReport(result: .revalidated, forwardStatus: 304, detail: "no-store")
            try responder.send(
                CacheRecord(state: current, key: key, freshUntil: 0, keepUntil: 0), address: address, report: report,
                request: request, response: response)
            return report
        }
        let renewed = cache.makeRecord(current, key: key, freshness: freshness)
        leader.complete(.record(renewed))
        let report = CacheReport(result: .revalidated, forwardStatus: 304, stored: true)
        try responder.send(renewed, address: address, report: report, request: request, response: response)
        return report
    }

    /// How long `state` stays fresh, by its own `Cache-Control` or `Expires` where it has them;
    /// nil when it must not be stored.
    private static func freshness(_ state: CachedState) -> Freshness? {
        guard let metadata = state.metadata else { return .configured }
        return CacheControl.freshness(metadata)
    }


    /// The stale entry as S3's 304 describes it now. A 304 says the bytes are unchanged, not the
    /// metadata: a copy in place changes `Content-Type` or `Cache-Control` and keeps the entity
    /// tag. When the 304 carries the object's headers they are taken. When it does not, and its
    /// `Last-Modified` differs from ours or is missing (moto sends none), a HEAD pinned to the
    /// same tag fetches them; AWS's 304 has `Last-Modified`, so there a HEAD follows only a change.
    private func revalidated(_ stale: CacheRecord, notModified: S3ResponseHead, address: ObjectAddress) -> CachedState {
        guard let metadata = stale.state.metadata else { return stale.state }
        var current = notModified
        if notModified.header("Content-Type") == nil {
            guard notModified.header("Last-Modified") != metadata.lastModified,
                  let head = try? store.headObject(
                      bucket: address.bucket, key: address.key, headers: [("If-Match", metadata.etag)])
            else { return stale.state }
            current = head
        }
        switch stale.state {
        case let .object(object): return .object(CacheFill.updating(object, from: current))
        case let .file(file): return .file(CachedFile(body: file.body, metadata: CacheFill.updating(metadata, from: current)))
        case .missing: return stale.state
        }
    }

    /// Waits for another request's fetch. Returns nil when this request should try again
    /// (the leader gave up), and streams the object itself when it is too large to share.
    private func follow(
        _ flight: Flight, address: ObjectAddress, stale: CacheRecord?, request: ReadRequest, response: ResponseWriter
    ) throws -> CacheReport? {
        // No backend permit while waiting: the leader holds the one this key needs, and a
        // stampede of followers must not crowd out other keys' misses (or be refused itself).
        let report = CacheReport(result: .miss, collapsed: true)
        let outcome: Flight.Outcome
        switch WorkerPool.blocking({ flight.wait(stallLimit: waits.stallLimit, atMost: waits.longest) }) {
        case let .finished(finished):
            outcome = finished
        case .stalled:
            if let stale { return try serveStale(stale, address: address, forwardStatus: nil, detail: "stale-if-error", request: request, response: response) }
            throw CacheReportedError(
                S3Error.timeout(message: "another request's fetch received nothing for \(Int(waits.stallLimit)) s"), report: report)
        case .tooLong:
            // Still moving, but nginx would give up on this silent request before it ends.
            if let stale { return try serveStale(stale, address: address, forwardStatus: nil, detail: "slow-fetch", request: request, response: response) }
            return try bypass(address, stale: nil, request: request, response: response, detail: "slow-fetch")
        }
        switch outcome {
        case let .record(record):
            statistics.coalesced.add(1, ordering: .relaxed)
            var report = CacheReport(result: .miss, forwardStatus: nil, stored: true, collapsed: true)
            if case .missing = record.state { report.forwardStatus = 404 }
            try responder.send(record, address: address, report: report, request: request, response: response)
            return report
        case let .uncacheable(reason):
            return try bypass(address, stale: stale, request: request, response: response, detail: reason)
        case let .failed(error):
            if let stale, let backend = error as? S3Error, backend.isBackendFailure {
                return try serveStale(stale, address: address, forwardStatus: backend.status, detail: "stale-if-error", request: request, response: response)
            }
            throw CacheReportedError(error, report: report)
        case .abandoned:
            return nil
        }
    }

    /// Too many requests are waiting on S3 already: an expired copy if there is one, else 503.
    private func refuse(stale: CacheRecord?, address: ObjectAddress, request: ReadRequest, response: ResponseWriter) throws -> CacheReport {
        statistics.backendRejections.add(1, ordering: .relaxed)
        if let stale { return try serveStale(stale, address: address, forwardStatus: nil, detail: "backend-busy", request: request, response: response) }
        throw CacheReportedError(HTTPError.backendBusy, report: CacheReport(result: .miss, detail: "backend-busy"))
    }

    /// Runs a request S3 answers directly (HEAD, ranges, bypasses) under a backend permit: nil
    /// when `body` answered; the stale copy's answer when S3 is busy or failing and one is held.
    private func askBackend(
        stale: CacheRecord?, address: ObjectAddress, report: CacheReport, request: ReadRequest, response: ResponseWriter,
        _ body: () throws -> Void
    ) throws -> CacheReport? {
        guard gate.tryAcquire() else { return try refuse(stale: stale, address: address, request: request, response: response) }
        do {
            defer { gate.release() }
            try WorkerPool.blocking(body)
            return nil
        } catch let error as S3Error where error.isBackendFailure && !response.headSent {
            if let stale {
                return try serveStale(stale, address: address, forwardStatus: error.status, detail: "stale-if-error", request: request, response: response)
            }
            throw CacheReportedError(error, report: report)
        } catch let error as S3Error {
            throw CacheReportedError(error, report: report)
        } catch let error as HTTPError {
            throw CacheReportedError(error, report: report)
        }
    }

    private func serveStale(
        _ record: CacheRecord, address: ObjectAddress, forwardStatus: Int?, detail: String, request: ReadRequest,
        response: ResponseWriter
    ) throws -> CacheReport {
        statistics.staleServes.add(1, ordering: .relaxed)
        let report = CacheReport(result: .stale, forwardStatus: forwardStatus, detail: detail)
        try responder.send(record, address: address, report: report, request: request, response: response)
        return report
    }

    private func bypass(
        _ address: ObjectAddress, stale: CacheRecord?, request: ReadRequest, response: ResponseWriter, detail: String
    ) throws -> CacheReport {
        let report = CacheReport.bypass(detail)
        if let answer = try askBackend(stale: stale, address: address, report: report, request: request, response: response, {
            try Passthrough(store: store).get(address, request: request, response: response, extraHeaders: report.headers)
        }) {
            return answer
        }
        statistics.bypasses.add(1, ordering: .relaxed)
        return report
    }
}

extension ObjectAddress {
    /// One string per object: bucket names cannot contain `/`, so this is unambiguous.
    var cacheKey: CacheKey { CacheKey(bucket + "/" + key) }
}

extension S3Error {
    /// S3 says the object (or its bucket) does not exist.
    var isNotFound: Bool { BackendOutcome(self) == .notFound }

    /// S3 is down, slow or failing, as opposed to refusing the request: the cases where an
    /// expired copy is better than an error. Classified once, as the metrics count it.
    var isBackendFailure: Bool {
        switch BackendOutcome(self) {
        case .throttled, .serverError, .timeout, .unreachable: return true
        case .ok, .notModified, .notFound, .clientError, .denied, .aborted: return false
        }
    }

    /// The status S3 answered, or the one we report for a failure without an answer.
    var status: Int {
        switch self {
        case let .service(status, _, _, _): return status
        case .timeout: return 504
        case .transport, .aborted: return 502
        }
    }
}

/// How long a request waits for another request's fetch of the same key.
struct FollowerWaits {
    /// Without the leader's fetch receiving a byte: then it has failed (504, or the stale copy).
    var stallLimit: Double
    /// In all: past it the follower fetches for itself (or answers from the stale copy), so that
    /// its own fetch still answers before nginx's `fastcgi_read_timeout` ends a request that has
    /// sent nothing.
    var longest: Double

    /// Derived from the S3 timeouts and nginx's read timeout (`NGINX_READ_TIMEOUT`, which must
    /// match `fastcgi_read_timeout` in the shipped snippet; a unit test checks that they do).
    init(_ configuration: Configuration) {
        let ownFetch = configuration.s3.connectTimeout + configuration.s3.readTimeout
        stallLimit = ownFetch + 1
        longest = max(1, configuration.nginxReadTimeout - ownFetch)
    }

    init(stallLimit: Double, longest: Double) {
        self.stallLimit = stallLimit
        self.longest = longest
    }
}
