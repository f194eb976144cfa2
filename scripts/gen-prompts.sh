#!/usr/bin/env bash
# Regenerate every prompt WAV from prompts/manifest.toml.
#
#   scripts/gen-prompts.sh            regenerate all prompts (and delete WAVs no longer listed)
#   scripts/gen-prompts.sh ID...      regenerate only these ids
#
# Pipeline per prompt: espeak-ng -v <voice> -s <speed> (22,050 Hz WAV) ->
#   sox -R in.wav -r 8000 -c 1 -b 16 -e signed-integer prompts/vi/<id>.wav \
#       silence ... reverse silence ... reverse pad 0.03 0.15 norm -3
# espeak-ng ends every utterance with ~0.4 s of silence; prompts are concatenated
# (a date is ~10 number prompts), so leading/trailing silence is trimmed and replaced
# by a fixed 30 ms lead-in and 150 ms tail.
# `sox -R` seeds the dither generator with a fixed value, so output is byte-for-byte
# deterministic for a given espeak-ng/sox version. The [pronounce] table rewrites
# brand names and numbers into what the synthesizer should say; the manifest text
# itself stays as written.
#
# Finally every WAV is checked with soxi (8000 Hz, 1 channel, 16-bit signed) and the
# total duration printed. Installs espeak-ng/sox via apt if they are missing.
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."

MANIFEST=prompts/manifest.toml
OUT_DIR=prompts/vi

missing=()
command -v espeak-ng >/dev/null 2>&1 || missing+=(espeak-ng)
command -v sox >/dev/null 2>&1 || missing+=(sox)
command -v soxi >/dev/null 2>&1 || missing+=(sox)
command -v python3 >/dev/null 2>&1 || missing+=(python3)
if ((${#missing[@]} > 0)); then
    SUDO=""
    [[ $(id -u) -ne 0 ]] && SUDO=sudo
    echo "gen-prompts: installing ${missing[*]}" >&2
    $SUDO apt-get -o DPkg::Lock::Timeout=300 -q update >&2
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get -o DPkg::Lock::Timeout=300 -y -q \
        --no-install-recommends install $(printf '%s\n' "${missing[@]}" | sort -u) >&2
fi

mkdir -p "$OUT_DIR"

# The manifest -> NUL-separated records: voice, speed, then (id, spoken text) pairs.
# Ids given on the command line restrict the set (unknown ids are an error).
plan=$(mktemp)
work=$(mktemp -d)
trap 'rm -rf "$plan" "$work"' EXIT

python3 - "$MANIFEST" "$@" >"$plan" <<'PY'
import re, sys
try:
    import tomllib
except ModuleNotFoundError:
    sys.exit("gen-prompts: python3 >= 3.11 is needed (tomllib)")

path, wanted = sys.argv[1], sys.argv[2:]
with open(path, "rb") as f:
    m = tomllib.load(f)

tts = m.get("tts", {})
voice = str(tts.get("voice", "vi"))
speed = int(tts.get("speed", 150))
prompts = m.get("prompts")
if not isinstance(prompts, dict) or not prompts:
    sys.exit(f"gen-prompts: {path} has no [prompts] table")
pron = m.get("pronounce", {})

bad = [k for k in prompts if not re.fullmatch(r"[a-z][a-z0-9_]*", k)]
if bad:
    sys.exit(f"gen-prompts: prompt ids must be snake_case ASCII: {bad}")
unknown = [k for k in wanted if k not in prompts]
if unknown:
    sys.exit(f"gen-prompts: not in {path}: {unknown}")

# Longest first so "Covid-19" wins over a shorter key inside it.
subs = [(re.compile(r"(?<!\w)" + re.escape(k) + r"(?!\w)"), v)
        for k, v in sorted(pron.items(), key=lambda kv: -len(kv[0]))]

def spoken(text):
    for rx, v in subs:
        text = rx.sub(v, text)
    return text

out = [voice, str(speed)]
for pid in sorted(prompts):
    if wanted and pid not in wanted:
        continue
    text = prompts[pid]
    if not isinstance(text, str) or not text.strip():
        sys.exit(f"gen-prompts: prompt {pid} has no text")
    out += [pid, spoken(text)]
# Last record: all ids (to prune stale WAVs on a full run).
out.append(" ".join(sorted(prompts)))
sys.stdout.write("\0".join(out) + "\0")
PY

mapfile -d '' rec <"$plan"
voice=${rec[0]}
speed=${rec[1]}
all_ids=${rec[-1]}
n=0
for ((i = 2; i < ${#rec[@]} - 1; i += 2)); do
    id=${rec[i]}
    text=${rec[i + 1]}
    espeak-ng -v "$voice" -s "$speed" -w "$work/$id.wav" -- "$text"
    sox -R "$work/$id.wav" -r 8000 -c 1 -b 16 -e signed-integer "$OUT_DIR/$id.wav" \
        silence 1 0.005 -50d reverse silence 1 0.005 -50d reverse pad 0.03 0.15 norm -3
    n=$((n + 1))
done
echo "gen-prompts: generated $n prompt(s) into $OUT_DIR/ (voice $voice, speed $speed)"

if (($# == 0)); then
    # Full run: drop WAVs whose id left the manifest.
    for f in "$OUT_DIR"/*.wav; do
        [[ -e $f ]] || continue
        id=$(basename "$f" .wav)
        if [[ " $all_ids " != *" $id "* ]]; then
            echo "gen-prompts: removing stale $f"
            rm -f "$f"
        fi
    done
fi

# Check every listed prompt exists with the expected format; sum durations.
fail=0
total=0
count=0
for id in $all_ids; do
    f="$OUT_DIR/$id.wav"
    if [[ ! -f $f ]]; then
        echo "gen-prompts: MISSING $f" >&2
        fail=1
        continue
    fi
    rate=$(soxi -r "$f")
    chans=$(soxi -c "$f")
    bits=$(soxi -b "$f")
    enc=$(soxi -e "$f")
    if [[ $rate != 8000 || $chans != 1 || $bits != 16 || $enc != "Signed Integer PCM" ]]; then
        echo "gen-prompts: BAD FORMAT $f: $rate Hz, $chans ch, $bits bit, $enc" >&2
        fail=1
    fi
    total=$(awk -v a="$total" -v b="$(soxi -D "$f")" 'BEGIN { printf "%.3f", a + b }')
    count=$((count + 1))
done
((fail == 0)) || exit 1
echo "gen-prompts: $count prompts OK (8000 Hz, mono, 16-bit signed PCM), total duration ${total} s"
