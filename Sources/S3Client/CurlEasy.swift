import CCurl

/// One libcurl easy handle, and the only place that calls libcurl's easy API.
///
/// Every setter turns a failing `CURLcode` into an `S3Error` naming the option, so no
/// caller handles raw codes. The handle keeps its connection cache across
/// `reset()`, which is what makes keep-alive work across requests. Not `Sendable`:
/// libcurl forbids using one handle from two threads at once.
final class CurlEasy {
    private let handle: UnsafeMutableRawPointer
    /// libcurl writes a human-readable reason here when a transfer fails.
    private let errorBuffer: UnsafeMutablePointer<CChar>

    init() throws(S3Error) {
        guard let handle = curl_easy_init() else {
            throw .transport(message: "curl_easy_init failed (out of memory or curl_global_init not called)")
        }
        self.handle = handle
        errorBuffer = .allocate(capacity: s3cache_curl_error_size)
        errorBuffer.initialize(repeating: 0, count: s3cache_curl_error_size)
    }

    deinit {
        curl_easy_cleanup(handle)
        errorBuffer.deallocate()
    }

    /// Forgets every option (callbacks, data pointers, headers) but keeps live connections.
    func reset() {
        curl_easy_reset(handle)
        errorBuffer[0] = 0
    }

    /// Points `CURLOPT_ERRORBUFFER` at our buffer again; `reset()` clears it.
    func attachErrorBuffer() throws(S3Error) {
        errorBuffer[0] = 0
        try check(s3cache_curl_setopt_pointer(handle, CURLOPT_ERRORBUFFER, errorBuffer), "CURLOPT_ERRORBUFFER")
    }

    func set(_ option: CURLoption, _ value: Int, _ name: @autoclosure () -> String) throws(S3Error) {
        try check(s3cache_curl_setopt_long(handle, option, value), name())
    }

    func set(_ option: CURLoption, size value: Int64, _ name: @autoclosure () -> String) throws(S3Error) {
        try check(s3cache_curl_setopt_off_t(handle, option, curl_off_t(value)), name())
    }

    /// A string option; libcurl copies it, so a temporary is fine.
    func set(_ option: CURLoption, _ value: String, _ name: @autoclosure () -> String) throws(S3Error) {
        try check(value.withCString { s3cache_curl_setopt_pointer(handle, option, $0) }, name())
    }

    /// A pointer libcurl keeps and hands back (callback data, header list); the caller keeps it alive.
    func set(_ option: CURLoption, pointer value: UnsafeRawPointer?, _ name: @autoclosure () -> String) throws(S3Error) {
        try check(s3cache_curl_setopt_pointer(handle, option, value), name())
    }

    func set(_ option: CURLoption, writeFunction value: curl_write_callback, _ name: @autoclosure () -> String) throws(S3Error) {
        try check(s3cache_curl_setopt_write_function(handle, option, value), name())
    }

    func set(_ option: CURLoption, readFunction value: curl_read_callback, _ name: @autoclosure () -> String) throws(S3Error) {
        try check(s3cache_curl_setopt_read_function(handle, option, value), name())
    }

    func set(_ option: CURLoption, seekFunction value: curl_seek_callback, _ name: @autoclosure () -> String) throws(S3Error) {
        try check(s3cache_curl_setopt_seek_function(handle, option, value), name())
    }

    func set(_ option: CURLoption, progressFunction value: curl_xferinfo_callback, _ name: @autoclosure () -> String)
        throws(S3Error)
    {
        try check(s3cache_curl_setopt_xferinfo_function(handle, option, value), name())
    }

    /// Runs the transfer to the end; the result is interpreted by the caller, which knows
    /// whether a callback stopped it.
    func perform() -> CURLcode {
        curl_easy_perform(handle)
    }

    /// The last response's status code, 0 when none arrived.
    func responseCode() -> Int {
        var code = 0
        return s3cache_curl_getinfo_long(handle, CURLINFO_RESPONSE_CODE, &code) == CURLE_OK ? code : 0
    }

    /// `curl error 7 (Couldn't connect to server): Failed to connect to … port 1: Connection refused`.
    func describe(_ code: CURLcode) -> String {
        let summary = String(cString: curl_easy_strerror(code))
        let detail = String(cString: errorBuffer)
        return "curl error \(code.rawValue) (\(summary))" + (detail.isEmpty ? "" : ": \(detail.trimmingASCIIWhitespace())")
    }

    private func check(_ code: CURLcode, _ name: @autoclosure () -> String) throws(S3Error) {
        guard code != CURLE_OK else { return }
        throw .transport(message: "curl_easy_setopt(\(name())) failed: \(String(cString: curl_easy_strerror(code)))")
    }
}

/// A `curl_slist` of request header lines, freed with its owner.
final class CurlHeaderList {
    private(set) var pointer: UnsafeMutablePointer<curl_slist>?

    init(_ lines: [String]) throws(S3Error) {
        for line in lines {
            guard let next = curl_slist_append(pointer, line) else {
                throw .transport(message: "curl_slist_append failed: out of memory")
            }
            pointer = next
        }
    }

    deinit {
        curl_slist_free_all(pointer)
    }
}
