import Foundation
import Synchronization

#if canImport(Glibc)
import Glibc
#endif

/// A TCP relay on a loopback port that forwards each connection to `127.0.0.1:upstreamPort`
/// and counts the connections it accepts.
///
/// Counting accepted connections is how a test sees, from outside, whether the client
/// reused its keep-alive connection. On request the relay also misbehaves the way servers
/// and middleboxes do: it closes every connection between requests (an idle timeout),
/// closes a connection as soon as the next request's first bytes arrive, unanswered, or
/// stops passing on a response part-way while keeping the connection open (a hung server).
///
/// Two threads per connection copy bytes; only those threads close descriptors, after
/// removing them from `live` under the lock, so `closeAllConnections` never shuts down
/// a descriptor number that was already reused.
final class TCPRelay: Sendable {
    let port: UInt16
    private let listener: Int32
    private let upstreamPort: UInt16
    private let state = Mutex(State())
    private let threads = DispatchGroup()

    private struct Connection {
        var client: Int32
        var upstream: Int32
        /// Copy threads still running; the last one closes both descriptors.
        var pumpsLeft = 2
    }

    private struct State {
        var accepted = 0
        var nextID = 0
        var live: [Int: Connection] = [:]
        var requestsToDrop = 0
        /// Response bytes still passed on per connection before it goes silent; nil: no limit.
        var responseByteLimit: Int?
    }

    var endpoint: String { "127.0.0.1:\(port)" }

    /// Connections accepted so far.
    var acceptedConnections: Int { state.withLock { $0.accepted } }

    init(upstreamPort: UInt16) throws {
        (listener, port) = try LoopbackPort.listening(backlog: 64)
        self.upstreamPort = upstreamPort
        spawn { [self] in acceptLoop() }
    }

    /// Closes the next `count` requests' connections when their first bytes arrive, without
    /// forwarding them: the server went away just as the client reused or opened a connection.
    func dropNextRequests(_ count: Int) {
        state.withLock { $0.requestsToDrop += count }
    }

    /// From now on each connection passes on at most `bytes` response bytes (counted from
    /// its start), then swallows the rest: the client sees a response that stops mid-body.
    func stallResponses(after bytes: Int) {
        state.withLock { $0.responseByteLimit = bytes }
    }

    /// Closes every open connection (both sides) and waits, up to 2 s, until they are gone:
    /// what a server's idle timeout does to a kept connection.
    func closeAllConnections() {
        state.withLock { state in
            for connection in state.live.values {
                shutdown(connection.client, Int32(SHUT_RDWR))
                shutdown(connection.upstream, Int32(SHUT_RDWR))
            }
        }
        let deadline = Date().addingTimeInterval(2)
        while state.withLock({ !$0.live.isEmpty }) && Date() < deadline { usleep(5_000) }
    }

    /// Stops accepting, closes every connection and waits (up to 5 s) for the threads.
    func stop() {
        shutdown(listener, Int32(SHUT_RDWR))  // wakes the blocked accept() with EINVAL
        closeAllConnections()
        _ = threads.wait(timeout: .now() + 5)
        close(listener)
    }

    private func spawn(_ body: @escaping @Sendable () -> Void) {
        threads.enter()
        let thread = Thread { [threads] in
            body()
            threads.leave()
        }
        thread.start()
    }

    private func acceptLoop() {
        while true {
            let client = accept(listener, nil, nil)
            if client < 0 {
                if errno == EINTR { continue }
                return  // the listener was shut down
            }
            guard let upstream = try? LoopbackPort.connect(upstreamPort) else {
                close(client)
                continue
            }
            let id = state.withLock { state in
                state.accepted += 1
                state.nextID += 1
                state.live[state.nextID] = Connection(client: client, upstream: upstream)
                return state.nextID
            }
            spawn { [self] in pump(id, from: client, to: upstream, isRequestSide: true) }
            spawn { [self] in pump(id, from: upstream, to: client, isRequestSide: false) }
        }
    }

    private func pump(_ id: Int, from source: Int32, to sink: Int32, isRequestSide: Bool) {
        var buffer = [UInt8](repeating: 0, count: 64 * 1024)
        var passedOn = 0
        while true {
            let count = buffer.withUnsafeMutableBytes { read(source, $0.baseAddress, $0.count) }
            if count < 0 && errno == EINTR { continue }
            guard count > 0 else { break }
            if isRequestSide && takeDrop() { break }
            // A stalled response keeps being read (and dropped) so the relay notices when
            // the client gives up and closes.
            let allowed = isRequestSide ? count : min(count, responseAllowance(passedOn))
            guard sendAll(sink, buffer, allowed) else { break }
            passedOn += allowed
        }
        shutdown(source, Int32(SHUT_RDWR))
        shutdown(sink, Int32(SHUT_RDWR))
        finish(id)
    }

    private func responseAllowance(_ passedOn: Int) -> Int {
        state.withLock { state in state.responseByteLimit.map { max(0, $0 - passedOn) } ?? Int.max }
    }

    private func takeDrop() -> Bool {
        state.withLock { state in
            guard state.requestsToDrop > 0 else { return false }
            state.requestsToDrop -= 1
            return true
        }
    }

    /// Writes `count` bytes; MSG_NOSIGNAL so a peer that closed gives EPIPE, not SIGPIPE.
    private func sendAll(_ sink: Int32, _ buffer: [UInt8], _ count: Int) -> Bool {
        var sent = 0
        return buffer.withUnsafeBytes { bytes in
            while sent < count {
                let result = send(sink, bytes.baseAddress! + sent, count - sent, Int32(MSG_NOSIGNAL))
                if result < 0 && errno == EINTR { continue }
                guard result > 0 else { return false }
                sent += result
            }
            return true
        }
    }

    private func finish(_ id: Int) {
        let closing = state.withLock { state -> Connection? in
            guard var connection = state.live[id] else { return nil }
            connection.pumpsLeft -= 1
            state.live[id] = connection.pumpsLeft == 0 ? nil : connection
            return connection.pumpsLeft == 0 ? connection : nil
        }
        if let closing {
            close(closing.client)
            close(closing.upstream)
        }
    }
}
