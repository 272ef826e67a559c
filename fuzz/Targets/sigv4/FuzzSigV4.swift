// libFuzzer target: SigV4 verification of client requests (RequestAuthenticator) (fuzz/README.md).
import S3CacheCore

#if FUZZING
/// libFuzzer's main (linked by --sanitize=fuzzer) calls this with each input.
@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzTestOneInput(_ data: UnsafePointer<UInt8>?, _ size: Int) -> Int32 {
    CoreFuzzing.sigV4(UnsafeRawBufferPointer(start: data, count: size))
    return 0
}
#else
import FuzzSupport

/// Without libFuzzer: replays the files or directories given.
@main enum FuzzSigV4 {
    static func main() { CorpusReplay.run(CoreFuzzing.sigV4) }
}
#endif
