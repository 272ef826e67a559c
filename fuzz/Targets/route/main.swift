// libFuzzer target: the request-URI router and percent decoding (fuzz/README.md).
import FuzzSupport
import S3CacheCore

FuzzMain.run(CoreFuzzing.route)
