#!/bin/bash
# usage: run.sh "<title>" curl-args...   (prints the command and the response headers)
t="$1"; shift
echo "### $t"
echo '```'
echo "\$ curl -sS -D - -o /dev/null $(printf "%q " "$@")"
curl -sS -D - -o /tmp/xaccel-body "$@" | tr -d '\r' | grep -v '^$'
echo "[body bytes: $(stat -c %s /tmp/xaccel-body)]"
echo '```'
