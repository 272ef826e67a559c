// libFuzzer target: the file tier's metadata records (fuzz/README.md).
import ObjectCache

#if FUZZING
/// libFuzzer's main (linked by --sanitize=fuzzer) calls this with each input.
@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzTestOneInput(_ data: UnsafePointer<UInt8>?, _ size: Int) -> Int32 {
    ObjectCacheFuzzing.fileRecord(UnsafeRawBufferPointer(start: data, count: size))
    return 0
}
#else
import FuzzSupport

/// Without libFuzzer: replays the files or directories given.
@main enum FuzzFileRecord {
    static func main() { CorpusReplay.run(ObjectCacheFuzzing.fileRecord) }
}
#endif
