// libFuzzer target: the configuration file and the settings in it (fuzz/README.md).
import FuzzSupport
import S3CacheCore

FuzzMain.run(CoreFuzzing.configuration)
