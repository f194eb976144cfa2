#!/usr/bin/env bash
# CPU profile of the service during a load run, as text (perf, software cpu-clock).
#
#   benches/load/profile.sh LEVEL DELAY SECONDS OUT.txt
#
# Runs `benches/load/run.sh LEVEL` (environment passed through, e.g. HOLD_MS), waits
# DELAY seconds after the service started (the ramp), records `perf record -F 499 -g` of
# the service for SECONDS, and writes OUT.txt: the run's result row, samples by shared
# object, the top 40 symbols by self time, inclusive time of the main paths, and the
# call graph of the top kernel symbol. The run's row also goes to results.csv as usual.
set -euo pipefail
LEVEL=${1:?usage: profile.sh LEVEL DELAY SECONDS OUT.txt}
DELAY=${2:?delay}
SECS=${3:?seconds}
OUT=${4:?out}
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
TMP=$(mktemp -d /tmp/tongdai-prof.XXXXXX)
trap 'rm -rf "$TMP"' EXIT
PID_FILE=$TMP/pid "$ROOT/benches/load/run.sh" "$LEVEL" > "$TMP/row.txt" 2> "$TMP/run.log" &
RUN=$!
for _ in $(seq 600); do [ -s "$TMP/pid" ] && break; sleep 0.5; done
[ -s "$TMP/pid" ] || { cat "$TMP/run.log" >&2; echo "profile.sh: service did not start" >&2; exit 2; }
PID=$(cat "$TMP/pid")
sleep "$DELAY"
START=$(date -u +%FT%TZ)
perf record -F 499 -g -o "$TMP/perf.data" -p "$PID" -- sleep "$SECS" 2> "$TMP/perf.log"
set +e
wait "$RUN"
RC=$?
# the reports below are pipelines cut short by head/awk: no pipefail, no -e
set +e +o pipefail
report() { perf report -i "$TMP/perf.data" --stdio "$@" 2>/dev/null; }
SAMPLES=$(report --sort dso | awk '/^# Samples:/{print $3; exit}')
{
    echo "# perf record -F 499 -g -p <tongdai serve> -- sleep $SECS, $DELAY s into $LEVEL (HOLD_MS=${HOLD_MS:-30000}), $START"
    echo "# software cpu-clock; $SAMPLES samples in $SECS s"
    echo "# the run (run.sh exit $RC):"
    echo "# $(grep -v '^work dir' "$TMP/row.txt" | tail -1)"
    echo
    echo "## by shared object"
    report --no-children --sort dso -g none | grep -v '^#' | grep -v '^$' | head -8
    echo
    echo "## self time, top 40 symbols"
    report --no-children --sort sym -g none | grep -v '^#' | grep -v '^$' | head -40
    echo
    echo "## inclusive (children), top 60 symbols"
    report --children --sort sym -g none | grep -v '^#' | grep -v '^$' | head -60
    echo
    echo "## call graph of the top 3 self-time symbols (callers, >= 1%)"
    for sym in $(report --no-children --sort sym -g none | grep -v '^#' | grep -v '^$' | head -3 | awk '{print $NF}'); do
        report --no-children --sort sym -G --percent-limit 1 --symbols "$sym" 2>/dev/null \
            | grep -v '^#' | grep -v '^$' | head -60
    done
} | sed 's/[[:space:]]*$//' > "$OUT"
echo "profile: $OUT"
