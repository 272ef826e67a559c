import CCurl

/// One GET of a URL whose body nobody reads (confirming an SNS subscription): the status it
/// answered, or the transport error. Redirects are not followed and only http and https are
/// spoken, so the URL cannot lead anywhere its caller did not approve.
public enum URLVisit {
    public static func get(_ url: String, timeout: Double, caFile: String? = nil) throws(S3Error) -> Int {
        let curl = try CurlEasy()
        try curl.attachErrorBuffer()
        try curl.set(CURLOPT_URL, url, "CURLOPT_URL")
        try curl.set(CURLOPT_NOSIGNAL, 1, "CURLOPT_NOSIGNAL")
        try curl.set(CURLOPT_PROTOCOLS_STR, "http,https", "CURLOPT_PROTOCOLS_STR")
        try curl.set(CURLOPT_FOLLOWLOCATION, 0, "CURLOPT_FOLLOWLOCATION")
        try curl.set(CURLOPT_TIMEOUT_MS, Int(max(0.1, min(timeout, 300)) * 1000), "CURLOPT_TIMEOUT_MS")
        try curl.set(CURLOPT_WRITEFUNCTION, writeFunction: discard, "CURLOPT_WRITEFUNCTION")
        if let caFile { try curl.set(CURLOPT_CAINFO, caFile, "CURLOPT_CAINFO") }
        let code = curl.perform()
        guard code == CURLE_OK else {
            if code == CURLE_OPERATION_TIMEDOUT { throw .timeout(message: curl.describe(code)) }
            throw .transport(message: curl.describe(code))
        }
        return curl.responseCode()
    }

    /// Takes every byte and keeps none.
    private static let discard: curl_write_callback = { _, size, count, _ in size * count }
}
