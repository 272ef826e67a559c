import Gzip

/// Entry points of this module's fuzz targets (fuzz/README.md).
package enum ObjectCacheFuzzing {
    /// `FileRecord.decode`, the parser of what a restart reads from `CACHE_DIR`: whatever it
    /// accepts encodes back to the same bytes, and is consistent (one flag per slice).
    ///
    /// The input is decoded as it is, and again with a valid checksum line appended, so that the
    /// fields behind the CRC are reached as well.
    package static func fileRecord(_ data: UnsafeRawBufferPointer) {
        let bytes = Array(data)
        let crc = data.count > 0 ? CRC32.update(0, data) : 0
        for candidate in [bytes, bytes + Array("crc \(String(crc, radix: 16))\n".utf8)] {
            guard let record = FileRecord.decode(candidate) else { continue }
            check(record.length > 0 && record.sliceSize > 0, "a record of no bytes or no slice size")
            check(record.present.count == (record.length - 1) / record.sliceSize + 1, "slice flags do not match the length")
            check(FileRecord.decode(record.encoded()) == record, "a decoded record does not round-trip")
        }
    }

    private static func check(_ condition: Bool, _ message: @autoclosure () -> String, line: UInt = #line) {
        if !condition { fatalError("fuzz invariant: \(message())", line: line) }
    }
}
