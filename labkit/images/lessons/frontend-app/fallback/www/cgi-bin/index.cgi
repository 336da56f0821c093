#!/bin/sh
# GET /: the same JSON server.js answers with.
service=$(sed -n 's/^const SERVICE = "\(.*\)";.*/\1/p' "$NODE_SCRIPT")
version=$(sed -n 's/^const VERSION = "\(.*\)";.*/\1/p' "$NODE_SCRIPT")
env=null
[ -n "$NODE_ENV" ] && env="\"$NODE_ENV\""
printf 'Content-Type: application/json\r\n\r\n'
printf '{"service":"%s","version":"%s","env":%s,"hostname":"%s","pid":%s}\n' \
    "$service" "$version" "$env" "$(hostname)" "$NODE_PID"
