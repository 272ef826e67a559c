import Synchronization

/// The configuration in force. SIGHUP replaces it as a whole; each worker thread compares the
/// generation before every request (one relaxed atomic load) and rebuilds what depends on it
/// when it changed.
public final class LiveConfiguration: Sendable {
    private let state: Mutex<Configuration>
    private let generationCounter = Atomic(0)

    public init(_ configuration: Configuration) {
        state = Mutex(configuration)
    }

    public var current: Configuration { state.withLock { $0 } }

    /// Bumped by every applied reload.
    public var generation: Int { generationCounter.load(ordering: .acquiring) }

    /// Puts `new` in force, except settings that only a restart can change (the socket, the
    /// thread pool, the cache's size and policy), which keep their current values.
    ///
    /// - Returns: the variables whose new value waits for a restart.
    @discardableResult
    public func apply(_ new: Configuration) -> [String] {
        let deferred = state.withLock { current -> [String] in
            var effective = new
            var deferred: [String] = []
            func keep<Value: Equatable>(_ field: WritableKeyPath<Configuration, Value>, _ variable: String) {
                guard effective[keyPath: field] != current[keyPath: field] else { return }
                effective[keyPath: field] = current[keyPath: field]
                deferred.append(variable)
            }
            keep(\.listen, "FCGI_LISTEN")
            keep(\.backlog, "FCGI_BACKLOG")
            keep(\.threads, "FCGI_THREADS")
            keep(\.maxCacheSize, "MAX_CACHE_SIZE")
            keep(\.maxObjectSize, "MAX_OBJECT_SIZE")
            keep(\.fillBudget, "FILL_BUDGET")
            keep(\.cachePolicy, "CACHE_POLICY")
            keep(\.cacheDirectory, "CACHE_DIR")
            keep(\.cacheDirectorySize, "CACHE_DIR_SIZE")
            keep(\.sliceSize, "SLICE_SIZE")
            keep(\.fileMinSize, "FILE_MIN_SIZE")
            keep(\.backendConcurrency, "BACKEND_CONCURRENCY")
            keep(\.uploadConcurrency, "UPLOAD_CONCURRENCY")
            current = effective
            return deferred
        }
        generationCounter.add(1, ordering: .releasing)
        return deferred
    }
}
