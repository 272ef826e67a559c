#!/bin/bash
# Starts the model FastCGI worker (127.0.0.1:19001) and the test nginx (127.0.0.1:18080).
cd "$(dirname "$0")"
mkdir -p logs tmp
nohup python3 fcgi_worker.py 19001 > logs/worker.log 2>&1 & echo $! > logs/worker.pid
nginx -p "$PWD/" -c conf/nginx.conf
