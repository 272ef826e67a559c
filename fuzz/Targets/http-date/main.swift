// libFuzzer target: HTTP dates (fuzz/README.md).
import FuzzSupport
import S3CacheCore

FuzzMain.run(CoreFuzzing.httpDate)
