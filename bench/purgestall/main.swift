// Hit latency while a prefix purge walks 100,000 entries (issue: "a prefix or bucket purge over
// 100,000 entries must not stall hits; keep the longest hit under 10 ms").
//
// The worker's own ObjectCache, shaped as the defaults shape it (MAX_CACHE_SIZE 300 MB,
// MAX_OBJECT_SIZE 37.5 MB: 4 shards, the fewest the defaults give, so the most entries per
// shard lock). One thread answers hits on keys the purge does not take, as fast as it can,
// timing each `access`; the main thread purges. The same hit loop without a purge, in the same
// run, is the baseline: on a shared 2-core VM the scheduler alone makes millisecond outliers.
#if canImport(Glibc)
import Glibc
#endif
import ObjectCache
import Platform
import Synchronization

let arguments = CommandLine.arguments
func option(_ name: String, _ fallback: Int) -> Int {
    guard let index = arguments.firstIndex(of: name), index + 1 < arguments.count, let value = Int(arguments[index + 1]) else {
        return fallback
    }
    return value
}
let purgedEntries = option("--entries", 100_000)
let hotEntries = option("--hot", 10_000)
let rounds = option("--rounds", 3)

let settings = CacheSettings(capacity: 300 << 20, maxObjectSize: 300 << 20 / 8, ttl: 300)
let object = CachedObject(
    body: Array(repeating: 0x61, count: 512), isCompressed: false, originalLength: 512,
    metadata: ObjectMetadata(contentType: "text/plain", etag: "\"e\"", lastModified: "Wed, 02 Dec 2026 06:00:00 GMT"))

func fill(_ cache: ObjectCache, _ key: CacheKey) {
    guard case let .leader(flight, _) = cache.access(key) else { return }
    cache.complete(flight, key: key, outcome: .record(cache.makeRecord(.object(object), key: key)))
}

struct Latencies {
    var samples: [Int64] = []
    var max: Int64 { samples.max() ?? 0 }
    func percentile(_ fraction: Double) -> Int64 {
        guard !samples.isEmpty else { return 0 }
        let sorted = samples.sorted()
        return sorted[min(sorted.count - 1, Int(Double(sorted.count) * fraction))]
    }
}

/// Hits on the hot keys until `stop` is set; every `access` timed.
final class StopFlag: Sendable {
    let value = Atomic<Bool>(false)
}

func hitLoop(_ cache: ObjectCache, hot: [CacheKey], stop: StopFlag, done: @escaping @Sendable (Latencies) -> Void) throws {
    try spawnThread(name: "hits") {
        var latencies = Latencies()
        latencies.samples.reserveCapacity(4_000_000)
        var index = 0
        while !stop.value.load(ordering: .relaxed) {
            let started = monotonicNanoseconds()
            guard case .hit = cache.access(hot[index % hot.count]) else { fatalError("a hot key was not a hit") }
            latencies.samples.append(monotonicNanoseconds() - started)
            index &+= 7919
        }
        done(latencies)
    }
}

final class Result: Sendable {
    let value = Mutex<Latencies?>(nil)
}

func measure(_ cache: ObjectCache, hot: [CacheKey], during work: () -> Void) throws -> (Latencies, Double) {
    let stop = StopFlag()
    let result = Result()
    try hitLoop(cache, hot: hot, stop: stop) { latencies in result.value.withLock { $0 = latencies } }
    var pause = timespec(tv_sec: 0, tv_nsec: 100_000_000)
    nanosleep(&pause, nil)
    let started = monotonicSeconds()
    work()
    let elapsed = monotonicSeconds() - started
    nanosleep(&pause, nil)
    stop.value.store(true, ordering: .relaxed)
    while true {
        if let latencies = result.value.withLock({ $0 }) { return (latencies, elapsed) }
        var short = timespec(tv_sec: 0, tv_nsec: 1_000_000)
        nanosleep(&short, nil)
    }
}

/// `value` with `decimals` digits after the point (no Foundation here).
func fixed(_ value: Double, _ decimals: Int) -> String {
    var scale = 1.0
    for _ in 0..<decimals { scale *= 10 }
    let scaled = Int64((value * scale).rounded())
    let whole = String(scaled / Int64(scale)), fraction = String(scaled % Int64(scale))
    return decimals == 0 ? whole : whole + "." + String(repeating: "0", count: decimals - fraction.count) + fraction
}

func milliseconds(_ nanoseconds: Int64) -> String {
    let value = Double(nanoseconds) / 1e6
    return fixed(value, value < 0.1 ? 3 : 2)
}

let cache = ObjectCache(settings: settings)
let hot = (0..<hotEntries).map { CacheKey("hot/object-\($0)") }
for key in hot { fill(cache, key) }
let purged = (0..<purgedEntries).map { CacheKey("bench/dir/\($0 % 100)/object-\($0)") }

print("Hit latency while a prefix purge walks \(purgedEntries) entries (\(hotEntries) hot keys hit meanwhile; ms)")
print("")
print("| round | what runs | entries purged | purge took | hits timed | p99.9 hit | longest hit |")
print("| --- | --- | --- | --- | --- | --- | --- |")
for round in 1...rounds {
    for mode in [nil, PurgeMode.hard, .soft] {
        for key in purged { fill(cache, key) }
        var count = 0
        let (latencies, elapsed) = try measure(cache, hot: hot) {
            if let mode {
                count = cache.purge(.prefix("bench/"), mode: mode)
            } else {
                var pause = timespec(tv_sec: 0, tv_nsec: 300_000_000)
                nanosleep(&pause, nil)
            }
        }
        let label = mode.map { "\($0.rawValue) purge of bench/*" } ?? "baseline: no purge"
        print(
            "| \(round) | \(label) | \(count) | \(mode == nil ? "-" : fixed(elapsed * 1000, 0) + " ms") | \(latencies.samples.count) | \(milliseconds(latencies.percentile(0.999))) | \(milliseconds(latencies.max)) |")
    }
}
