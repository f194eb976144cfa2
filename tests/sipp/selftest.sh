#!/usr/bin/env bash
# Check the UAC scenarios themselves, without the service: each one calls a SIPp UAS
# mock (tests/sipp/mock/) that behaves the way tongdai's demo flow is specified to.
# A failure here is a bug in a scenario (or a SIPp quirk), not in the service.
#   tests/sipp/selftest.sh            (needs root for the RFC 4733 pcap replay)
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
root=$(cd "$here/../.." && pwd)
out=$root/tests/out/sipp-selftest
mkdir -p "$out"

port=${SELFTEST_PORT:-5998}
# pairs: uac scenario | mock | extra mock options
pairs=(
    "uac_rfc4733|mock_answer_hangup|"
    "uac_info|mock_answer_hangup|"
    "uac_no_digit|mock_answer_hangup|"
    "uac_caller_hangup|mock_answer_wait|"
    "uac_reinvite_hold|mock_answer_wait|"
    "uac_short_call_load|mock_answer_wait|"
    "uac_cancel|mock_ring_cancel|"
    "uac_unknown_number|mock_reject_404|"
    "uac_no_codec|mock_reject_488|"
    "uac_options|mock_options|"
)

fail=0
for p in "${pairs[@]}"; do
    IFS='|' read -r uac mock mockopts <<<"$p"
    (cd "$out" && exec sipp -sf "$here/mock/$mock.xml" -s 9090 -i 127.0.0.1 -p "$port" \
        -mp 6100 -m 1 -nostdin -timeout 40s -trace_msg -message_file "$out/$uac.mock.log" \
        $mockopts >"$out/$uac.mock.stdout" 2>&1) &
    mock_pid=$!
    sleep 0.3
    uac_rc=0
    SIPP_MEDIA_PORT=6200 "$here/run.sh" "$uac" "127.0.0.1:$port" >/dev/null 2>&1 || uac_rc=$?
    mock_rc=0
    wait "$mock_pid" || mock_rc=$?
    if ((uac_rc == 0 && mock_rc == 0)); then
        echo "selftest $uac <-> $mock: ok"
    else
        echo "selftest $uac <-> $mock: FAILED (uac exit $uac_rc, mock exit $mock_rc; see $out and tests/out/sipp/$uac)"
        fail=1
    fi
done
exit $fail
