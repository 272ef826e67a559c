import Gzip
import S3Client

/// S3's additional checksums (`x-amz-checksum-crc32`, `-crc32c`, `-crc64nvme`, `-sha1`,
/// `-sha256`), computed over an upload as it streams: SDKs send one with every PUT, in a header
/// or in the trailer of an `aws-chunked` body, and a body that does not match is never stored.
final class PayloadChecksum {
    enum Algorithm: String, CaseIterable {
        case crc32, crc32c, crc64nvme, sha1, sha256

        /// `x-amz-checksum-crc32`, …
        var headerName: String { "x-amz-checksum-" + rawValue }

        init?(headerName: String) {
            let name = headerName.lowercased()
            guard name.hasPrefix("x-amz-checksum-"), let algorithm = Algorithm(rawValue: String(name.dropFirst(15))) else {
                return nil
            }
            self = algorithm
        }
    }

    let algorithm: Algorithm
    private var crc32: UInt32 = 0
    private var crc32c: UInt32 = 0xffff_ffff
    private var crc64: UInt64 = 0xffff_ffff_ffff_ffff
    private let digest: StreamingDigest?

    init(_ algorithm: Algorithm) {
        self.algorithm = algorithm
        switch algorithm {
        case .sha1: digest = StreamingDigest(.sha1)
        case .sha256: digest = StreamingDigest(.sha256)
        default: digest = nil
        }
    }

    func update(_ bytes: UnsafeRawBufferPointer) {
        switch algorithm {
        case .crc32: crc32 = CRC32.update(crc32, bytes)
        case .crc32c: crc32c = Self.crc32cTable.update(crc32c, bytes)
        case .crc64nvme: crc64 = Self.crc64Table.update(crc64, bytes)
        case .sha1, .sha256: digest?.update(bytes)
        }
    }

    /// The checksum as S3 writes it: base64 of its big-endian bytes.
    func finish() -> String {
        let bytes: [UInt8]
        switch algorithm {
        case .crc32: bytes = Self.bigEndian(UInt64(crc32), width: 4)
        case .crc32c: bytes = Self.bigEndian(UInt64(~crc32c), width: 4)
        case .crc64nvme: bytes = Self.bigEndian(~crc64, width: 8)
        case .sha1, .sha256: bytes = digest!.finish()
        }
        return Base64.encode(bytes)
    }

    private static func bigEndian(_ value: UInt64, width: Int) -> [UInt8] {
        (0..<width).reversed().map { UInt8(truncatingIfNeeded: value >> (8 * UInt64($0))) }
    }

    /// CRC-32C (Castagnoli), reflected polynomial 0x82F63B78.
    private static let crc32cTable = CRCTable<UInt32>(reflectedPolynomial: 0x82F6_3B78)
    /// CRC-64/NVME, reflected polynomial 0x9A6C9329AC4BC9B5.
    private static let crc64Table = CRCTable<UInt64>(reflectedPolynomial: 0x9A6C_9329_AC4B_C9B5)
}

/// A byte-at-a-time table for a reflected CRC.
struct CRCTable<Word: FixedWidthInteger & UnsignedInteger & Sendable>: Sendable {
    private let entries: [Word]

    init(reflectedPolynomial: Word) {
        entries = (0..<256).map { index in
            var value = Word(index)
            for _ in 0..<8 { value = value & 1 == 1 ? (value >> 1) ^ reflectedPolynomial : value >> 1 }
            return value
        }
    }

    func update(_ crc: Word, _ bytes: UnsafeRawBufferPointer) -> Word {
        var crc = crc
        for byte in bytes { crc = entries[Int(truncatingIfNeeded: (crc ^ Word(byte)) & 0xff)] ^ (crc >> 8) }
        return crc
    }
}

/// Standard base64 with padding (RFC 4648 §4), as S3 writes checksums.
enum Base64 {
    private static let alphabet = Array("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/".utf8)

    static func encode(_ bytes: [UInt8]) -> String {
        var output: [UInt8] = []
        output.reserveCapacity((bytes.count + 2) / 3 * 4)
        var index = 0
        while index < bytes.count {
            let first = bytes[index], second = index + 1 < bytes.count ? bytes[index + 1] : 0
            let third = index + 2 < bytes.count ? bytes[index + 2] : 0
            output.append(alphabet[Int(first >> 2)])
            output.append(alphabet[Int((first & 0x03) << 4 | second >> 4)])
            output.append(index + 1 < bytes.count ? alphabet[Int((second & 0x0f) << 2 | third >> 6)] : UInt8(ascii: "="))
            output.append(index + 2 < bytes.count ? alphabet[Int(third & 0x3f)] : UInt8(ascii: "="))
            index += 3
        }
        return String(decoding: output, as: UTF8.self)
    }
}
