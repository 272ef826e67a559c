// libFuzzer target: FastCGI parameter bytes as Swift strings (fuzz/README.md).
import FastCGI
import FuzzSupport

FuzzMain.run(FastCGIFuzzing.parameterText)
