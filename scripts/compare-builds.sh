#!/usr/bin/env bash
# Black-box comparison of two builds of the service, for restructurings that must not
# change what a user sees:
#
#   scripts/compare-builds.sh OLD_BINARY NEW_BINARY [WORKDIR]
#
# Runs the same session against each build in turn — CLI commands (check, import,
# campaign create/list/show/start/pause, dnc add/list, errors and exit codes, --help),
# then `serve` with a fresh SQLite store and a fixed `program.today`: 36 API requests
# over every role (fanpage intake with an Idempotency-Key replayed, the Vinmec queue
# through claim/prescreen/book/consulted, refusals naming their field, supervisor views,
# campaign commands, do-not-call, CSV exports), one SIPp call to 9091 with an INFO digit,
# the call log, the snapshot and /metrics — and prints the differences after
# normalising timestamps and Call-IDs. Uses 127.0.0.1:25060 (SIP) and :28080 (HTTP).
# Exit code: 0 when the two sessions read the same, 1 otherwise.
set -uo pipefail
REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
if (($# < 2)); then sed -n '2,14p' "${BASH_SOURCE[0]}" >&2; exit 2; fi
OLD=$(realpath "$1"); NEW=$(realpath "$2"); WORK=${3:-$(mktemp -d)}

session() {
BIN=$1; OUT=$2
rm -rf $OUT; mkdir -p $OUT/data; cd $OUT
ADMIN=adm1n-token-0000000000000000000000000000000000; SUP=sup-token-00000000000000000000000000000000000; VIN=vin-token-0000000000000000000000000000000000
h() { printf %s "$1" | sha256sum | cut -d' ' -f1; }
cat > cfg.toml <<C
[sip]
listen = "127.0.0.1:25060"
[http]
listen = "127.0.0.1:28080"
[database]
url = "sqlite://$OUT/data/t.db"
[program]
today = "2021-12-05"
[dialer]
instance = "cmp"
[[api.tokens]]
name = "a"
role = "admin"
sha256 = "$(h $ADMIN)"
[[api.tokens]]
name = "s"
role = "supervisor"
sha256 = "$(h $SUP)"
[[api.tokens]]
name = "v"
role = "vinmec"
sha256 = "$(h $VIN)"
C
n=0
cli() { n=$((n+1)); { echo "\$ tongdai $*"; (cd $REPO && $BIN "$@" --config $OUT/cfg.toml 2>&1); echo "exit=$?"; } > $OUT/cli$(printf %02d $n).txt; }
cli check
cli import subscribers $REPO/tests/data/subscribers-sample.csv
cli campaign create --kind invitation --name "mời-đợt-1"
cli campaign list
cli campaign show 1
cli campaign start 1
cli campaign start 1
cli campaign pause "mời-đợt-1"
cli dnc add 0901000002 --note "khách yêu cầu"
cli dnc add 12345
cli dnc list
cli campaign show nosuch
{ $BIN --help; $BIN campaign --help; $BIN dnc --help; } > $OUT/help.txt 2>&1
(cd $REPO && exec $BIN serve --config $OUT/cfg.toml) > $OUT/serve.log 2>&1 &
SP=$!
for i in $(seq 1 100); do curl -sf 127.0.0.1:28080/readyz >/dev/null && break; sleep 0.2; done
k=0
api() { k=$((k+1)); local tok=$1 m=$2 p=$3; shift 3; { echo "$m $p"; curl -s -i -X $m -H "Authorization: Bearer $tok" -H 'content-type: application/json' "$@" "http://127.0.0.1:28080$p" | tr -d '\r' | grep -v -i '^date:'; echo; } > $OUT/api$(printf %02d $k).txt; }
api x GET /healthz
api x GET /readyz
api x GET /openapi.json
api $SUP GET /api/v1/whoami
api nope GET /api/v1/whoami
api $ADMIN POST /api/v1/fanpage/registrations -H 'Idempotency-Key: k1' -d '{"msisdn":"0901000001","name":"Nguyễn Văn An","specialty":2,"fanpage_ref":"post-1"}'
api $ADMIN POST /api/v1/fanpage/registrations -H 'Idempotency-Key: k1' -d '{"msisdn":"0901000001","name":"Nguyễn Văn An","specialty":2,"fanpage_ref":"post-1"}'
api $ADMIN POST /api/v1/fanpage/registrations -d '{"msisdn":"0901000001x","name":"A","fanpage_ref":"p"}'
api $ADMIN POST /api/v1/fanpage/registrations -d '{"msisdn":"0901000004","name":"Phạm","fanpage_ref":"p2","extra":1}'
api $VIN GET /api/v1/vinmec/queue
api $VIN POST /api/v1/vinmec/queue/claim -d '{}'
api $VIN GET /api/v1/vinmec/queue/1
api $VIN POST /api/v1/vinmec/queue/1/prescreen -d '{"need":"đau đầu","routed_specialty":1}'
api $VIN POST /api/v1/vinmec/queue/1/book -d '{"date":"2021-12-20","time":"10:00","method":"phone"}'
api $VIN POST /api/v1/vinmec/queue/1/book -d '{"date":"2021-12-20","time":"25:00","method":"phone"}'
api $VIN POST /api/v1/vinmec/queue/1/consulted -d '{"report":"ổn"}'
api $VIN POST /api/v1/vinmec/queue/999/release -d '{}'
api $VIN GET /api/v1/vinmec/registrations.csv
api $SUP GET /api/v1/supervisor/registrations
api $SUP GET /api/v1/supervisor/vinmec
api $SUP GET /api/v1/supervisor/lines
api $SUP GET /api/v1/supervisor/trunk
api $SUP GET /api/v1/supervisor/satisfaction
api $SUP GET /api/v1/campaigns
api $SUP GET /api/v1/campaigns/1
api $ADMIN POST /api/v1/campaigns/1/resume
api $ADMIN POST /api/v1/campaigns/1/start
api $ADMIN POST /api/v1/campaigns/1/stop
api $SUP POST /api/v1/campaigns/1/stop
api $ADMIN POST /api/v1/do-not-call -d '{"msisdn":"0901000003","note":"x"}'
api $SUP GET /api/v1/do-not-call
api $SUP GET /api/v1/surveys/results.csv
(cd $REPO && tests/sipp/run.sh uac_info 127.0.0.1:25060) > $OUT/sipp.txt 2>&1; echo "sipp exit=$?" >> $OUT/sipp.txt
api $SUP GET /api/v1/supervisor/calls/recent
api $SUP GET /calls
api $SUP GET /api/v1/supervisor/snapshot
api x GET /metrics
kill -TERM $SP; wait $SP; echo "serve exit=$?" >> $OUT/serve.log
}

# Timestamps (and the CLI's local times), Call-IDs, metric values that measure time,
# memory or the process, and which minute of the chart the call fell in are expected to
# differ; metric families are compared sorted. The tokio task count is an internal
# figure: printed at the end, not compared.
norm() {
    sed -E 's/[0-9]{4}-[0-9]{2}-[0-9]{2}[T ][0-9:.]+(Z|[+-][0-9]{2}:[0-9]{2})?/TS/g;
            s/"call_id":"[^"]*"/"call_id":"CALLID"/g; s/^content-length: .*/content-length: N/;
            s/"calls_per_minute":\[[^]]*\]/"calls_per_minute":[…]/;
            s/(_seconds(_sum|_bucket[^ ]*)?|process_[a-z_]*|_bytes|uptime[a-z_]*|tasks_alive) [0-9.e+-]+/\1 N/' "$1"
}

session "$OLD" "$WORK/old"
session "$NEW" "$WORK/new"
status=0
for f in $(ls "$WORK/new" | grep -E '^(api|cli|help|sipp)'); do
    if [[ $f == api36.txt ]]; then   # /metrics: families in any order
        a=$(norm "$WORK/old/$f" | sort); b=$(norm "$WORK/new/$f" | sort)
    else
        a=$(norm "$WORK/old/$f"); b=$(norm "$WORK/new/$f")
    fi
    if [[ $a != "$b" ]]; then
        status=1
        echo "=== $f ($(head -1 "$WORK/new/$f"))"
        diff <(echo "$a") <(echo "$b")
    fi
done
echo "tokio tasks alive after the session: old $(grep -h '^tongdai_tokio_tasks_alive' "$WORK/old/api36.txt" | cut -d' ' -f2), new $(grep -h '^tongdai_tokio_tasks_alive' "$WORK/new/api36.txt" | cut -d' ' -f2)"
echo "compared $(ls "$WORK/new" | grep -cE '^(api|cli|help|sipp)') outputs in $WORK: $([[ $status == 0 ]] && echo same || echo differences above)"
exit $status
