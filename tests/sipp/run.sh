#!/usr/bin/env bash
# Run one SIPp scenario from tests/sipp/ as the caller, with the project's defaults.
#
#   tests/sipp/run.sh SCENARIO [TARGET] [extra sipp options...]
#     SCENARIO  file name (uac_info or uac_info.xml) or a path
#     TARGET    host:port of the service (default $SIPP_TARGET or 127.0.0.1:5060)
#
# Defaults (override by passing the option again after TARGET; SIPp keeps the last):
#   -s ${SIPP_SERVICE:-9091} (the line check; 9090 = registration) -i 127.0.0.1 -mp $SIPP_MEDIA_PORT (6000) -m 1 -nostdin -timeout 60s
#   -recv_timeout 30000 (a call stuck on a recv without timeout ends anyway)
#   -key dtmf_pcap /usr/share/sip-tester/dtmf_2833_5.pcap (only read by uac_rfc4733.xml)
#   traces (-trace_msg -trace_err -trace_screen) under tests/out/sipp/<scenario>/
# Exit code is SIPp's: 0 all calls succeeded, 1 some failed, 99 no calls, 254 bind error.
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
root=$(cd "$here/../.." && pwd)

if (($# < 1)); then
    sed -n '2,14p' "${BASH_SOURCE[0]}" >&2
    exit 2
fi
scn=$1
shift
if [[ ! -f $scn ]]; then
    scn=$here/${scn%.xml}.xml
fi
[[ -f $scn ]] || { echo "run.sh: no scenario $scn" >&2; exit 2; }
scn=$(cd "$(dirname "$scn")" && pwd)/$(basename "$scn")

target=${SIPP_TARGET:-127.0.0.1:5060}
if (($# > 0)) && [[ $1 != -* ]]; then
    target=$1
    shift
fi

name=$(basename "$scn" .xml)
out=$root/tests/out/sipp/$name
mkdir -p "$out"
rm -f "$out"/*

args=(-sf "$scn" -s "${SIPP_SERVICE:-9091}" -i 127.0.0.1 -mp "${SIPP_MEDIA_PORT:-6000}" -m 1 -nostdin
    -timeout 60s -recv_timeout 30000
    -trace_msg -message_file "$out/messages.log"
    -trace_err -error_file "$out/errors.log"
    -trace_screen -screen_file "$out/screen.log")
if grep -q '\[dtmf_pcap\]' "$scn"; then
    args+=(-key dtmf_pcap /usr/share/sip-tester/dtmf_2833_5.pcap)
fi

cd "$out"
set +e
sipp "${args[@]}" "$@" "$target" >"$out/stdout.log" 2>&1
rc=$?
set -e
if ((rc == 0)); then
    echo "sipp $name: OK"
else
    echo "sipp $name: FAILED (exit $rc); traces in $out" >&2
    grep -h -v '^\s*$' "$out/errors.log" 2>/dev/null | tail -5 >&2 || true
fi
exit $rc
