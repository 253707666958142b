#!/usr/bin/env bash
# A real S3 server for tests and local runs: single-node Ceph (one mon, one memstore
# OSD, radosgw) on 127.0.0.1. No systemd, no Docker, no root-owned paths.
#
#   scripts/s3-server.sh start      start (idempotent: a running server is left alone,
#                                   a stopped radosgw is restarted with the data kept)
#   scripts/s3-server.sh stop       stop every daemon this script started
#   scripts/s3-server.sh status     exit 0 when mon, osd and radosgw are up and S3 answers
#   scripts/s3-server.sh env        print the `export AWS_...` lines for this server
#   scripts/s3-server.sh stop-rgw   stop radosgw only (cluster data kept): fault tests
#   scripts/s3-server.sh kill-rgw   SIGKILL radosgw (a crash rather than a shutdown)
#   scripts/s3-server.sh start-rgw  start radosgw again and wait until S3 answers
#
# Settings (environment, read by `start`, remembered in $DIR/server.env for the rest):
#   PERSONAMATH_CEPH_DIR           data dir              (default /tmp/personamath-ceph)
#   PERSONAMATH_S3_PORT            radosgw port          (default 7480)
#   PERSONAMATH_CEPH_MON_PORT      mon msgr2 port        (default 3300)
#   PERSONAMATH_CEPH_MON_V1_PORT   mon msgr1 port        (default 6789)
#   PERSONAMATH_S3_ACCESS_KEY / PERSONAMATH_S3_SECRET_KEY   the test user's fixed keys
#   PERSONAMATH_CEPH_MEMSTORE_BYTES  OSD capacity in RAM (default 1 GiB, used as written)
#
# The OSD keeps objects in memory (memstore): stopping the cluster loses them, and
# `start` after `stop` builds a fresh cluster. `stop-rgw`/`start-rgw` keep the data.
# Needs radosgw, ceph-mon and ceph-osd (scripts/install-ceph.sh installs them).
set -euo pipefail

DIR=${PERSONAMATH_CEPH_DIR:-/tmp/personamath-ceph}
if [[ -f "$DIR/server.env" && "${1:-}" != start ]]; then
    # shellcheck source=/dev/null
    source "$DIR/server.env"
fi
PORT=${PORT:-${PERSONAMATH_S3_PORT:-7480}}
MON_PORT=${MON_PORT:-${PERSONAMATH_CEPH_MON_PORT:-3300}}
MON_V1_PORT=${MON_V1_PORT:-${PERSONAMATH_CEPH_MON_V1_PORT:-6789}}
ACCESS_KEY=${ACCESS_KEY:-${PERSONAMATH_S3_ACCESS_KEY:-PERSONAMATHTESTKEY01}}
SECRET_KEY=${SECRET_KEY:-${PERSONAMATH_S3_SECRET_KEY:-personamath-test-secret-key-0001}}
MEM_BYTES=${PERSONAMATH_CEPH_MEMSTORE_BYTES:-1073741824}
CONF="$DIR/ceph.conf"
ENDPOINT="http://127.0.0.1:$PORT"

log() { echo "s3-server: $*" >&2; }
die() { log "$*"; exit 1; }

alive() {  # alive NAME: the daemon recorded in NAME.pid runs (and is still a ceph one)
    local f="$DIR/$1.pid" pid
    [[ -f $f ]] || return 1
    pid=$(cat "$f")
    [[ "$(cat "/proc/$pid/comm" 2>/dev/null)" =~ ^(ceph-mon|ceph-osd|radosgw)$ ]]
}

s3_answers() { curl -s -o /dev/null --max-time 2 "$ENDPOINT/"; }

port_busy() { ss -Hltn "sport = :$1" 2>/dev/null | grep -q .; }

spawn() {  # spawn NAME CMD...: run a daemon in its own session, remember its pid
    local name=$1; shift
    setsid "$@" -f >"$DIR/log/$name.out" 2>&1 </dev/null &
    echo $! >"$DIR/$name.pid"
}

wait_gone() {  # wait_gone SECONDS PID...: until none of the processes exists
    local tenths=$(($1 * 10)) pid left
    shift
    while :; do
        left=0
        for pid in "$@"; do kill -0 "$pid" 2>/dev/null && left=1; done
        ((left)) || return 0
        ((tenths-- > 0)) || return 1
        sleep 0.1
    done
}

kill_daemons() {  # kill_daemons GRACE NAME...: TERM all, KILL what remains after GRACE s
    local grace=$1 name pids=()
    shift
    for name in "$@"; do
        alive "$name" && pids+=("$(cat "$DIR/$name.pid")")
    done
    if ((${#pids[@]})); then
        ((grace == 0)) || kill -TERM "${pids[@]}" 2>/dev/null || true
        wait_gone "$grace" "${pids[@]}" || kill -KILL "${pids[@]}" 2>/dev/null || true
        wait_gone 5 "${pids[@]}" || die "could not stop pids ${pids[*]}"
    fi
    for name in "$@"; do rm -f "$DIR/$name.pid"; done
}

wait_s3() {  # wait_s3 SECONDS: until radosgw answers HTTP
    local deadline=$((SECONDS + $1))
    until s3_answers; do
        alive rgw || die "radosgw exited; see $DIR/log/rgw.out and $DIR/log/client.rgw.a.log"
        ((SECONDS < deadline)) || die "radosgw did not answer on $ENDPOINT within $1 s"
        sleep 0.25
    done
}

write_conf() {
    local fsid=$1
    cat >"$CONF" <<EOF
[global]
fsid = $fsid
mon host = [v2:127.0.0.1:$MON_PORT,v1:127.0.0.1:$MON_V1_PORT]
mon initial members = a
auth cluster required = none
auth service required = none
auth client required = none
# Without these two radosgw loops on authentication (DESIGN.md §8).
ms mon client mode = crc
ms client mode = crc
osd pool default size = 1
osd pool default min size = 1
osd pool default pg num = 8
osd pool default pgp num = 8
mon allow pool size one = true
mon max pg per osd = 1000
mon warn on pool no redundancy = false
osd crush chooseleaf type = 0
run dir = $DIR/run
log file = $DIR/log/\$name.log
admin socket = $DIR/run/\$name.asok
ms bind ipv4 = true
ms bind ipv6 = false
keyring = $DIR/keyring
[mon]
mon data = $DIR/mon.\$id
[osd]
osd data = $DIR/osd.\$id
osd objectstore = memstore
memstore device bytes = $MEM_BYTES
[client.rgw.a]
rgw frontends = beast endpoint=127.0.0.1:$PORT tcp_nodelay=1
rgw data = $DIR/rgw.a
EOF
}

save_settings() {
    cat >"$DIR/server.env" <<EOF
PORT=$PORT
MON_PORT=$MON_PORT
MON_V1_PORT=$MON_V1_PORT
ACCESS_KEY=$ACCESS_KEY
SECRET_KEY=$SECRET_KEY
EOF
}

saved_port() {  # the radosgw port of the cluster in $DIR
    # shellcheck source=/dev/null
    (source "$DIR/server.env" && echo "$PORT")
}

cmd_start() {
    local bin old
    for bin in ceph-mon ceph-osd radosgw; do
        command -v "$bin" >/dev/null \
            || die "ceph binaries missing: run scripts/install-ceph.sh (radosgw ceph-mon ceph-osd)"
    done
    if [[ -f "$DIR/server.env" ]]; then
        old=$(saved_port)
        if alive mon && alive osd && alive rgw \
                && curl -s -o /dev/null --max-time 2 "http://127.0.0.1:$old/"; then
            log "already running at http://127.0.0.1:$old"
            return 0
        fi
        if alive mon && alive osd && ! alive rgw; then  # after stop-rgw: keep the data
            PORT=$old ENDPOINT="http://127.0.0.1:$old" cmd_start_rgw
            return 0
        fi
    fi
    local t0=$SECONDS
    cmd_stop >/dev/null 2>&1 || true   # leftovers of a half-started or crashed cluster
    for p in "$PORT" "$MON_PORT" "$MON_V1_PORT"; do
        port_busy "$p" && die "port $p on 127.0.0.1 is in use by another process"
    done
    rm -rf "$DIR" && mkdir -p "$DIR"/{run,log,mon.a,osd.0,rgw.a}
    save_settings
    local fsid; fsid=$(uuidgen)
    write_conf "$fsid"
    local c=(-c "$CONF")
    ceph-authtool --create-keyring "$DIR/keyring" --gen-key -n mon. --cap mon 'allow *' >/dev/null
    monmaptool --create --addv a "[v2:127.0.0.1:$MON_PORT,v1:127.0.0.1:$MON_V1_PORT]" \
        --fsid "$fsid" "$DIR/monmap" >/dev/null
    ceph-mon "${c[@]}" --mkfs -i a --monmap "$DIR/monmap" --keyring "$DIR/keyring"
    spawn mon ceph-mon "${c[@]}" -i a
    local id; id=$(timeout 60 ceph "${c[@]}" osd create) || die "mon did not answer; see $DIR/log"
    ceph-osd "${c[@]}" -i "$id" --mkfs >"$DIR/log/osd-mkfs.out" 2>&1
    spawn osd ceph-osd "${c[@]}" -i "$id"
    spawn rgw radosgw "${c[@]}" -n client.rgw.a
    wait_s3 90
    timeout 60 radosgw-admin "${c[@]}" user create --uid=personamath --display-name=personamath \
        --access-key="$ACCESS_KEY" --secret="$SECRET_KEY" >/dev/null \
        || die "could not create the S3 user; see $DIR/log"
    log "ready at $ENDPOINT in $((SECONDS - t0)) s (data dir $DIR)"
}

cmd_stop() {
    # The memstore OSD keeps nothing worth a slow orderly shutdown; stop it before the
    # mon all the same (an OSD that lost its mon lingers ~10 s on TERM).
    kill_daemons 2 rgw osd
    kill_daemons 2 mon
    log "stopped (data dir $DIR)"
}

cmd_stop_rgw() { kill_daemons 10 rgw; log "radosgw stopped; mon and osd keep the data"; }

cmd_kill_rgw() { kill_daemons 0 rgw; log "radosgw killed; mon and osd keep the data"; }

cmd_start_rgw() {
    if ! { alive mon && alive osd; }; then die "the cluster is not running: use start"; fi
    if ! alive rgw; then
        port_busy "$PORT" && die "port $PORT on 127.0.0.1 is in use by another process"
        spawn rgw radosgw -c "$CONF" -n client.rgw.a
    fi
    wait_s3 60
    log "radosgw answering at $ENDPOINT"
}

cmd_status() {
    local ok=0
    for d in mon osd rgw; do
        if alive "$d"; then echo "$d: running (pid $(cat "$DIR/$d.pid"))"
        else echo "$d: stopped"; ok=1; fi
    done
    if s3_answers; then echo "s3: answering at $ENDPOINT"; else echo "s3: not answering"; ok=1; fi
    return $ok
}

cmd_env() {
    cat <<EOF
export AWS_ENDPOINT_URL=$ENDPOINT
export AWS_ACCESS_KEY_ID=$ACCESS_KEY
export AWS_SECRET_ACCESS_KEY=$SECRET_KEY
export AWS_REGION=us-east-1
export AWS_REQUEST_CHECKSUM_CALCULATION=WHEN_REQUIRED
export AWS_RESPONSE_CHECKSUM_VALIDATION=WHEN_REQUIRED
unset AWS_PROFILE AWS_SESSION_TOKEN
EOF
}

case "${1:-}" in
    start) cmd_start ;;
    stop) cmd_stop ;;
    status) cmd_status ;;
    env) cmd_env ;;
    stop-rgw) cmd_stop_rgw ;;
    kill-rgw) cmd_kill_rgw ;;
    start-rgw) cmd_start_rgw ;;
    *) sed -n '2,12p' "$0" | sed 's/^# \{0,1\}//' >&2; exit 2 ;;
esac
