# Shared by the benchmark scripts: server start/stop and clean-up of everything started.
# Callers set WORK (a scratch directory) before sourcing, and call start_server / stop_server.

PIDS=()
cleanup() {
    for pid in "${PIDS[@]}"; do kill "$pid" 2>/dev/null || true; done
    wait 2>/dev/null || true
    rm -rf "$WORK"
}
trap cleanup EXIT

# start_server RESULT_VAR BINARY NAME STORE_METHOD ENGINE_PORT STREAM_PORT [TASKSET_CPUS]
# Starts BINARY with a config under $WORK/NAME, waits for /healthz, stores the pid in RESULT_VAR.
start_server() {
    local var=$1 bin=$2 name=$3 method=$4 eport=$5 sport=$6 cpus=${7:-}
    local dir="$WORK/$name"
    mkdir -p "$dir"
    cat > "$dir/config.yaml" <<CONFIG
workers:
  - name: iii-worker-manager
    config: { host: 127.0.0.1, port: $eport }
  - name: iii-stream
    config:
      host: 127.0.0.1
      port: $sport
      adapter: { name: kv, config: { store_method: $method, file_path: $dir/data } }
      limits: { max_connections: 30000 }
CONFIG
    if [[ -n "$cpus" ]]; then
        taskset -c "$cpus" "$bin" serve -c "$dir/config.yaml" >> "$dir/server.log" 2>&1 &
    else
        "$bin" serve -c "$dir/config.yaml" >> "$dir/server.log" 2>&1 &
    fi
    local pid=$!
    PIDS+=("$pid")
    for _ in $(seq 100); do
        curl -sf "http://127.0.0.1:$sport/healthz" > /dev/null 2>&1 && break
        sleep 0.1
    done
    printf -v "$var" '%s' "$pid"
}

stop_server() { kill "$1" 2>/dev/null || true; wait "$1" 2>/dev/null || true; }
