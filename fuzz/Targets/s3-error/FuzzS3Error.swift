// libFuzzer target: S3 XML error documents (fuzz/README.md).
import S3Client

#if FUZZING
/// libFuzzer's main (linked by --sanitize=fuzzer) calls this with each input.
@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzTestOneInput(_ data: UnsafePointer<UInt8>?, _ size: Int) -> Int32 {
    S3ClientFuzzing.errorDocument(UnsafeRawBufferPointer(start: data, count: size))
    return 0
}
#else
import FuzzSupport

/// Without libFuzzer: replays the files or directories given.
@main enum FuzzS3Error {
    static func main() { CorpusReplay.run(S3ClientFuzzing.errorDocument) }
}
#endif
