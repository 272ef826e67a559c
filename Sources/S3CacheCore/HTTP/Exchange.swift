public import FastCGI

/// One request/response as the handlers see it: parameters in, body in, bytes out.
///
/// `FastCGIRequest` is the real one; tests use an in-memory one.
public protocol Exchange: AnyObject {
    /// A CGI parameter: `REQUEST_METHOD`, `REQUEST_URI`, `HTTP_RANGE`, …
    func param(_ name: StaticString) -> String?
    /// A CGI parameter whose name is built at run time (`HTTP_X_AMZ_DATE` for a signed header).
    func param(named name: String) -> String?
    /// A CGI parameter's bytes exactly as received (`param` writes bytes that are not UTF-8 as `%XX`).
    func rawParam(_ name: StaticString) -> [UInt8]?
    /// Up to `buffer.count` bytes of the request body; 0 at its end. Throws when no byte
    /// arrived for `idleTimeout` seconds.
    func readBody(into buffer: UnsafeMutableRawBufferPointer, idleTimeout: Double) throws -> Int
    func write(_ bytes: UnsafeRawBufferPointer) throws
    func write(_ text: String) throws
    func flush() throws
    /// Breaks the response off: the client must see it incomplete (its connection closed
    /// before the end of the body), never as a complete response. For errors after the head
    /// went out; nothing more is written afterwards.
    func abort()
    /// Whether nginx closed the connection (the client went away), waiting up to `seconds`.
    func peerClosed(within seconds: Double) -> Bool
}

extension FastCGIRequest: Exchange {}
