import Dispatch
#if canImport(Glibc)
import Glibc
#endif
import ObjectCache
import Platform
import Synchronization
import Testing

@Suite struct ObjectCacheTests {
    private func object(_ text: String, etag: String = "\"v1\"") -> CachedState {
        .object(CachedObject(body: Array(text.utf8), isCompressed: false, originalLength: text.utf8.count,
                             metadata: ObjectMetadata(contentType: "text/plain", etag: etag, lastModified: "Wed, 25 Nov 2026 06:00:00 GMT")))
    }

    private func body(_ record: CacheRecord?) -> String? {
        guard let record, case let .object(object) = record.state else { return nil }
        return String(decoding: object.body, as: UTF8.self)
    }

    private func fill(_ cache: ObjectCache, _ key: CacheKey, _ text: String) {
        guard case let .leader(flight, _) = cache.access(key) else {
            Issue.record("expected to lead the fetch of \(key)")
            return
        }
        cache.complete(flight, key: key, outcome: .record(cache.makeRecord(object(text), key: key)))
    }

    @Test func missThenHit() {
        let cache = ObjectCache(settings: CacheSettings(capacity: 1 << 20, maxObjectSize: 1 << 16), clock: ManualClock())
        fill(cache, "b/k", "hello")
        guard case let .hit(record) = cache.access("b/k") else {
            Issue.record("expected a hit")
            return
        }
        #expect(body(record) == "hello")
    }

    @Test func followersWaitForTheLeaderAndGetItsResult() {
        let cache = ObjectCache(settings: CacheSettings(capacity: 1 << 20, maxObjectSize: 1 << 16), clock: ManualClock())
        guard case let .leader(flight, _) = cache.access("b/k") else {
            Issue.record("first access must lead")
            return
        }
        let group = DispatchGroup()
        let served = Atomic<Int>(0)
        let followers = Atomic<Int>(0)
        for _ in 0..<8 {
            DispatchQueue.global().async(group: group) {
                guard case let .follower(shared, _) = cache.access("b/k") else { return }
                followers.add(1, ordering: .relaxed)
                if case let .finished(.record(record)) = shared.wait(stallLimit: 120), body(record) == "fetched once" {
                    served.add(1, ordering: .relaxed)
                }
            }
        }
        while followers.load(ordering: .relaxed) < 8 { usleepShort() }
        cache.complete(flight, key: "b/k", outcome: .record(cache.makeRecord(object("fetched once"), key: "b/k")))
        group.wait()
        #expect(served.load(ordering: .relaxed) == 8)
        if case .hit = cache.access("b/k") {} else { Issue.record("the leader's result must be cached") }
    }

    @Test func differentKeysNeverShareAFlight() {
        let cache = ObjectCache(settings: CacheSettings(capacity: 1 << 20, maxObjectSize: 1 << 16), clock: ManualClock())
        guard case let .leader(one, _) = cache.access("b/one"), case let .leader(two, _) = cache.access("b/two") else {
            Issue.record("each key leads its own fetch")
            return
        }
        // Every flight a leader starts ends, in the tests as in the worker.
        cache.complete(one, key: "b/one", outcome: .abandoned)
        cache.complete(two, key: "b/two", outcome: .abandoned)
    }

    @Test func anInvalidationSupersedesTheFetchInFlight() {
        let cache = ObjectCache(settings: CacheSettings(capacity: 1 << 20, maxObjectSize: 1 << 16), clock: ManualClock())
        fill(cache, "b/k", "old")
        cache.invalidate("b/k")
        #expect(cache.peek("b/k") == nil)
        guard case let .leader(stale, _) = cache.access("b/k") else {
            Issue.record("expected a leader")
            return
        }
        cache.invalidate("b/k")  // a PUT lands while the old body is being read
        #expect(stale.isSuperseded)
        guard case let .leader(fresh, _) = cache.access("b/k") else {
            Issue.record("a request after the write must start its own fetch, not join the old one")
            return
        }
        cache.complete(stale, key: "b/k", outcome: .record(cache.makeRecord(object("old"), key: "b/k")))
        #expect(cache.peek("b/k") == nil, "a superseded fetch must not insert")
        cache.complete(fresh, key: "b/k", outcome: .record(cache.makeRecord(object("new"), key: "b/k")))
        #expect(body(cache.peek("b/k")) == "new")
    }

    @Test func expiryRevalidationAndGrace() {
        let clock = ManualClock()
        let cache = ObjectCache(settings: CacheSettings(capacity: 1 << 20, maxObjectSize: 1 << 16, ttl: 10, staleGrace: 100), clock: clock)
        fill(cache, "b/k", "v1")
        clock.advance(by: 11)
        guard case let .leader(flight, stale?) = cache.access("b/k") else {
            Issue.record("an expired entry within grace is handed out for revalidation")
            return
        }
        #expect(body(stale) == "v1")
        cache.complete(flight, key: "b/k", outcome: .record(cache.makeRecord(stale.state, key: "b/k")))
        if case .hit = cache.access("b/k") {} else { Issue.record("a renewed entry is fresh again") }
        clock.advance(by: 10 + 100 + 1)
        #expect(cache.removeExpired() == 1)
        guard case let .leader(again, nil) = cache.access("b/k") else {
            Issue.record("past grace the entry is gone")
            return
        }
        cache.complete(again, key: "b/k", outcome: .abandoned)
    }

    @Test func negativeEntriesUseTheirOwnTTL() {
        let clock = ManualClock()
        let cache = ObjectCache(settings: CacheSettings(capacity: 1 << 20, maxObjectSize: 1 << 16, ttl: 300, negativeTTL: 10), clock: clock)
        guard case let .leader(flight, _) = cache.access("b/none") else { return }
        cache.complete(flight, key: "b/none", outcome: .record(cache.makeRecord(.missing, key: "b/none")))
        guard case let .hit(record) = cache.access("b/none"), case .missing = record.state else {
            Issue.record("a 404 is remembered")
            return
        }
        clock.advance(by: 11)
        guard case let .leader(again, nil) = cache.access("b/none") else {
            Issue.record("a remembered 404 expires after negativeTTL, with no grace")
            return
        }
        cache.complete(again, key: "b/none", outcome: .abandoned)
    }

    @Test(arguments: [EvictionPolicyKind.lru, .s3fifo])
    func theByteBoundHolds(policy: EvictionPolicyKind) {
        let settings = CacheSettings(capacity: 256 << 10, maxObjectSize: 16 << 10, policy: policy)
        let cache = ObjectCache(settings: settings, clock: ManualClock())
        for index in 0..<2_000 {
            fill(cache, CacheKey("b/\(index)"), String(repeating: "x", count: 1 + index % (8 << 10)))
            #expect(cache.usage().bytes <= settings.capacity)
        }
        #expect(cache.statistics.evictions.load(ordering: .relaxed) > 0)
        #expect(cache.usage().entries > 10)
    }

    @Test func shardsAlwaysFitTheLargestObject() {
        for (capacity, object) in [(300 << 20, (300 << 20) / 8), (1 << 20, 1 << 19), (64 << 20, 1 << 10), (10 << 20, 0)] {
            let settings = CacheSettings(capacity: capacity, maxObjectSize: object)
            let cache = ObjectCache(settings: settings, clock: ManualClock())
            fill(cache, "b/big", String(repeating: "y", count: max(1, object - 1024)))
            if object >= 2048 { #expect(cache.peek("b/big") != nil, "capacity \(capacity), object \(object)") }
        }
    }
}

func usleepShort() {
    var time = timespec(tv_sec: 0, tv_nsec: 1_000_000)
    nanosleep(&time, nil)
}

@Suite struct CostTests {
    @Test func anEntryIsChargedTheMemoryItsBodyAllocated() {
        var body: [UInt8] = []
        body.reserveCapacity(1 << 20)
        body.append(contentsOf: [1, 2, 3])
        let object = CachedObject(
            body: body, isCompressed: false, originalLength: 3,
            metadata: ObjectMetadata(contentType: "application/octet-stream", etag: "\"e\"", lastModified: ""))
        #expect(object.cost >= 1 << 20, "an array that allocated 1 MiB keeps 1 MiB alive, whatever its count")
        let record = CacheRecord(state: .object(object), key: "b/k", freshUntil: 1, keepUntil: 2)
        #expect(record.cost >= 1 << 20)
    }
}

@Suite struct FlightTests {
    @Test func aFollowerWaitsWhileTheLeaderMakesProgress() throws {
        let cache = ObjectCache(settings: CacheSettings(capacity: 1 << 20, maxObjectSize: 1 << 16), clock: ManualClock())
        guard case let .leader(flight, _) = cache.access("b/slow"), case let .follower(shared, _) = cache.access("b/slow") else {
            Issue.record("expected a leader and a follower")
            return
        }
        // The leader moves a byte every 50 ms for 1.5 s, three times the follower's stall limit.
        try lead(flight, pieces: 30) {
            cache.complete(flight, key: "b/slow", outcome: .record(cache.makeRecord(.missing, key: "b/slow")))
        }
        guard case .finished(.record) = shared.wait(stallLimit: 0.5) else {
            Issue.record("the follower gave up on a leader that was still receiving bytes")
            return
        }
    }

    @Test func aFollowerStopsWaitingAfterItsLongestWaitEvenWhileBytesMove() throws {
        let cache = ObjectCache(settings: CacheSettings(capacity: 1 << 20, maxObjectSize: 1 << 16), clock: ManualClock())
        guard case let .leader(flight, _) = cache.access("b/long"), case let .follower(shared, _) = cache.access("b/long") else {
            Issue.record("expected a leader and a follower")
            return
        }
        try lead(flight, pieces: 20) { cache.complete(flight, key: "b/long", outcome: .abandoned) }
        guard case .tooLong = shared.wait(stallLimit: 0.5, atMost: 0.3) else {
            Issue.record("the follower must stop waiting after atMost, not when the leader ends")
            return
        }
    }

    @Test func aFollowerGivesUpOnAStalledLeader() {
        let cache = ObjectCache(settings: CacheSettings(capacity: 1 << 20, maxObjectSize: 1 << 16), clock: ManualClock())
        guard case let .leader(flight, _) = cache.access("b/stuck"), case let .follower(shared, _) = cache.access("b/stuck") else {
            Issue.record("expected a leader and a follower")
            return
        }
        guard case .stalled = shared.wait(stallLimit: 0.05) else {
            Issue.record("a follower of a stalled leader must give up")
            return
        }
        cache.complete(flight, key: "b/stuck", outcome: .abandoned)
    }
}

/// A leader's fetch on a thread of its own (not a shared queue that other tests may keep
/// busy): a byte every 50 ms, `pieces` times, then `finish`.
private func lead(_ flight: Flight, pieces: Int, then finish: @escaping @Sendable () -> Void) throws {
    try spawnThread(name: "leader") {
        for _ in 0..<pieces {
            var pause = timespec(tv_sec: 0, tv_nsec: 50_000_000)
            nanosleep(&pause, nil)
            flight.recordProgress()
        }
        finish()
    }
}
