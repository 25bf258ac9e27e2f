# Shared by scripts/test, scripts/demo and scripts/bench: the Python venv and a local moto.
# Source it; it defines functions only.

# Creates .venv with moto[server] (idempotent; pip is quiet when nothing changes).
ensure_venv() {
  if [ ! -x .venv/bin/python ]; then
    python3 -m venv .venv
  fi
  if ! .venv/bin/python -c 'import moto, flask' 2>/dev/null; then
    .venv/bin/pip install --disable-pip-version-check -q -r scripts/requirements-test.txt
  fi
}

# A free TCP port on 127.0.0.1.
free_port() {
  python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1]); s.close()'
}

# Starts moto_server on 127.0.0.1 and exports MOTO_URL plus the AWS SDK variables that point
# the product at it. The caller's EXIT trap must call stop_moto.
start_moto() {
  local port log
  port="$(free_port)"
  log="${1:-target/moto.log}"
  mkdir -p "$(dirname "$log")"
  .venv/bin/moto_server -H 127.0.0.1 -p "$port" >"$log" 2>&1 &
  MOTO_PID=$!
  export MOTO_URL="http://127.0.0.1:$port"
  for _ in $(seq 1 100); do
    if python3 -c "import urllib.request,sys; urllib.request.urlopen('$MOTO_URL/moto-api/')" 2>/dev/null; then
      break
    fi
    sleep 0.2
  done
  export AWS_ENDPOINT_URL="$MOTO_URL" AWS_ACCESS_KEY_ID=test AWS_SECRET_ACCESS_KEY=test AWS_REGION=us-east-1 AWS_DEFAULT_REGION=us-east-1
  export AWS_EC2_METADATA_DISABLED=true
}

stop_moto() {
  if [ -n "${MOTO_PID:-}" ]; then
    kill "$MOTO_PID" 2>/dev/null || true
    wait "$MOTO_PID" 2>/dev/null || true
  fi
}
