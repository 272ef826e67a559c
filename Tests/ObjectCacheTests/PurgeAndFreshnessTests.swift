import ObjectCache
import Testing

@Suite struct PurgeAndFreshnessTests {
    private func object(_ text: String) -> CachedState {
        .object(CachedObject(body: Array(text.utf8), isCompressed: false, originalLength: text.utf8.count,
                             metadata: ObjectMetadata(contentType: "text/plain", etag: "\"v1\"", lastModified: "")))
    }

    private func fill(_ cache: ObjectCache, _ key: CacheKey, _ text: String = "body", freshness: Freshness = .configured) {
        guard case let .leader(flight, _) = cache.access(key) else {
            Issue.record("expected to lead the fetch of \(key)")
            return
        }
        cache.complete(flight, key: key, outcome: .record(cache.makeRecord(object(text), key: key, freshness: freshness)))
    }

    private func makeCache(_ clock: ManualClock = ManualClock(), ttl: Double = 100, swr: Double = 10) -> ObjectCache {
        ObjectCache(
            settings: CacheSettings(capacity: 64 << 20, maxObjectSize: 1 << 16, ttl: ttl, staleGrace: 1000, staleWhileRevalidate: swr,
                                    maxTTL: 500),
            clock: clock)
    }

    @Test func aHardPurgeOfOneKeyDropsItAndSupersedesItsFetch() {
        let cache = makeCache()
        fill(cache, "b/a")
        fill(cache, "b/ab")
        #expect(cache.purge(.key("b/a"), mode: .hard) == 1)
        #expect(cache.peek("b/a") == nil)
        #expect(cache.peek("b/ab") != nil, "a key purge is exact, not a prefix")
        guard case let .leader(flight, _) = cache.access("b/a") else {
            Issue.record("expected a leader")
            return
        }
        #expect(cache.purge(.key("b/a"), mode: .hard) == 0)
        #expect(flight.isSuperseded, "a fetch in flight when the purge came must not store what it read")
        cache.complete(flight, key: "b/a", outcome: .record(cache.makeRecord(object("old"), key: "b/a")))
        #expect(cache.peek("b/a") == nil)
        #expect(cache.statistics.hardPurges.load(ordering: .relaxed) == 2)
        #expect(cache.statistics.purgedEntries.load(ordering: .relaxed) == 1)
    }

    @Test func aPrefixPurgeTakesEveryKeyWithThePrefixBytewiseAndNothingElse() {
        let cache = makeCache()
        let inside: [CacheKey] = (0..<3000).map { CacheKey("b/dir/\($0)") } + ["b/dir/", "b/dir/caf\u{e9}"]
        let outside: [CacheKey] = ["b/di", "b/dirt", "c/dir/1", "b/Dir/1", "b/caf\u{65}\u{301}"]
        for key in inside + outside { fill(cache, key) }
        guard case let .leader(flight, _) = cache.access("b/dir/in-flight") else {
            Issue.record("expected a leader")
            return
        }
        #expect(cache.purge(.prefix("b/dir/"), mode: .hard) == inside.count)
        #expect(flight.isSuperseded)
        cache.complete(flight, key: "b/dir/in-flight", outcome: .record(cache.makeRecord(object("old"), key: "b/dir/in-flight")))
        for key in inside + ["b/dir/in-flight"] { #expect(cache.peek(key) == nil, "\(key) survived") }
        for key in outside { #expect(cache.peek(key) != nil, "\(key) was purged") }
        #expect(cache.usage().entries == outside.count)
    }

    @Test func aSoftPurgeExpiresEntriesForRevalidationAndKeepsThemForErrors() {
        let clock = ManualClock()
        let cache = makeCache(clock)
        fill(cache, "b/x/1", "one")
        fill(cache, "b/x/2", "two")
        #expect(cache.purge(.prefix("b/x/"), mode: .soft) == 2)
        #expect(cache.usage().entries == 2)
        guard case let .leader(flight, stale?) = cache.access("b/x/1") else {
            Issue.record("a soft-purged entry is revalidated by the next read")
            return
        }
        guard case let .follower(_, staleToo?) = cache.access("b/x/1") else {
            Issue.record("while it is revalidated, a soft-purged entry is not served as stale-while-revalidate")
            return
        }
        #expect(staleToo === stale)
        #expect(cache.staleRecord("b/x/1") != nil, "the copy stays for stale-if-error")
        cache.complete(flight, key: "b/x/1", outcome: .record(cache.makeRecord(stale.state, key: "b/x/1")))
        if case .hit = cache.access("b/x/1") {} else { Issue.record("revalidated, the entry is fresh again") }
        #expect(cache.statistics.softPurges.load(ordering: .relaxed) == 1)
    }

    @Test func staleWhileRevalidateAnswersFollowersWithinTheWindowOnly() {
        let clock = ManualClock()
        let cache = makeCache(clock, ttl: 10, swr: 5)
        fill(cache, "b/k")
        clock.advance(by: 11)
        guard case let .leader(flight, _?) = cache.access("b/k") else {
            Issue.record("the first request after expiry revalidates")
            return
        }
        guard case .revalidating = cache.access("b/k") else {
            Issue.record("inside the window, others get the stale copy at once")
            return
        }
        clock.advance(by: 5)
        guard case .follower = cache.access("b/k") else {
            Issue.record("past the window, others wait for the revalidation")
            return
        }
        cache.complete(flight, key: "b/k", outcome: .abandoned)
    }

    @Test func anObjectsOwnFreshnessIsUsedAndCapped() {
        let clock = ManualClock()
        let cache = makeCache(clock, ttl: 100)
        fill(cache, "b/short", freshness: Freshness(ttl: 3))
        fill(cache, "b/long", freshness: Freshness(ttl: 100_000))
        fill(cache, "b/always", freshness: Freshness(ttl: 0, staleWhileRevalidate: 0))
        fill(cache, "b/default")
        guard case .leader(let always, _?) = cache.access("b/always") else {
            Issue.record("ttl 0 (no-cache) revalidates every time")
            return
        }
        guard case .follower = cache.access("b/always") else {
            Issue.record("no stale-while-revalidate for no-cache")
            return
        }
        cache.complete(always, key: "b/always", outcome: .abandoned)
        clock.advance(by: 4)
        // freshRecord never starts a flight (one left unfinished would leak its wait group).
        #expect(cache.freshRecord("b/short") == nil, "max-age=3 is over after 4 s")
        #expect(cache.freshRecord("b/default") != nil, "CACHE_TTL applies without metadata")
        clock.advance(by: 500)
        #expect(cache.freshRecord("b/long") == nil, "CACHE_TTL_MAX caps an object's own max-age")
    }

    @Test func cleanupWalksEveryEntryInChunks() {
        let clock = ManualClock()
        let cache = makeCache(clock, ttl: 1)
        for index in 0..<5000 { fill(cache, CacheKey("b/\(index)")) }
        clock.advance(by: 2000)
        #expect(cache.removeExpired() == 5000)
        #expect(cache.usage().entries == 0)
    }
}
