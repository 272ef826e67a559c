import ObjectCache

/// Stores a whole-object download into a file body as it passes, slice by slice: the first
/// reader of a large object fetches it once, and each slice is served to others as soon as its
/// last byte is on disk. A slice another request is already fetching is left to it.
final class FileStreamFill {
    let body: FileBody
    private let files: FileTier
    private var position = 0
    private var currentIndex = -1
    private var current: SliceFill?

    init(body: FileBody, files: FileTier) {
        self.body = body
        self.files = files
    }

    /// Stores the next bytes of the object (a failure to store stops nothing).
    func append(_ chunk: UnsafeRawBufferPointer) {
        var offset = 0
        while offset < chunk.count, position < body.length {
            let index = position / body.sliceSize
            if index != currentIndex {
                currentIndex = index
                if case let .fill(fill) = files.claim(body, slice: index) { current = fill } else { current = nil }
            }
            let slice = body.bounds(ofSlice: index)
            let count = min(chunk.count - offset, slice.upperBound - position)
            current?.write(UnsafeRawBufferPointer(rebasing: chunk[offset..<(offset + count)]))
            position += count
            offset += count
            if position == slice.upperBound {
                current?.finish()
                current = nil
            }
        }
        if offset < chunk.count {
            // Longer than S3 announced: what was stored stays, nothing more is.
            current = nil
        }
        files.statistics.bytesFetched.add(chunk.count, ordering: .relaxed)
    }
}
