import S3Client

extension Passthrough {
    /// A read that S3 answers itself (a range on a miss, an object too large to keep), with
    /// the parts of range semantics S3 lacks made good: `If-Range` is honoured (S3 ignores it;
    /// see `ReadRequest.forBackend`) and a 416 says how long the object is.
    func get(
        _ address: ObjectAddress, request: ReadRequest, response: ResponseWriter, extraHeaders: [(name: String, value: String)]
    ) throws {
        let backendRequest = request.forBackend
        do {
            try get(address, headers: backendRequest.forwardedHeaders, response: response, extraHeaders: extraHeaders)
        } catch let error as S3Error where error.status == 412 && backendRequest.ifMatch != request.ifMatch && !response.headSent {
            // The If-Match standing in for If-Range failed: the object changed since the
            // client's copy, and If-Range then asks for all of it.
            try get(address, headers: request.withoutRange.forwardedHeaders, response: response, extraHeaders: extraHeaders)
        } catch let error as S3Error where error.status == 416 && !response.headSent {
            // S3 names the object's length only inside its XML error; RFC 9110 §15.5.17 wants
            // it in `Content-Range: bytes */length`, so that the client can ask again correctly.
            var failure = HTTPError(backend: error)
            if let text = try? store.headObject(bucket: address.bucket, key: address.key, headers: []).header("Content-Length"),
               let length = Int64(text), length >= 0
            {
                failure.headers.append(("Content-Range", "bytes */\(length)"))
            }
            failure.headers += extraHeaders
            throw failure
        }
    }
}
