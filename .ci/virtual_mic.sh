#!/usr/bin/env bash
# A real-time virtual microphone for headless machines (CI): a PulseAudio null sink whose monitor
# source is the default input. Whatever is played into the sink (pacat --device=hai_vmic) comes
# out of the "pulse"/"default" ALSA capture devices that PortAudio/sounddevice list, paced by the
# sink's clock like a real microphone.
#
# Needs (Debian): libportaudio2 pulseaudio pulseaudio-utils libasound2-plugins
#
# Usage:  .ci/virtual_mic.sh start    start the daemon if it is not running (idempotent); prints
#                                     the client environment as `export` lines
#         .ci/virtual_mic.sh env      print the client environment (eval "$(... env)")
#         .ci/virtual_mic.sh status   exit 0 when the daemon answers
#         .ci/virtual_mic.sh stop     stop the daemon started here (by its pid file; idempotent)
#
# Everything (HOME, XDG_RUNTIME_DIR, socket, cookie, log) lives under $VMIC_DIR (default
# ${TMPDIR:-/tmp}/hai-edge-vmic): nothing is written to the real home directory, and only the
# daemon (and the silent keep-alive player) this script started are ever stopped, by pid file.
# `start` returns once the sink renders every few ms (about 2 s), so capture is real time at
# once. Clients need PULSE_SERVER (and PULSE_COOKIE, PULSE_CLIENTCONFIG) from `env`; the socket
# accepts anonymous clients, so no cookie is required.
set -euo pipefail

VMIC_DIR=${VMIC_DIR:-${TMPDIR:-/tmp}/hai-edge-vmic}
SINK=${VMIC_SINK:-hai_vmic}
RATE=${VMIC_RATE:-16000}
SOCKET="$VMIC_DIR/native"
RUNDIR="$VMIC_DIR/run"
HOMEDIR="$VMIC_DIR/home"
PIDFILE="$RUNDIR/pulse/pid"
KEEPALIVE_PID="$VMIC_DIR/keepalive.pid"

client_env() {
  echo "export PULSE_SERVER=unix:$SOCKET"
  echo "export PULSE_COOKIE=$HOMEDIR/.config/pulse/cookie"
  echo "export PULSE_CLIENTCONFIG=$VMIC_DIR/client.conf"
}

answering() {
  PULSE_SERVER="unix:$SOCKET" PULSE_CLIENTCONFIG="$VMIC_DIR/client.conf" \
    PULSE_COOKIE="$HOMEDIR/.config/pulse/cookie" timeout 5 pactl info >/dev/null 2>&1
}

need() {
  local missing=()
  for tool in pulseaudio pactl pacat; do command -v "$tool" >/dev/null 2>&1 || missing+=("$tool"); done
  if ((${#missing[@]})); then
    echo "virtual_mic: missing ${missing[*]}: apt-get install -y --no-install-recommends" \
      "libportaudio2 pulseaudio pulseaudio-utils libasound2-plugins" >&2
    exit 3
  fi
}

keepalive() {
  local -a env=(env PULSE_SERVER="unix:$SOCKET" PULSE_CLIENTCONFIG="$VMIC_DIR/client.conf"
                PULSE_COOKIE="$HOMEDIR/.config/pulse/cookie")
  # An idle null sink renders in 2 s blocks, so its monitor would deliver audio in bursts (or
  # not at all) until something plays. A silent low-latency stream keeps it rendering every
  # 20 ms, paced like a real microphone; it adds zeros, so it changes nothing that is captured.
  if [[ -f "$KEEPALIVE_PID" ]] && kill -0 "$(cat "$KEEPALIVE_PID")" 2>/dev/null; then
    return 0
  fi
  "${env[@]}" nohup pacat --playback --device="$SINK" --format=s16le --rate="$RATE" \
    --channels=1 --latency-msec=20 --client-name=hai-edge-vmic-keepalive /dev/zero \
    </dev/null >/dev/null 2>&1 &
  echo $! >"$KEEPALIVE_PID"
  # Ready once the sink's actual latency has dropped (the 2 s block rendered before the
  # keep-alive connected must drain first, which takes up to 2 s).
  local latency=""
  for _ in $(seq 60); do
    latency=$("${env[@]}" pactl list sinks 2>/dev/null |
      awk -v s="$SINK" '$1 == "Name:" {on = ($2 == s)} on && $1 == "Latency:" {print $2; exit}')
    [[ -n "$latency" && "$latency" -lt 100000 ]] && break
    sleep 0.1
  done
  if [[ -z "$latency" || "$latency" -ge 100000 ]]; then
    echo "virtual_mic: the sink did not reach a low latency (${latency:-?} us)" >&2
  fi
}

start() {
  need
  mkdir -p "$RUNDIR" "$HOMEDIR"
  chmod 700 "$VMIC_DIR" "$RUNDIR"
  printf 'autospawn = no\n' >"$VMIC_DIR/client.conf"
  if answering; then  # already running (started by an earlier call)
    keepalive
    client_env
    return 0
  fi
  [[ -S "$SOCKET" ]] && rm -f "$SOCKET"  # stale socket of a daemon that died
  HOME="$HOMEDIR" XDG_RUNTIME_DIR="$RUNDIR" XDG_CONFIG_HOME="$HOMEDIR/.config" \
    pulseaudio --daemonize=yes --exit-idle-time=-1 --disallow-exit=yes -n \
      --use-pid-file=yes --system=no --disable-shm=yes \
      --load="module-native-protocol-unix socket=$SOCKET auth-anonymous=1" \
      --load="module-null-sink sink_name=$SINK rate=$RATE channels=1 sink_properties=device.description=hai-edge-virtual-mic" \
      --log-target="file:$VMIC_DIR/pulse.log" 2>>"$VMIC_DIR/pulse.log" || true
  for _ in $(seq 50); do answering && break; sleep 0.1; done
  if ! answering; then
    echo "virtual_mic: pulseaudio did not start; see $VMIC_DIR/pulse.log" >&2
    tail -5 "$VMIC_DIR/pulse.log" >&2 || true
    exit 1
  fi
  local -a env=(env PULSE_SERVER="unix:$SOCKET" PULSE_CLIENTCONFIG="$VMIC_DIR/client.conf"
                PULSE_COOKIE="$HOMEDIR/.config/pulse/cookie")
  "${env[@]}" pactl set-default-sink "$SINK"
  "${env[@]}" pactl set-default-source "$SINK.monitor"
  keepalive
  client_env
}

stop() {
  if [[ -f "$KEEPALIVE_PID" ]]; then
    local kpid
    kpid=$(cat "$KEEPALIVE_PID")
    [[ -n "$kpid" ]] && kill "$kpid" 2>/dev/null || true
    rm -f "$KEEPALIVE_PID"
  fi
  if [[ -f "$PIDFILE" ]]; then
    local pid
    pid=$(cat "$PIDFILE")
    if [[ -n "$pid" ]] && kill -0 "$pid" 2>/dev/null; then
      kill "$pid"
      for _ in $(seq 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    fi
    rm -f "$PIDFILE"
  fi
  rm -f "$SOCKET"
}

case "${1:-}" in
  start) start ;;
  stop) stop ;;
  env) client_env ;;
  status) answering ;;
  *) echo "usage: $0 start|stop|status|env" >&2; exit 2 ;;
esac
