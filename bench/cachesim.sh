#!/bin/sh
# Builds the eviction-policy simulator in release mode and prints its Markdown report.
# Arguments go to the simulator: --requests N, --objects N, --seed N, --sizes 1,5,10 (percent).
# Progress goes to standard error; the report to standard output.
set -eu
cd "$(dirname "$0")/.."
swift build -c release --product cachesim >&2
exec .build/release/cachesim "$@"
