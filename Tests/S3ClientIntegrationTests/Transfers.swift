@testable import S3Client

#if canImport(Glibc)
import Glibc
#endif

/// What a streamed GET delivered, and in which order.
struct Download {
    var head: S3ResponseHead
    var body: [UInt8] = []
    /// How often `onHead` ran.
    var headCalls = 0
    /// How many body chunks arrived.
    var chunks = 0
    /// True when a body chunk arrived before `onHead` ran.
    var bodyBeforeHead = false
}

extension S3Connection {
    /// Uploads `bytes`, handing the client at most `chunkSize` bytes per callback.
    ///
    /// - Returns: the response head and how many times the body callback produced bytes.
    @discardableResult
    func putInChunks(
        bucket: String, key: String, _ bytes: [UInt8], chunkSize: Int = 1000,
        headers: [(name: String, value: String)] = [], payloadSHA256: String? = nil
    ) throws -> (head: S3ResponseHead, calls: Int) {
        var offset = 0
        var calls = 0
        let head = try putObject(
            bucket: bucket, key: key, contentLength: Int64(bytes.count), headers: headers,
            payloadSHA256: payloadSHA256
        ) { buffer in
            let count = min(chunkSize, buffer.count, bytes.count - offset)
            bytes.withUnsafeBytes { buffer.copyMemory(from: UnsafeRawBufferPointer(rebasing: $0[offset..<offset + count])) }
            offset += count
            calls += count > 0 ? 1 : 0
            return count
        }
        return (head, calls)
    }

    /// Streams an object into memory, recording the order of the callbacks.
    func download(bucket: String, key: String, headers: [(name: String, value: String)] = []) throws -> Download {
        var result = Download(head: S3ResponseHead(status: 0, headers: []))
        result.head = try getObject(
            bucket: bucket, key: key, headers: headers,
            onHead: { _ in result.headCalls += 1 },
            onBody: { chunk in
                if result.headCalls == 0 { result.bodyBeforeHead = true }
                result.chunks += 1
                result.body.append(contentsOf: chunk)
            })
        return result
    }
}

/// Bytes that are cheap to make and check anywhere in a long stream, without holding it.
///
/// Byte `i` of the stream is `block[i % block.count]`; the block is pseudo-random and its
/// length is not a power of two, so a chunk that is lost, repeated or reordered shows up
/// as a mismatch. Filling and checking are `memcpy`/`memcmp` of at most two slices, fast
/// even in a debug build.
struct PatternStream {
    private let block: [UInt8]

    init(seed: UInt64 = 0x9E37_79B9_7F4A_7C15) {
        var state = seed
        block = (0..<1_048_573).map { _ in
            state ^= state << 13
            state ^= state >> 7
            state ^= state << 17
            return UInt8(truncatingIfNeeded: state >> 24)
        }
    }

    /// The first `count` bytes of the stream, for small objects.
    func prefix(_ count: Int) -> [UInt8] {
        var bytes = [UInt8](repeating: 0, count: count)
        bytes.withUnsafeMutableBytes { fill($0, at: 0) }
        return bytes
    }

    /// Writes stream bytes `offset..<offset + buffer.count` into `buffer`.
    func fill(_ buffer: UnsafeMutableRawBufferPointer, at offset: Int64) {
        var written = 0
        block.withUnsafeBytes { source in
            while written < buffer.count {
                let start = Int((offset + Int64(written)) % Int64(source.count))
                let count = min(source.count - start, buffer.count - written)
                UnsafeMutableRawBufferPointer(rebasing: buffer[written..<written + count])
                    .copyMemory(from: UnsafeRawBufferPointer(rebasing: source[start..<start + count]))
                written += count
            }
        }
    }

    /// Whether `chunk` equals stream bytes `offset..<offset + chunk.count`.
    func matches(_ chunk: UnsafeRawBufferPointer, at offset: Int64) -> Bool {
        var checked = 0
        return block.withUnsafeBytes { source in
            while checked < chunk.count {
                let start = Int((offset + Int64(checked)) % Int64(source.count))
                let count = min(source.count - start, chunk.count - checked)
                guard memcmp(chunk.baseAddress! + checked, source.baseAddress! + start, count) == 0 else { return false }
                checked += count
            }
            return true
        }
    }
}
