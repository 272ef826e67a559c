import Gzip

/// The metadata record kept beside each data file of the file tier (`<name>.meta`): what a
/// restarted worker needs to serve the file again, and nothing it could be misled by.
///
/// Text, one field per line (`name value`), values percent-encoded where they hold `%`, a
/// control byte or DEL, so that a key or header of any bytes round-trips exactly. The last line
/// is a CRC-32 of everything before it: a torn or edited record is refused as a whole.
struct FileRecord: Equatable {
    var key: CacheKey
    var id: UInt64
    var length: Int
    var sliceSize: Int
    var metadata: ObjectMetadata
    /// Wall-clock seconds (since the epoch) of the entry's timing: monotonic times mean nothing
    /// after a restart.
    var freshUntil: Double
    var revalidatingUntil: Double
    var keepUntil: Double
    /// Which slices are complete in the data file.
    var present: [Bool]

    static let magic = "s3cache-file 1"

    func encoded() -> [UInt8] {
        var text = Self.magic + "\n"
        func field(_ name: String, _ value: String) { text += name + " " + Self.escape(value) + "\n" }
        field("key", key.text)
        field("id", String(id))
        field("length", String(length))
        field("slice", String(sliceSize))
        field("content-type", metadata.contentType)
        field("etag", metadata.etag)
        field("last-modified", metadata.lastModified)
        for header in metadata.extraHeaders { field("header", Self.escape(header.name) + " " + Self.escape(header.value)) }
        field("fresh-until", String(freshUntil))
        field("revalidating-until", String(revalidatingUntil))
        field("keep-until", String(keepUntil))
        field("slices", Self.bitmap(present))
        var bytes = Array(text.utf8)
        let crc = bytes.withUnsafeBytes { CRC32.update(0, $0) }
        bytes += Array("crc \(String(crc, radix: 16))\n".utf8)
        return bytes
    }

    /// The record in `bytes`, or nil for anything that is not exactly a record this version
    /// wrote: wrong magic, a missing or unknown field, a bad checksum, inconsistent sizes.
    static func decode(_ bytes: [UInt8]) -> FileRecord? {
        guard bytes.count <= maximumSize, let crcStart = lastLineStart(bytes) else { return nil }
        let body = bytes[..<crcStart]
        let crcLine = String(decoding: bytes[crcStart...], as: UTF8.self)
        guard crcLine.hasPrefix("crc "), crcLine.hasSuffix("\n"),
              let crc = UInt32(crcLine.dropFirst(4).dropLast(), radix: 16),
              body.withUnsafeBytes({ CRC32.update(0, $0) }) == crc
        else { return nil }
        let lines = body.split(separator: UInt8(ascii: "\n"), omittingEmptySubsequences: false).dropLast()
        guard lines.first.map({ String(decoding: $0, as: UTF8.self) }) == magic else { return nil }
        var fields: [String: String] = [:]
        var headers: [ObjectMetadata.Header] = []
        for line in lines.dropFirst() {
            guard let space = line.firstIndex(of: UInt8(ascii: " ")) else { return nil }
            let name = String(decoding: line[line.startIndex..<space], as: UTF8.self)
            guard let value = unescape(line[(space + 1)...]) else { return nil }
            if name == "header" {
                let parts = value.utf8.split(separator: UInt8(ascii: " "), maxSplits: 1, omittingEmptySubsequences: false)
                guard parts.count == 2, let headerName = unescape(parts[0]), let headerValue = unescape(parts[1]) else { return nil }
                headers.append(ObjectMetadata.Header(name: headerName, value: headerValue))
            } else {
                guard fields.updateValue(value, forKey: name) == nil else { return nil }
            }
        }
        guard let key = fields["key"], !key.isEmpty, let id = fields["id"].flatMap({ UInt64($0) }),
              let length = fields["length"].flatMap({ Int($0) }), length > 0,
              let sliceSize = fields["slice"].flatMap({ Int($0) }), sliceSize > 0,
              let contentType = fields["content-type"], let etag = fields["etag"], !etag.isEmpty,
              let lastModified = fields["last-modified"],
              let freshUntil = fields["fresh-until"].flatMap({ Double($0) }), freshUntil.isFinite,
              let revalidatingUntil = fields["revalidating-until"].flatMap({ Double($0) }), revalidatingUntil.isFinite,
              let keepUntil = fields["keep-until"].flatMap({ Double($0) }), keepUntil.isFinite,
              let slices = fields["slices"], fields.count == 11
        else { return nil }
        let (count, overflow) = length.addingReportingOverflow(sliceSize - 1)
        guard !overflow, let present = parseBitmap(slices, count: count / sliceSize) else { return nil }
        return FileRecord(
            key: CacheKey(key), id: id, length: length, sliceSize: sliceSize,
            metadata: ObjectMetadata(contentType: contentType, etag: etag, lastModified: lastModified, extraHeaders: headers),
            freshUntil: freshUntil, revalidatingUntil: revalidatingUntil, keepUntil: keepUntil, present: present)
    }

    /// Records are small (a key of at most 1 KiB, a few headers, a bitmap): anything larger is not ours.
    static let maximumSize = 1 << 20

    private static func lastLineStart(_ bytes: [UInt8]) -> Int? {
        guard bytes.last == UInt8(ascii: "\n"), bytes.count >= 2 else { return nil }
        var index = bytes.count - 2
        while index >= 0 {
            if bytes[index] == UInt8(ascii: "\n") { return index + 1 }
            index -= 1
        }
        return nil
    }

    private static func escape(_ value: String) -> String {
        var bytes: [UInt8] = []
        bytes.reserveCapacity(value.utf8.count)
        for byte in value.utf8 {
            if byte == UInt8(ascii: "%") || byte < 0x21 || byte == 0x7f {
                bytes += Array(("%" + (byte < 16 ? "0" : "") + String(byte, radix: 16)).utf8)
            } else {
                bytes.append(byte)
            }
        }
        return String(decoding: bytes, as: UTF8.self)
    }

    private static func unescape<Bytes: Collection<UInt8>>(_ bytes: Bytes) -> String? {
        var output: [UInt8] = []
        var iterator = bytes.makeIterator()
        while let byte = iterator.next() {
            guard byte == UInt8(ascii: "%") else {
                guard byte >= 0x21, byte != 0x7f else { return nil }
                output.append(byte)
                continue
            }
            guard let high = iterator.next().flatMap(hexValue), let low = iterator.next().flatMap(hexValue) else { return nil }
            output.append(high << 4 | low)
        }
        return String(validating: output, as: UTF8.self)
    }

    private static func hexValue(_ byte: UInt8) -> UInt8? {
        switch byte {
        case UInt8(ascii: "0")...UInt8(ascii: "9"): return byte - UInt8(ascii: "0")
        case UInt8(ascii: "a")...UInt8(ascii: "f"): return byte - UInt8(ascii: "a") + 10
        default: return nil
        }
    }

    private static func bitmap(_ present: [Bool]) -> String {
        String(present.map { $0 ? "1" : "0" }) + "."
    }

    private static func parseBitmap(_ text: String, count: Int) -> [Bool]? {
        guard text.utf8.count == count + 1, text.hasSuffix(".") else { return nil }
        var present: [Bool] = []
        present.reserveCapacity(count)
        for byte in text.utf8.dropLast() {
            switch byte {
            case UInt8(ascii: "0"): present.append(false)
            case UInt8(ascii: "1"): present.append(true)
            default: return nil
            }
        }
        return present
    }
}
