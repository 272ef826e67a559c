import CCrypto

/// SHA-256 over OpenSSL's EVP one-shot API.
///
/// Public so a caller that holds a whole body can send its hash as
/// `x-amz-content-sha256` instead of `UNSIGNED-PAYLOAD`.
public enum SHA256 {
    /// Hex digest of the empty string: the payload hash of every GET, HEAD and DELETE.
    public static let emptyPayloadHash = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"

    /// The 32-byte digest of `bytes`.
    public static func digest(_ bytes: UnsafeRawBufferPointer) -> [UInt8] {
        // Only a broken libcrypto (no default provider) fails; every `S3Connection.init`
        // checks that first (`cryptoWorks`), so reaching this is a packaging error.
        guard let output = checkedDigest(bytes) else { preconditionFailure("libcrypto SHA-256 failed") }
        return output
    }

    static func checkedDigest(_ bytes: UnsafeRawBufferPointer) -> [UInt8]? {
        var output = [UInt8](repeating: 0, count: 32)
        var length: UInt32 = 0
        let status = output.withUnsafeMutableBufferPointer { out in
            EVP_Digest(bytes.baseAddress, bytes.count, out.baseAddress, &length, FetchedSHA256.shared.algorithm, nil)
        }
        return status == 1 && length == 32 ? output : nil
    }

    /// Whether libcrypto computes SHA-256 and HMAC-SHA256 correctly (RFC 4231 test case 2).
    static func cryptoWorks() -> Bool {
        let empty = [UInt8]().withUnsafeBytes { checkedDigest($0) }
        let mac = HMACSHA256.checkedAuthenticate(key: Array("Jefe".utf8), message: Array("what do ya want for nothing?".utf8))
        return empty.map(Hex.encode) == emptyPayloadHash
            && mac.map(Hex.encode) == "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
    }

    /// Lower-case hex digest of `bytes`, the form SigV4 uses everywhere.
    public static func hexDigest(_ bytes: some Sequence<UInt8>) -> String {
        let array = Array(bytes)
        return Hex.encode(array.withUnsafeBytes { digest($0) })
    }

    /// Lower-case hex digest of the UTF-8 bytes of `text`.
    public static func hexDigest(_ text: String) -> String {
        hexDigest(text.utf8)
    }
}

/// HMAC-SHA256, the only MAC SigV4 needs.
enum HMACSHA256 {
    /// The 32-byte MAC of `message` under `key`.
    static func authenticate(key: [UInt8], message: some Sequence<UInt8>) -> [UInt8] {
        guard let output = checkedAuthenticate(key: key, message: Array(message)) else {
            preconditionFailure("libcrypto HMAC-SHA256 failed")
        }
        return output
    }

    /// RFC 2104 over `SHA256.checkedDigest`: two digests with the algorithm fetched once.
    /// (`EVP_Q_mac` fetched HMAC and SHA-256 from the provider on every call, most of the cost
    /// of checking a client's signature; RFC 4231's vector checks this at start, `cryptoWorks`.)
    static func checkedAuthenticate(key: [UInt8], message data: [UInt8]) -> [UInt8]? {
        let blockSize = 64
        var block = key
        if block.count > blockSize {
            guard let hashed = block.withUnsafeBytes({ SHA256.checkedDigest($0) }) else { return nil }
            block = hashed
        }
        block += [UInt8](repeating: 0, count: blockSize - block.count)
        var inner = block.map { $0 ^ 0x36 }
        inner += data
        guard let innerDigest = inner.withUnsafeBytes({ SHA256.checkedDigest($0) }) else { return nil }
        var outer = block.map { $0 ^ 0x5c }
        outer += innerDigest
        return outer.withUnsafeBytes { SHA256.checkedDigest($0) }
    }
}

/// SHA-256 fetched from libcrypto's default provider once. `EVP_sha256()` is a legacy handle
/// that makes every `EVP_Digest` fetch the implementation again (a lookup under a lock).
/// An `EVP_MD` is immutable once fetched and may be shared by threads (OpenSSL's threading
/// documentation), hence the unchecked conformance.
final class FetchedSHA256: @unchecked Sendable {
    static let shared = FetchedSHA256()
    let algorithm: OpaquePointer?

    private init() {
        algorithm = EVP_MD_fetch(nil, "SHA256", nil) ?? EVP_sha256()
    }
}

/// Lower-case hexadecimal, as SigV4 signatures and payload hashes are written.
enum Hex {
    private static let digits = Array("0123456789abcdef".utf8)

    static func encodeBytes(_ bytes: [UInt8]) -> [UInt8] {
        var text = [UInt8]()
        text.reserveCapacity(bytes.count * 2)
        for byte in bytes {
            text.append(digits[Int(byte >> 4)])
            text.append(digits[Int(byte & 0x0f)])
        }
        return text
    }

    static func encode(_ bytes: [UInt8]) -> String {
        String(decoding: encodeBytes(bytes), as: UTF8.self)
    }
}

/// A digest computed as the bytes go by (a streamed upload whose declared SHA-256, or whose
/// trailing checksum, is checked at its end). Not `Sendable`: one transfer's.
public final class StreamingDigest {
    public enum Algorithm: Sendable {
        case sha256, sha1
    }

    private let context: OpaquePointer

    public init(_ algorithm: Algorithm) {
        // Only a libcrypto without its default provider fails; `S3Connection` checks that at start.
        guard let context = EVP_MD_CTX_new() else { preconditionFailure("EVP_MD_CTX_new failed") }
        self.context = context
        let type = algorithm == .sha256 ? EVP_sha256() : EVP_sha1()
        guard EVP_DigestInit_ex(context, type, nil) == 1 else { preconditionFailure("EVP_DigestInit_ex failed") }
    }

    deinit {
        EVP_MD_CTX_free(context)
    }

    public func update(_ bytes: UnsafeRawBufferPointer) {
        guard bytes.count > 0 else { return }
        guard EVP_DigestUpdate(context, bytes.baseAddress, bytes.count) == 1 else { preconditionFailure("EVP_DigestUpdate failed") }
    }

    /// The digest; the object is spent afterwards.
    public func finish() -> [UInt8] {
        var output = [UInt8](repeating: 0, count: Int(EVP_MAX_MD_SIZE))
        var length: UInt32 = 0
        guard output.withUnsafeMutableBufferPointer({ EVP_DigestFinal_ex(context, $0.baseAddress, &length) }) == 1 else {
            preconditionFailure("EVP_DigestFinal_ex failed")
        }
        return Array(output.prefix(Int(length)))
    }

    /// Lower-case hex, as SigV4 writes payload hashes.
    public static func hex(_ digest: [UInt8]) -> String { Hex.encode(digest) }
}
