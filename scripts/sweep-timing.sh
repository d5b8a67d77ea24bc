#!/usr/bin/env bash
# Times the example sweep (config/sweeps/example.ron, ASHA off so that both do the same
# work) run two ways, in interleaved pairs so that both see the same load:
#   one after another: one trial at a time, each with every core (what a shell loop of
#                      `ploutos train` does);
#   the sweep:         `ploutos sweep`'s default, the cores split between trials at once.
# Prints each pair and the medians; the last sweep's leaderboard is kept in $OUT.
# Usage: scripts/sweep-timing.sh [PAIRS=3] [OUT=/tmp/ploutos-sweep-timing]
set -euo pipefail
cd "$(dirname "$0")/.."
PAIRS="${1:-3}"
OUT="${2:-/tmp/ploutos-sweep-timing}"
CORES=$(nproc)
cargo build --release --quiet
BIN="$(cargo metadata --format-version 1 --no-deps | python3 -c 'import json,sys; print(json.load(sys.stdin)["target_directory"])')/release/ploutos"
rm -rf "$OUT" && mkdir -p "$OUT"
# The example without ASHA; `base` made absolute so that the sweeps can run from $OUT.
sed -e '/^    asha:/d' -e "s|base: \"config/default.ron\"|base: \"$PWD/config/default.ron\"|" \
    config/sweeps/example.ron > "$OUT/parallel.ron"
sed -e "s/trial_threads: 0/trial_threads: $CORES/" "$OUT/parallel.ron" > "$OUT/serial.ron"
seq_times=(); par_times=()
for i in $(seq "$PAIRS"); do
    for mode in serial parallel; do
        start=$(date +%s.%N)
        (cd "$OUT" && "$BIN" sweep "$mode.ron" --out "sweep-$mode" --force > "$mode.txt" 2> "$mode.log")
        t=$(python3 -c "import time; print(round(time.time() - $start, 1))")
        if [ "$mode" = serial ]; then seq_times+=("$t"); else par_times+=("$t"); fi
    done
    echo "pair $i: one after another ${seq_times[-1]} s, sweep ${par_times[-1]} s"
done
python3 - "${seq_times[*]}" "${par_times[*]}" "$CORES" <<'PY'
import statistics, sys
s = [float(x) for x in sys.argv[1].split()]
p = [float(x) for x in sys.argv[2].split()]
ms, mp = statistics.median(s), statistics.median(p)
ratios = sorted(a / b for a, b in zip(s, p))
print(f"8 trials on {sys.argv[3]} cores, median of {len(s)} interleaved pairs: one after another {ms:.0f} s "
      f"(each trial on every core), sweep {mp:.0f} s (trials at once, cores split) -> {ms / mp:.2f}x "
      f"(pairs {', '.join(f'{r:.2f}x' for r in ratios)})")
PY
echo "leaderboard of the last sweep: $OUT/sweep-parallel/leaderboard.html"
cat "$OUT/parallel.txt"
