import Foundation

/// A real nginx on a loopback port proxying to a plain-HTTP server (moto), optionally
/// terminating TLS.
///
/// Two uses: TLS in front of moto, and HTTP keep-alive in front of moto. moto answers
/// every request with `Connection: close`, so a client's connection reuse can only be
/// observed through a server that keeps connections open; nginx keeps the client side
/// alive and opens upstream connections as moto closes them.
///
/// With TLS, the certificate is self-signed for `IP:127.0.0.1` only (made by
/// `openssl req -x509` for each instance), so a client verifies it only when given
/// `certificateFile` as its CA bundle, and only when it connects by that address.
/// nginx forwards the client's `Host` header unchanged: SigV4 signs it, and a verifying
/// moto checks the signature against it.
final class NginxProxy: Sendable {
    let port: UInt16
    /// The self-signed certificate (PEM), the CA file a client must trust; nil without TLS.
    let certificateFile: String?
    private let directory: String
    private let child: ChildProcess

    var endpoint: String { "127.0.0.1:\(port)" }

    /// Makes a key and certificate (with `tls`), writes the configuration and starts nginx
    /// (up to 10 s).
    static func start(upstreamPort: UInt16, tls: Bool) throws -> NginxProxy {
        let directory = FileManager.default.temporaryDirectory
            .appendingPathComponent("s3client-nginx-\(UUID().uuidString)").path
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        do {
            let certificate = tls ? directory + "/cert.pem" : nil
            if let certificate {
                try makeCertificate(certificate: certificate, key: directory + "/key.pem", log: directory + "/openssl.log")
            }
            let port = try LoopbackPort.free()
            try configuration(directory: directory, port: port, upstreamPort: upstreamPort, tls: tls)
                .write(toFile: directory + "/nginx.conf", atomically: true, encoding: .utf8)
            let child = try ChildProcess(
                [nginxPath, "-p", directory + "/", "-c", directory + "/nginx.conf", "-e", directory + "/error.log"],
                logFile: directory + "/nginx.out")
            do {
                try child.waitUntil(timeout: 10) { LoopbackPort.accepts(port) }
            } catch {
                child.stop()
                let log = (try? String(contentsOfFile: directory + "/error.log", encoding: .utf8)) ?? ""
                throw TestSetupError("\(error); nginx error log:\n\(log)")
            }
            return NginxProxy(port: port, certificateFile: certificate, directory: directory, child: child)
        } catch {
            try? FileManager.default.removeItem(atPath: directory)
            throw error
        }
    }

    private init(port: UInt16, certificateFile: String?, directory: String, child: ChildProcess) {
        self.port = port
        self.certificateFile = certificateFile
        self.directory = directory
        self.child = child
    }

    /// Stops nginx (SIGTERM, SIGKILL after 5 s) and removes its directory.
    func stop() {
        child.stop()
        try? FileManager.default.removeItem(atPath: directory)
    }

    /// Debian installs nginx in /usr/sbin, which a non-root PATH may lack.
    private static var nginxPath: String {
        FileManager.default.isExecutableFile(atPath: "/usr/sbin/nginx") ? "/usr/sbin/nginx" : "nginx"
    }

    private static func makeCertificate(certificate: String, key: String, log: String) throws {
        let openssl = try ChildProcess(
            [
                "openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
                "-keyout", key, "-out", certificate, "-days", "2", "-subj", "/CN=127.0.0.1",
                "-addext", "subjectAltName=IP:127.0.0.1",
            ],
            logFile: log)
        guard openssl.waitForExit(timeout: 20) == 0 else {
            openssl.stop()
            throw TestSetupError("openssl req -x509 failed: \((try? String(contentsOfFile: log, encoding: .utf8)) ?? "")")
        }
    }

    /// One process (no master, no daemon) so SIGTERM to the child stops all of nginx; every
    /// path inside the private directory, so nothing touches the system's nginx.
    private static func configuration(directory: String, port: UInt16, upstreamPort: UInt16, tls: Bool) -> String {
        let listen = tls
            ? "listen 127.0.0.1:\(port) ssl; ssl_certificate \(directory)/cert.pem; ssl_certificate_key \(directory)/key.pem;"
            : "listen 127.0.0.1:\(port);"
        return """
        daemon off;
        master_process off;
        pid \(directory)/nginx.pid;
        error_log \(directory)/error.log warn;
        events { worker_connections 64; }
        http {
            access_log off;
            keepalive_timeout 60s;
            keepalive_requests 1000;
            client_body_temp_path \(directory)/client_body;
            proxy_temp_path \(directory)/proxy;
            fastcgi_temp_path \(directory)/fastcgi;
            uwsgi_temp_path \(directory)/uwsgi;
            scgi_temp_path \(directory)/scgi;
            server {
                \(listen)
                client_max_body_size 0;
                location / {
                    proxy_pass http://127.0.0.1:\(upstreamPort);
                    proxy_http_version 1.1;
                    proxy_set_header Connection "";
                    proxy_set_header Host $http_host;
                    proxy_request_buffering off;
                    proxy_buffering off;
                }
            }
        }

        """
    }
}
