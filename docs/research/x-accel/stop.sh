#!/bin/bash
cd "$(dirname "$0")"
[ -f logs/nginx.pid ] && nginx -p "$PWD/" -c conf/nginx.conf -s quit
[ -f logs/worker.pid ] && kill "$(cat logs/worker.pid)" && rm -f logs/worker.pid
