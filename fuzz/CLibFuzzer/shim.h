#ifndef S3CACHE_CLIBFUZZER_SHIM_H
#define S3CACHE_CLIBFUZZER_SHIM_H
/*
 * libFuzzer's driver, called from a program that has its own main (compiler-rt's
 * FuzzerInterface.h). Only declared here: the fuzz targets reference it only when built by
 * fuzz/run (-D FUZZING, --sanitize=fuzzer links libclang_rt.fuzzer), so a plain `swift build`
 * links them without libFuzzer, as corpus replayers.
 */
#include <stddef.h>
#include <stdint.h>

extern int LLVMFuzzerRunDriver(int *argc, char ***argv, int (*callback)(const uint8_t *data, size_t size));
#endif
