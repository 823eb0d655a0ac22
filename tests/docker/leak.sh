#!/bin/sh
# A workload that leaks the way MetaMCP does when sessions are never closed, only
# faster: every 200 ms a new detached "server" (its own session and process group,
# `sh -c` over a `sleep`, so 2 processes) that nobody ever stops.
echo "leak: starting, 2 processes every 200 ms"
while :; do
    setsid sh -c 'sleep 1000; :' &
    sleep 0.2
done
