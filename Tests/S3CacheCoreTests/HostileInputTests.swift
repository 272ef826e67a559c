import ObjectCache
@testable import S3CacheCore
import Testing

/// Parsers of client input against the inputs that once trapped or misread them.
@Suite struct HTTPDateTests {
    @Test func allThreeFormsGiveTheSameInstant() {
        // RFC 9110 §5.6.7's example: 784111777 seconds after the epoch.
        #expect(HTTPDate.parse("Sun, 06 Nov 1994 08:49:37 GMT") == 784_111_777)
        #expect(HTTPDate.parse("Sunday, 06-Nov-94 08:49:37 GMT") == 784_111_777)
        #expect(HTTPDate.parse("Sun Nov  6 08:49:37 1994") == 784_111_777)
        #expect(HTTPDate.parse("Thu, 01 Jan 1970 00:00:00 GMT") == 0)
        #expect(HTTPDate.parse("Wed, 31 Dec 1969 23:59:59 GMT") == -1)
        #expect(HTTPDate.parse("Tue, 29 Feb 2000 12:00:00 GMT") == 951_825_600)
        #expect(HTTPDate.parse("Fri, 31 Dec 9999 23:59:59 GMT") == 253_402_300_799)
        #expect(HTTPDate.parse("  Sun, 06 Nov 1994 08:49:37 GMT  ") == 784_111_777)
    }

    @Test(arguments: [
        "Sun, 06 Nov -2147483648 08:49:37 GMT", "Sun, 06 Nov 2147483647 08:49:37 GMT",
        "Sun, 06 Nov 99999999999999999999 08:49:37 GMT", "Sun, 9999999999 Nov 1994 08:49:37 GMT",
        "Sun, 06 Nov 1994 99999999999:49:37 GMT", "Sun, 06 Nov 1994 -1:-1:-1 GMT", "Sun, 6 Nov 1994 08:49:37 GMT",
        "Sun, 06 Nov 1994 08:49:37 UTC", "Sun, 30 Feb 1994 08:49:37 GMT", "Sun, 06 Nov 1994 24:00:00 GMT",
        "Sun, 06 nov 1994 08:49:37 GMT", "Sun, 06 Nov 1994 08:49:37 GMT x", "Sunday, 06-Nov-2147483648 08:49:37 GMT",
        "Sun Nov  6 08:49:37 -2147483648", "", ",", "Sun,", "Sun, ", "Sun Nov", "Sun, 06 Nov 1994 08:49:3", "Sun, +6 Nov 1994 08:49:37 GMT",
        "Sun, 06 Nov 1994 08:49:37 GMT\u{0}", "Sun, 06 Nov １９９４ 08:49:37 GMT",
    ])
    func whatIsNotADateIsNil(_ text: String) {
        #expect(HTTPDate.parse(text) == nil)
    }
}

@Suite struct ByteRangeTests {
    @Test func positionsSaturateInsteadOfOverflowing() {
        #expect(ByteRange.parse("bytes=0-99999999999999999999999", length: 100) == .partial(start: 0, end: 99))
        #expect(ByteRange.parse("bytes=99999999999999999999999-", length: 100) == .unsatisfiable)
        #expect(ByteRange.parse("bytes=-99999999999999999999999", length: 100) == .partial(start: 0, end: 99))
        #expect(ByteRange.parse("bytes=\(Int.max)-\(Int.max)", length: .max) == .unsatisfiable)
        #expect(ByteRange.parse("BYTES=1-2", length: 10) == .partial(start: 1, end: 2))
    }

    @Test(arguments: ["items=0-5", "bytes 0-5", "bytes=+0-5", "bytes=0x1-5", "bytes=5-1", "bytes=-", "bytes=", "bytes=1-2,3-4",
                      "bytes=--1", "bytes=1--2", "bytes=١-٢", "=0-1"])
    func whatIsNotOneByteRangeIsTheWholeObject(_ header: String) {
        #expect(ByteRange.parse(header, length: 100) == .whole)
        #expect(!ByteRange.isForwardable(header) || header.contains(","))
    }
}

@Suite struct EntityTagTests {
    @Test func theGzipTagNamesTheSameVersion() {
        let tag = "\"abc\""
        #expect(EntityTags.gzipTag(tag) == "\"abc-gzip\"")
        #expect(EntityTags.identityTags("\"abc-gzip\", W/\"x\", \"abc\"") == "\"abc\", W/\"x\", \"abc\"")
        #expect(EntityTags.matchHits("\"abc-gzip\"", anyOf: [tag, EntityTags.gzipTag(tag)]))
        #expect(!EntityTags.matchHits("W/\"abc\"", anyOf: [tag]))
    }

    @Test func tagListsAreValidated() {
        #expect(EntityTags.isTagList("*"))
        #expect(EntityTags.isTagList("\"a\", W/\"b\""))
        #expect(!EntityTags.isTagList("a"))
        #expect(!EntityTags.isTagList("\"a\" \"b\""))
        #expect(!EntityTags.isTagList(""))
        #expect(!EntityTags.isTagList("\"a\u{7f}\""))
    }
}

@Suite struct CacheKeyTests {
    @Test(arguments: [
        ("café.html", "cafe\u{301}.html"), ("K.txt", "\u{212A}.txt"), ("report;v2.txt", "report\u{37E}v2.txt"),
        ("ﬁle", "file"), ("Å", "\u{212B}"),
    ])
    func equivalentTextsAreDifferentKeys(_ pair: (String, String)) {
        #expect(CacheKey(pair.0) != CacheKey(pair.1))
        #expect(Set([CacheKey(pair.0), CacheKey(pair.1)]).count == 2)
        #expect(CacheKey(pair.0) == CacheKey(String(decoding: Array(pair.0.utf8), as: UTF8.self)))
    }

    @Test func theCacheKeepsEquivalentKeysApart() {
        let cache = ObjectCache(settings: CacheSettings(capacity: 1 << 20, maxObjectSize: 1 << 16))
        let nfc = CacheKey("b/café"), nfd = CacheKey("b/cafe\u{301}")
        guard case let .leader(flight, _) = cache.access(nfc) else {
            Issue.record("a first access leads")
            return
        }
        guard case let .leader(other, _) = cache.access(nfd) else {
            Issue.record("an equivalent key must not join another key's flight")
            return
        }
        cache.complete(other, key: nfd, outcome: .abandoned)
        cache.complete(flight, key: nfc, outcome: .record(cache.makeRecord(.missing, key: nfc)))
        #expect(cache.freshRecord(nfc) != nil)
        #expect(cache.freshRecord(nfd) == nil)
        cache.invalidate(nfd)
        #expect(cache.freshRecord(nfc) != nil)
    }
}

@Suite struct BoundedCounterTests {
    @Test func reservationsNeverExceedTheLimit() {
        let budget = FillBudget(limit: 100)
        #expect(budget.tryAcquire(60))
        #expect(!budget.tryAcquire(41))
        #expect(budget.tryAcquire(40))
        #expect(!budget.tryAcquire(1))
        budget.release(60)
        #expect(budget.current == 40)
        #expect(!budget.tryAcquire(-1))
        #expect(!budget.tryAcquire(Int.max))
    }

    @Test func theDefaultHoldsAtLeastTheLargestObject() throws {
        let defaults = try Configuration.load(from: [:])
        #expect(defaults.fillBudget == defaults.maxCacheSize / 4)
        let large = try Configuration.load(from: ["MAX_CACHE_SIZE": "100M", "MAX_OBJECT_SIZE": "50M"])
        #expect(large.fillBudget == 100 << 20)
    }
}
