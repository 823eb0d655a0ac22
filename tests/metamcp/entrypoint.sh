#!/bin/sh
# A stand-in for MetaMCP's docker-entrypoint.sh, backend only: a /bin/sh that starts the
# backend in the background, passes TERM/INT on to it and waits, as the real script does
# for backend and frontend. The suite runs it as mcpinit's child: `mcpinit -- sh entrypoint.sh`.
# METAMCP_DIR: the built MetaMCP tree; the backend writes app.log/error.log in the cwd.
set -e
echo "Starting backend server..."
PORT=12009 node "$METAMCP_DIR/apps/backend/dist/index.js" &
BACKEND_PID=$!
cleanup() {
    echo "Shutting down services..."
    kill "$BACKEND_PID" 2>/dev/null || true
    wait "$BACKEND_PID" 2>/dev/null || true
    echo "Services stopped"
}
trap cleanup TERM INT
wait "$BACKEND_PID"
