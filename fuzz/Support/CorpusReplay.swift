#if canImport(Glibc)
import Glibc
#endif

/// The `main` of every fuzz target built without libFuzzer (a plain `swift build`): each
/// argument is a file or a directory of files, each file one input, given to the target's
/// entry point. `swift run fuzz-route fuzz/corpus/route` re-runs the checked-in corpus, or a
/// crash file libFuzzer wrote, without the fuzzing build.
///
/// Built by `fuzz/run` (`-D FUZZING`, `--sanitize=fuzzer,address`) the targets instead
/// define `LLVMFuzzerTestOneInput` and libFuzzer's own `main` drives them.
public enum CorpusReplay {
    public static func run(_ body: (UnsafeRawBufferPointer) -> Void) -> Never {
        exit(replay(Array(CommandLine.arguments.dropFirst()), body))
    }

    /// Runs every file named (directories: every file in them, not recursively).
    static func replay(_ paths: [String], _ body: (UnsafeRawBufferPointer) -> Void) -> Int32 {
        guard !paths.isEmpty else {
            printError("usage: \(CommandLine.arguments[0]) FILE_OR_DIRECTORY...")
            return 2
        }
        var count = 0
        for path in paths {
            for file in files(at: path) {
                guard let bytes = contents(of: file) else {
                    printError("cannot read \(file)")
                    return 1
                }
                bytes.withUnsafeBytes { body($0) }
                count += 1
            }
        }
        print("replayed \(count) inputs")
        return 0
    }

    private static func printError(_ message: String) {
        var line = message + "\n"
        line.withUTF8 { _ = write(2, $0.baseAddress, $0.count) }
    }

    private static func files(at path: String) -> [String] {
        guard let directory = opendir(path) else { return [path] }
        defer { closedir(directory) }
        var names: [String] = []
        while let entry = readdir(directory) {
            let name = withUnsafeBytes(of: entry.pointee.d_name) { String(cString: $0.bindMemory(to: CChar.self).baseAddress!) }
            if name.hasPrefix(".") { continue }
            names.append(path + "/" + name)
        }
        return names.sorted()
    }

    private static func contents(of path: String) -> [UInt8]? {
        guard let file = fopen(path, "rb") else { return nil }
        defer { fclose(file) }
        var bytes: [UInt8] = []
        var buffer = [UInt8](repeating: 0, count: 64 * 1024)
        while true {
            let count = buffer.withUnsafeMutableBytes { fread($0.baseAddress, 1, $0.count, file) }
            if count == 0 { return ferror(file) == 0 ? bytes : nil }
            bytes += buffer[..<count]
        }
    }
}
