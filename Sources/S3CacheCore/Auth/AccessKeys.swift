import Platform

/// One gateway key: what a client signs with, and what it may do.
public struct AccessKey: Sendable, Equatable {
    public var id: String
    /// Never logged, never in an error or a metric.
    public var secret: String
    /// As written in the keys file; `Permissions` bounds it by `ALLOWED_BUCKETS`.
    public var grants: AccessRules
}

/// The gateway's keys (`ACCESS_KEYS_FILE`): `ACCESS_KEY_ID SECRET_ACCESS_KEY GRANTS` per line,
/// GRANTS as `ALLOWED_BUCKETS` writes them; `#` comments and blank lines skipped.
public struct AccessKeys: Sendable, Equatable {
    public private(set) var byID: [String: AccessKey] = [:]

    public static let defaultPath = "/etc/s3cache/keys"
    /// Largest keys file read.
    static let maxFileSize = 4 << 20

    public init() {}

    public var isEmpty: Bool { byID.isEmpty }

    public subscript(id: String) -> AccessKey? { byID[id] }

    /// Parses the file's text. An error names the file and line, never the secret.
    public init(parsing text: String, path: String) throws(ConfigurationError) {
        let lines = text.split(omittingEmptySubsequences: false) { $0 == "\n" || $0 == "\r\n" }
        for (index, rawLine) in lines.enumerated() {
            let line = rawLine.trimmingWhitespace()
            if line.isEmpty || line.hasPrefix("#") { continue }
            func failure(_ reason: String) -> ConfigurationError {
                ConfigurationError(variable: "ACCESS_KEYS_FILE", value: "\(path):\(index + 1)", reason: reason)
            }
            let fields = line.split(whereSeparator: { $0 == " " || $0 == "\t" })
            guard fields.count == 3 else { throw failure("expected ACCESS_KEY_ID SECRET_ACCESS_KEY GRANTS") }
            let id = String(fields[0]), secret = String(fields[1])
            guard Self.isValidID(id) else {
                throw failure("the key id must be 16 to 128 characters of A-Z, a-z, 0-9")
            }
            guard Self.isValidSecret(secret) else {
                throw failure("the secret of \(id) must be 16 to 128 printable characters without spaces")
            }
            let grants: AccessRules
            do {
                grants = try AccessRules(parsing: String(fields[2]))
            } catch {
                // Not the parser's message: it quotes the text, which is the secret when a line has
                // its last two fields swapped.
                throw failure("the grants of \(id) are not bucket:level,... with levels read, write or all, for valid bucket names")
            }
            guard byID.updateValue(AccessKey(id: id, secret: secret, grants: grants), forKey: id) == nil else {
                throw failure("the key id \(id) is listed twice")
            }
        }
    }

    static func isValidID(_ id: String) -> Bool {
        (16...128).contains(id.utf8.count) && id.utf8.allSatisfy { byte in
            (UInt8(ascii: "A")...UInt8(ascii: "Z")).contains(byte) || (UInt8(ascii: "a")...UInt8(ascii: "z")).contains(byte)
                || (UInt8(ascii: "0")...UInt8(ascii: "9")).contains(byte)
        }
    }

    static func isValidSecret(_ secret: String) -> Bool {
        (16...128).contains(secret.utf8.count) && secret.utf8.allSatisfy { $0 > 0x20 && $0 < 0x7f }
    }

    /// Reads and parses `path`; a missing file is no keys unless `required`.
    public static func load(path: String, required: Bool) throws(ConfigurationError) -> AccessKeys {
        guard let text = try TextFile.read(path, limit: maxFileSize, required: required, variable: "ACCESS_KEYS_FILE") else {
            return AccessKeys()
        }
        return try AccessKeys(parsing: text, path: path)
    }

    /// A new key line for `grants`: the id 20 upper-case letters and digits (as AWS's), the
    /// secret 40 characters of base64's alphabet, both from the kernel's random source.
    public static func newLine(grants: AccessRules) throws -> String {
        let idAlphabet = Array("ABCDEFGHIJKLMNOPQRSTUVWXYZ234567".utf8)
        let secretAlphabet = Array("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/".utf8)
        // 32 and 64 divide 256: every character equally likely.
        let id = try SystemRandom.bytes(20).map { idAlphabet[Int($0) % idAlphabet.count] }
        let secret = try SystemRandom.bytes(40).map { secretAlphabet[Int($0) % secretAlphabet.count] }
        return "S3C" + String(decoding: id.prefix(17), as: UTF8.self) + " " + String(decoding: secret, as: UTF8.self)
            + " " + grants.description
    }
}

