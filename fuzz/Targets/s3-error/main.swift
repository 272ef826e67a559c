// libFuzzer target: S3 XML error documents (fuzz/README.md).
import FuzzSupport
import S3Client

FuzzMain.run(S3ClientFuzzing.errorDocument)
