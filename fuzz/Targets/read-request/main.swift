// libFuzzer target: Range, If-Range, the conditional headers and Accept-Encoding (fuzz/README.md).
import FuzzSupport
import S3CacheCore

FuzzMain.run(CoreFuzzing.readRequest)
