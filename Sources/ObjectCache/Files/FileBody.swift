import Synchronization

/// One version of one object in the file tier: a data file of the object's full length, filled
/// slice by slice, and what is known about it (metadata and timing, as its record on disk says).
///
/// A slice is served only once it is complete on disk: `present` is set after its last byte is
/// written, and a slice being filled has a `Flight` that other requests for it wait on.
public final class FileBody: Sendable {
    public let key: CacheKey
    public let id: UInt64
    /// Length of the object (and of its data file).
    public let length: Int
    public let sliceSize: Int
    /// The data file's path under the tier's root (`ab/ab12…-1f`), as nginx is told to send it.
    public let name: String
    /// Absolute path of the data file.
    public let path: String
    /// S3's `Last-Modified` in seconds since the epoch: the data file's modification time.
    public let modified: Int?
    private let state: Mutex<State>
    /// Held while the body's files are written or deleted: record rewrites share one temporary
    /// name, and a deletion must not race a rewrite that would bring the record back.
    let fileLock = Mutex(())

    struct State {
        var slices: [Slice]
        var presentCount: Int
        /// False once the body left the tier (evicted, invalidated): nothing more is stored.
        var live = true
        var metadata: ObjectMetadata
        /// Wall-clock timing of the entry (seconds since the epoch).
        var timing: WallTiming
    }

    enum Slice {
        case absent
        case filling(Flight)
        case present
    }

    init(key: CacheKey, id: UInt64, length: Int, sliceSize: Int, name: String, path: String, metadata: ObjectMetadata,
         timing: WallTiming, modified: Int?, present: [Bool]? = nil)
    {
        self.modified = modified
        self.key = key
        self.id = id
        self.length = length
        self.sliceSize = sliceSize
        self.name = name
        self.path = path
        let count = (length - 1) / sliceSize + 1
        let slices: [Slice] = (present ?? Array(repeating: false, count: count)).map { $0 ? .present : .absent }
        state = Mutex(State(
            slices: slices, presentCount: slices.reduce(0) { if case .present = $1 { $0 + 1 } else { $0 } }, metadata: metadata,
            timing: timing))
    }

    public var sliceCount: Int { (length - 1) / sliceSize + 1 }

    /// Byte offsets `start..<end` of slice `index`.
    public func bounds(ofSlice index: Int) -> Range<Int> {
        let start = index * sliceSize
        return start..<min(length, start + sliceSize)
    }

    /// The slices holding bytes `start...end`.
    public func slices(from start: Int, through end: Int) -> ClosedRange<Int> {
        (start / sliceSize)...(end / sliceSize)
    }

    public var isLive: Bool { state.withLock { $0.live } }

    /// Whether every byte of `start...end` is on disk.
    public func isPresent(from start: Int, through end: Int) -> Bool {
        state.withLock { state in
            guard state.live else { return false }
            if state.presentCount == state.slices.count { return true }
            for index in slices(from: start, through: end) {
                guard case .present = state.slices[index] else { return false }
            }
            return true
        }
    }

    /// Whether slice `index` is on disk.
    public func isPresent(slice index: Int) -> Bool {
        state.withLock { state in
            guard state.live, case .present = state.slices[index] else { return false }
            return true
        }
    }

    /// Bytes of the slices on disk, as charged to the tier's bound (whole blocks).
    var storedBytes: Int {
        state.withLock { state in
            state.slices.indices.reduce(0) { total, index in
                if case .present = state.slices[index] { return total + FileTier.blocks(bounds(ofSlice: index).count) }
                return total
            }
        }
    }

    public var metadata: ObjectMetadata { state.withLock { $0.metadata } }
    var timing: WallTiming { state.withLock { $0.timing } }

    func update(metadata: ObjectMetadata, timing: WallTiming) {
        state.withLock {
            $0.metadata = metadata
            $0.timing = timing
        }
    }

    /// What a request should do about slice `index`.
    enum SliceClaim {
        case present
        /// Nobody has it: this request fetches it and must end the flight (`SliceFill`).
        case fill(Flight)
        /// Another request is fetching it.
        case wait(Flight)
        /// The body left the tier.
        case gone
    }

    func claim(_ index: Int) -> SliceClaim {
        state.withLock { state in
            guard state.live else { return .gone }
            switch state.slices[index] {
            case .present: return .present
            case let .filling(flight): return .wait(flight)
            case .absent:
                let flight = Flight()
                state.slices[index] = .filling(flight)
                return .fill(flight)
            }
        }
    }

    /// Ends the fill of slice `index` by `flight`: present when `complete` and the body is still
    /// in the tier. Returns whether the slice became present.
    @discardableResult
    func finish(_ index: Int, flight: Flight, complete: Bool) -> Bool {
        let present = state.withLock { state -> Bool in
            guard case let .filling(current) = state.slices[index], current === flight else { return false }
            guard complete, state.live else {
                state.slices[index] = .absent
                return false
            }
            state.slices[index] = .present
            state.presentCount += 1
            return true
        }
        flight.finish(.abandoned)  // waiters look at the slice again
        return present
    }

    /// Takes the body out of service: no slice is stored any more, waiters look again.
    func retire() {
        let flights: [Flight] = state.withLock { state in
            state.live = false
            return state.slices.compactMap { if case let .filling(flight) = $0 { flight } else { nil } }
        }
        for flight in flights { flight.supersede() }
    }

    func record() -> FileRecord {
        state.withLock { record($0) }
    }

    private func record(_ state: State) -> FileRecord {
        FileRecord(
            key: key, id: id, length: length, sliceSize: sliceSize, metadata: state.metadata,
            freshUntil: state.timing.freshUntil, revalidatingUntil: state.timing.revalidatingUntil,
            keepUntil: state.timing.keepUntil,
            present: state.slices.map { if case .present = $0 { true } else { false } })
    }
}

/// An entry's timing in wall-clock seconds since the epoch, as its record keeps it across restarts.
struct WallTiming: Equatable {
    var freshUntil: Double
    var revalidatingUntil: Double
    var keepUntil: Double
}
