// libFuzzer target: FastCGI parameter bytes as Swift strings (fuzz/README.md).
import FastCGI

#if FUZZING
/// libFuzzer's main (linked by --sanitize=fuzzer) calls this with each input.
@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzTestOneInput(_ data: UnsafePointer<UInt8>?, _ size: Int) -> Int32 {
    FastCGIFuzzing.parameterText(UnsafeRawBufferPointer(start: data, count: size))
    return 0
}
#else
import FuzzSupport

/// Without libFuzzer: replays the files or directories given.
@main enum FuzzFastCGIParams {
    static func main() { CorpusReplay.run(FastCGIFuzzing.parameterText) }
}
#endif
