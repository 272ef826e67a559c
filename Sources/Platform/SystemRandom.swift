#if canImport(Glibc)
import Glibc
#endif
import CLinux

/// Bytes from `getrandom(2)`, the kernel's cryptographic random source (gateway keys).
public enum SystemRandom {
    public static func bytes(_ count: Int) throws(SystemError) -> [UInt8] {
        var output = [UInt8](repeating: 0, count: count)
        var filled = 0
        while filled < count {
            let got = output.withUnsafeMutableBytes { getrandom($0.baseAddress! + filled, count - filled, 0) }
            if got < 0 {
                if errno == EINTR { continue }
                throw SystemError("getrandom", errno: errno)
            }
            filled += got
        }
        return output
    }
}
