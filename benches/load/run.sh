#!/usr/bin/env bash
# Load benchmark: one named level against a freshly built and started release service.
#
#   benches/load/run.sh LEVEL
#
# Levels:
#   smoke       short-call scenario, 5 calls/s for 5 s (number 9091)
#   short-N     short-call scenario (INVITE, 200, ACK, 2 s, BYE) at N calls/s for
#               DURATION seconds (default 90), number 9091 (line-check plan: the
#               welcome prompt plays for the whole 2 s)
#   long-N      N concurrent 30 s prompt-playing calls (number 9099, the bench plan in
#               benches/load/bench_long.toml), opened at RAMP calls/s (default N/10, at
#               least 20, at most 200); the service's RTP goes to the RTP probe
#               (src/bin/rtp-probe.rs), which measures pacing and packets/s.
#   dtmf-N      as long-N, but the probe sends each call RFC 4733 digit 1 DTMF_AFTER
#               (default 15s) after its first packet and times digit → first packet of the
#               next prompt (the plan then plays goodbye and the service hangs up).
#
# Environment: DURATION (short-N seconds), RAMP (long-N calls/s), HOLD_MS (long-N hold,
# default 30000), IDLE_MAX (machine busy % counted as idle, default 20), IDLE_SECS (that
# many consecutive idle seconds, default 5), IDLE_WAIT (max seconds to wait for them,
# default 60), SIP_PORT/HTTP_PORT/PROBE_PORT/SIPP_PORT,
# CARGO_TARGET_DIR (default /work/target-bench), PID_FILE (write the service's pid there, for
# benches/load/profile.sh), TONGDAI_BIN/PROBE_BIN (binaries to run
# instead of the release build; with NO_BUILD=1 that is how tests/realtime/bench_smoke.rs runs it), BUILD_TAG
# (the row's `build` column: default the worktree's commit, "+dirty" with local changes), RESULTS (default
# benches/results/results.csv), KEEP=1 keeps the work directory, NO_BUILD=1 skips cargo.
#
# Appends one row to $RESULTS and prints it; the work directory keeps the SIPp stat file,
# per-call response times, the service log, the per-second samples and `ps` snapshots.
# Besides the load figures, the row has the service's tokio task count (GET
# /debug/runtime) and RSS at three points: after start-up (base), the per-second
# maximum during the run (peak), and AFTER_WAIT (default 5) seconds after SIPp finished
# (after) — a leaked task or call shows as after > base — and the RSS once more
# AFTER_SETTLE (default 45; 0 skips it) seconds after SIPp finished (settled: the SIP
# layer keeps completed transactions for 64·T1 = 32 s, and the service gives freed heap
# back when idle).
# Exit status: 0 when the run completed and no call failed, 1 when calls failed, 2 on a
# harness error.
set -euo pipefail

LEVEL=${1:?usage: run.sh smoke|short-N|long-N}
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
TARGET=${CARGO_TARGET_DIR:-/work/target-bench}
RESULTS=${RESULTS:-$ROOT/benches/results/results.csv}
SIP_PORT=${SIP_PORT:-5070}
HTTP_PORT=${HTTP_PORT:-8070}
SIPP_PORT=${SIPP_PORT:-5080}
PROBE_PORT=${PROBE_PORT:-40000}
IDLE_MAX=${IDLE_MAX:-20}
IDLE_WAIT=${IDLE_WAIT:-60}
IDLE_SECS=${IDLE_SECS:-5}
HOLD_MS=${HOLD_MS:-30000}
AFTER_WAIT=${AFTER_WAIT:-5}
AFTER_SETTLE=${AFTER_SETTLE:-45}
if [ -z "${BUILD_TAG:-}" ]; then
    BUILD_TAG=$(git -C "$(dirname "$0")" rev-parse --short HEAD 2>/dev/null || echo unknown)
    git -C "$(dirname "$0")" diff --quiet HEAD 2>/dev/null || BUILD_TAG="$BUILD_TAG+dirty"
fi
HZ=$(getconf CLK_TCK)
NCPU=$(nproc)

die() { echo "run.sh: $*" >&2; exit 2; }

case "$LEVEL" in
smoke) KIND=short; RATE=5; DUR=5 ;;
short-[0-9]*) KIND=short; RATE=${LEVEL#short-}; DUR=${DURATION:-90} ;;
long-[0-9]*) KIND=long; CONC=${LEVEL#long-} ;;
dtmf-[0-9]*) KIND=long; CONC=${LEVEL#dtmf-}; DTMF_AFTER=${DTMF_AFTER:-15s} ;;
*) die "unknown level $LEVEL" ;;
esac

ulimit -n "$(ulimit -Hn)" 2>/dev/null || true
[ "$(ulimit -n)" -ge 4096 ] || echo "run.sh: warning: ulimit -n is $(ulimit -n)" >&2

if [ -z "${NO_BUILD:-}" ]; then
    (cd "$ROOT" && CARGO_TARGET_DIR=$TARGET cargo build --release --quiet --bins) \
        || die "cargo build failed"
fi
BIN=${TONGDAI_BIN:-$TARGET/release/tongdai}
PROBE=${PROBE_BIN:-$TARGET/release/rtp-probe}
[ -x "$BIN" ] || die "no $BIN"

WORK=$(mktemp -d /tmp/tongdai-bench.XXXXXX)
SVC_PID=
SIPP_PID=
PROBE_PID=
SAMPLER_PID=
cleanup() {
    for p in $SAMPLER_PID $SIPP_PID $PROBE_PID; do kill "$p" 2>/dev/null || true; done
    if [ -n "$SVC_PID" ]; then
        kill -TERM "$SVC_PID" 2>/dev/null || true
        for _ in $(seq 50); do kill -0 "$SVC_PID" 2>/dev/null || break; sleep 0.1; done
        kill -KILL "$SVC_PID" 2>/dev/null || true
    fi
    [ -n "${KEEP:-}" ] || rm -rf "$WORK"
}
trap cleanup EXIT

# --- CPU accounting helpers -------------------------------------------------------------
# total busy and total jiffies of the machine
machine_jiffies() { awk '/^cpu /{b=$2+$3+$4+$7+$8+$9; t=b+$5+$6; print b, t}' /proc/stat; }
# utime+stime of a pid (0 when gone)
pid_jiffies() { awk '{print $14+$15}' "/proc/$1/stat" 2>/dev/null || echo 0; }
pid_rss_kib() { awk '/^VmRSS:/{print $2}' "/proc/$1/status" 2>/dev/null || echo 0; }
# tokio tasks alive and active calls, "tasks calls" (empty when the route is missing)
runtime_counts() {
    local j t c
    j=$(curl -sf --max-time 2 "http://127.0.0.1:$HTTP_PORT/debug/runtime" 2>/dev/null) \
        || { echo " "; return; }
    t=${j#*\"tasks_alive\":}; t=${t%%[,\}]*}
    c=${j#*\"calls_active\":}; c=${c%%[,\}]*}
    echo "$t $c"
}
snapshot() { # what else is running
    echo "== $1 $(date -u +%FT%TZ) loadavg $(cut -d' ' -f1-3 /proc/loadavg)"
    # second frame of top: CPU over the last second, not the process lifetime
    top -b -n 2 -d 1 -w 200 | awk '/^top -/{n++} n==2' | sed -n '7,18p' 
}

# --- wait for an idle machine ----------------------------------------------------------
waited=0
quiet=0
while :; do
    read -r b0 t0 < <(machine_jiffies); sleep 1; read -r b1 t1 < <(machine_jiffies)
    busy=$(( (b1 - b0) * 100 / (t1 - t0 > 0 ? t1 - t0 : 1) ))
    waited=$((waited + 1))
    if [ "$busy" -le "$IDLE_MAX" ]; then quiet=$((quiet + 1)); else quiet=0; fi
    if [ "$quiet" -ge "$IDLE_SECS" ]; then break; fi
    if [ "$waited" -ge "$IDLE_WAIT" ]; then
        echo "run.sh: machine still ${busy}% busy after ${IDLE_WAIT}s; running anyway" >&2
        break
    fi
done
IDLE_BUSY=$busy
snapshot "before" > "$WORK/ps.txt"

# --- the service ---------------------------------------------------------------------------
mkdir -p "$WORK/dialplans"
cp "$ROOT"/dialplans/*.toml "$ROOT/benches/load/bench_long.toml" "$WORK/dialplans/"
(
    cd "$ROOT"
    exec env TONGDAI__SIP__LISTEN=127.0.0.1:$SIP_PORT \
        TONGDAI__HTTP__LISTEN=127.0.0.1:$HTTP_PORT \
        TONGDAI__HANDBOOK__LISTEN=127.0.0.1:0 \
        TONGDAI__DATABASE__URL=sqlite://$WORK/t.db \
        TONGDAI__DIALPLANS__DIR=$WORK/dialplans \
        TONGDAI__RTP__INACTIVITY_TIMEOUT=300s \
        TONGDAI__SIP__MAX_CALLS=20000 \
        TONGDAI__LOG__LEVEL=warn \
        "$BIN" serve
) > "$WORK/service.log" 2>&1 &
SVC_PID=$!
[ -z "${PID_FILE:-}" ] || echo "$SVC_PID" > "$PID_FILE"
for _ in $(seq 300); do
    curl -sf "http://127.0.0.1:$HTTP_PORT/readyz" > /dev/null 2>&1 && break
    kill -0 "$SVC_PID" 2>/dev/null || { cat "$WORK/service.log" >&2; die "service died"; }
    sleep 0.1
done
curl -sf "http://127.0.0.1:$HTTP_PORT/readyz" > /dev/null || die "service not ready"
sleep 1
BASE_RSS=$(pid_rss_kib "$SVC_PID")
read -r BASE_TASKS _ < <(runtime_counts) || true

# --- the scenario ----------------------------------------------------------------------------
if [ "$KIND" = short ]; then
    cp "$ROOT/tests/sipp/uac_short_call_load.xml" "$WORK/"
    SCEN=$WORK/uac_short_call_load.xml
    NUMBER=9091
    TOTAL=$((RATE * DUR))
    LIMIT=$((RATE * 10 + 50))
    SIPP_RATE=$RATE
    EXPECTED_PPS=
    EXTRA=()
else
    sed "s/timeout=\"30000\" ontimeout=\"hangup\"/timeout=\"$HOLD_MS\" ontimeout=\"hangup\"/" \
        "$ROOT/tests/sipp/bench_long_call.xml" > "$WORK/bench_long_call.xml"
    SCEN=$WORK/bench_long_call.xml
    NUMBER=9099
    TOTAL=$CONC
    LIMIT=$CONC
    RAMP=${RAMP:-$((CONC / 10))}
    [ "$RAMP" -ge 20 ] || RAMP=20
    [ "$RAMP" -le 200 ] || RAMP=200
    SIPP_RATE=$RAMP
    DUR=$(( (CONC + RAMP - 1) / RAMP ))
    EXTRA=(-set probe_port "$PROBE_PORT")
    "$PROBE" --port "$PROBE_PORT" --idle 5s --duration $((HOLD_MS / 1000 + DUR + 120))s \
        ${DTMF_AFTER:+--dtmf-after "$DTMF_AFTER"} \
        --out "$WORK/probe.json" > /dev/null 2> "$WORK/probe.log" &
    PROBE_PID=$!
    sleep 0.3
fi

# per-second sampler: service CPU/RSS, SIPp CPU, machine busy, active RTP sockets
sampler() {
    echo "t,svc_jiffies,svc_rss_kib,sipp_jiffies,machine_busy,machine_total,svc_udp_sockets,svc_tasks,wall"
    local t=0
    while :; do
        local sp=$1
        read -r b tt < <(machine_jiffies)
        local tasks
        read -r tasks _ < <(runtime_counts) || true
        echo "$t,$(pid_jiffies "$SVC_PID"),$(pid_rss_kib "$SVC_PID"),$(pid_jiffies "$sp"),$b,$tt,$(find /proc/"$SVC_PID"/fd -lname 'socket:*' 2>/dev/null | wc -l),$tasks,$(date +%s.%N)"
        t=$((t + 1))
        sleep 1
    done
}

read -r MB0 MT0 < <(machine_jiffies)
SVC_J0=$(pid_jiffies "$SVC_PID")
START=$(date +%s.%N)
(
    cd "$WORK"
    exec sipp -sf "$SCEN" -s "$NUMBER" -i 127.0.0.1 -p "$SIPP_PORT" \
        -r "$SIPP_RATE" -l "$LIMIT" -m "$TOTAL" "${EXTRA[@]}" \
        -nostdin -timeout $((DUR + HOLD_MS / 1000 + 120))s -buff_size 4194304 \
        -trace_stat -stf "$WORK/stat.csv" -fd 1 -trace_rtt -rtt_freq 1 \
        -trace_err -error_file "$WORK/errors.log" \
        "127.0.0.1:$SIP_PORT"
) > "$WORK/sipp.out" 2>&1 &
SIPP_PID=$!
sampler "$SIPP_PID" > "$WORK/samples.csv" &
SAMPLER_PID=$!
# a mid-run snapshot of what else is running
( sleep $(( DUR / 2 + 1 )); snapshot "mid-run" >> "$WORK/ps.txt" ) &
MID_PID=$!
set +e
wait "$SIPP_PID"
SIPP_RC=$?
set -e
SIPP_PID=
END=$(date +%s.%N)
SVC_J1=$(pid_jiffies "$SVC_PID")
read -r MB1 MT1 < <(machine_jiffies)
kill "$SAMPLER_PID" 2>/dev/null || true; wait "$SAMPLER_PID" 2>/dev/null || true
SAMPLER_PID=
kill "$MID_PID" 2>/dev/null || true
if [ -n "$PROBE_PID" ]; then
    wait "$PROBE_PID" || true
    PROBE_PID=
fi
snapshot "after" >> "$WORK/ps.txt"
# back to baseline? tasks, calls and RSS a few seconds after the last call
sleep "$AFTER_WAIT"
read -r AFTER_TASKS AFTER_CALLS < <(runtime_counts) || true
AFTER_RSS=$(pid_rss_kib "$SVC_PID")
SETTLED_RSS=
if [ "$AFTER_SETTLE" -gt "$AFTER_WAIT" ]; then
    sleep $((AFTER_SETTLE - AFTER_WAIT))
    SETTLED_RSS=$(pid_rss_kib "$SVC_PID")
fi
[ -f "$WORK/stat.csv" ] || { cat "$WORK/sipp.out" >&2; die "SIPp wrote no stat file (rc $SIPP_RC)"; }

# --- the row ----------------------------------------------------------------------------------
export WORK LEVEL RATE DUR START END SVC_J0 SVC_J1 MB0 MB1 MT0 MT1 HZ NCPU BASE_RSS SIPP_RC \
    IDLE_BUSY KIND BASE_TASKS AFTER_TASKS AFTER_CALLS AFTER_RSS BUILD_TAG SETTLED_RSS
ROW=$(python3 - <<'PY'
import csv, glob, json, os, statistics
e = os.environ
w = e["WORK"]
rows = list(csv.DictReader(open(f"{w}/stat.csv"), delimiter=";"))
last = rows[-1]
def col(r, name):
    try: return float(r[name])
    except (KeyError, ValueError): return 0.0
attempted = int(col(last, "OutgoingCall(C)"))
ok = int(col(last, "SuccessfulCall(C)"))
failed = int(col(last, "FailedCall(C)"))
retrans = int(col(last, "Retransmissions(C)"))
peak_sipp = int(max(col(r, "CurrentCall") for r in rows))
rates = [col(r, "CallRate(P)") for r in rows if col(r, "CallRate(P)") > 0]
cps = statistics.mean(rates[:-1] if len(rates) > 2 else rates) if rates else 0.0
wall = float(e["END"]) - float(e["START"])
hz = float(e["HZ"])
svc_cpu = (int(e["SVC_J1"]) - int(e["SVC_J0"])) / hz / wall * 100
# samples: per-second service CPU (peak), SIPp CPU (mean over its life), others
s = list(csv.DictReader(open(f"{w}/samples.csv")))
def per_sec(key):
    # % of one core between consecutive samples (about a second apart; the real gap)
    out = []
    for a, b in zip(s, s[1:]):
        dt = max(float(b["wall"]) - float(a["wall"]), 0.1)
        out.append((int(b[key]) - int(a[key])) / hz * 100 / dt)
    return out
svc_ps = per_sec("svc_jiffies")
sipp_ps = [x for x in per_sec("sipp_jiffies") if x >= 0]
mach = []
for a, b in zip(s, s[1:]):
    dt = int(b["machine_total"]) - int(a["machine_total"])
    mach.append((int(b["machine_busy"]) - int(a["machine_busy"])) / max(dt, 1) * 100 * int(e["NCPU"]))
sipp_cpu = statistics.mean(sipp_ps) if sipp_ps else 0.0
mach_cpu = (int(e["MB1"]) - int(e["MB0"])) / max(int(e["MT1"]) - int(e["MT0"]), 1) * 100 * int(e["NCPU"])
others = max(mach_cpu - svc_cpu - sipp_cpu, 0.0)
peak_rss = max(int(r["svc_rss_kib"]) for r in s) if s else 0
# active calls on the service side: its sockets (one RTP socket per call) above the idle count
socks = [int(r["svc_udp_sockets"]) for r in s]
peak_calls = max(peak_sipp, 0)
rss_per_call = (peak_rss - int(e["BASE_RSS"])) / peak_calls if peak_calls else 0.0
# INVITE->200 from SIPp's per-call rtt file (ms)
rtt = []
for f in glob.glob(f"{w}/*_rtt.csv"):
    for line in open(f):
        p = line.strip().split(";")
        if len(p) >= 2:
            try: rtt.append(float(p[1]))
            except ValueError: pass
rtt.sort()
def q(p): return rtt[min(len(rtt) - 1, int(round((len(rtt) - 1) * p)))] if rtt else float("nan")
probe = {}
if os.path.exists(f"{w}/probe.json"):
    probe = json.load(open(f"{w}/probe.json"))
rtp = ""
if probe:
    rtp = (f"{probe['steady_recv_pps']}/{probe['steady_expected_pps']} pps; "
           f"interval p50 {probe['interval_ms_p50']} p99 {probe['interval_ms_p99']} "
           f"max {probe['interval_ms_max']} ms; {probe['interval_within_20ms_pm2_pct']}% in 20+-2; "
           + (f"(probe read: p99 {probe['arrival_interval_ms_p99']} max {probe['arrival_interval_ms_max']} ms, "
              f"{probe['arrival_within_20ms_pm2_pct']}% in 20+-2); " if "arrival_interval_ms_p99" in probe else "") +
           f"seq gaps {probe['seq_gaps']}; drops {probe['kernel_drops']}")
    if probe.get("digits_sent"):
        rtp += (f"; digit->prompt p50 {probe['digit_to_prompt_ms_p50']} "
                f"p99 {probe['digit_to_prompt_ms_p99']} max {probe['digit_to_prompt_ms_max']} ms "
                f"({probe['digit_reactions']}/{probe['digits_sent']})")
# other load: top non-bench processes from the mid-run snapshot
other = []
mode = None
for line in open(f"{w}/ps.txt"):
    if line.startswith("=="):
        mode = line.split()[1]; continue
    if mode != "mid-run" or line.strip().startswith("PID"): continue
    p = line.split()
    try: cpu = float(p[8])
    except (IndexError, ValueError): continue
    if p[11] not in ("tongdai", "sipp", "rtp-probe", "top") and cpu >= 1.0:
        other.append(f"{p[11]} {p[8]}%")
load = open("/proc/loadavg").read().split()[:3]
note = (f"idle-before {e['IDLE_BUSY']}%; others {others:.0f}% of 1 core during run; "
        f"loadavg {'/'.join(load)}; top others: {', '.join(other[:4]) or 'none >=1%'}")
import datetime
tasks = [int(r["svc_tasks"]) for r in s if r.get("svc_tasks", "").strip().isdigit()]
row = [datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%MZ"), e["LEVEL"],
       attempted, ok, failed, retrans, f"{cps:.1f}", peak_calls,
       f"{svc_cpu:.1f}", f"{max(svc_ps) if svc_ps else 0:.1f}", f"{sipp_cpu:.1f}",
       f"{rss_per_call:.1f}", f"{q(0.5):.2f}", f"{q(0.99):.2f}", rtp, note,
       e.get("BASE_TASKS", "").strip(), max(tasks) if tasks else "",
       e.get("AFTER_TASKS", "").strip(), e.get("AFTER_CALLS", "").strip(),
       e["BASE_RSS"], peak_rss, e.get("AFTER_RSS", "").strip(), e["BUILD_TAG"],
       e.get("SETTLED_RSS", "").strip()]
import io
buf = io.StringIO()
csv.writer(buf).writerow(row)
print(buf.getvalue().strip())
PY
)
HEADER="date,level,attempted,succeeded,failed,retransmissions,cps,peak_concurrent,service_cpu_pct,service_cpu_peak_pct,sipp_cpu_pct,rss_per_call_kib,invite_200_p50_ms,invite_200_p99_ms,rtp_probe,other_load,tasks_base,tasks_peak,tasks_after,calls_active_after,rss_base_kib,rss_peak_kib,rss_after_kib,build,rss_settled_kib"
if [ ! -f "$RESULTS" ]; then
    mkdir -p "$(dirname "$RESULTS")"
    echo "$HEADER" > "$RESULTS"
elif [ "$(head -1 "$RESULTS")" != "$HEADER" ]; then
    # rows from before the task/RSS columns: pad them
    HEADER=$HEADER python3 - "$RESULTS" <<'PY'
import csv, os, sys
path = sys.argv[1]
header = os.environ["HEADER"].split(",")
rows = list(csv.reader(open(path)))[1:]
with open(path, "w", newline="") as f:
    w = csv.writer(f, lineterminator="\n")
    w.writerow(header)
    for r in rows:
        w.writerow(r + [""] * (len(header) - len(r)))
PY
fi
echo "$ROW" >> "$RESULTS"
echo "$ROW"
echo "work dir: $WORK (kept: ${KEEP:-no})" >&2
FAILED=$(echo "$ROW" | python3 -c 'import csv,sys; print(next(csv.reader(sys.stdin))[4])')
[ "$FAILED" = 0 ] && [ "$SIPP_RC" = 0 ] && exit 0
exit 1
