#!/usr/bin/env bash
# A/B env throughput of two `ploutos` binaries on the same machine: RUNS interleaved runs of
# `ploutos bench` each (A, B, A, B, ...) per layout, then the median env-steps/s of each and
# the median of the pairwise ratios B/A. Interleaving spreads a shared machine's noise over
# both binaries.
#
# usage: scripts/ab-env-bench.sh BIN_A BIN_B [RUNS=5] [ENVS=4096] [SECONDS=3]
set -euo pipefail
a=$1 b=$2 runs=${3:-5} envs=${4:-4096} secs=${5:-3}
out=$(mktemp)
# An empty folder as the baseline: the NumPy baseline is not run (only Ploutos' rate is read).
none=$(mktemp -d)
for layout in index materialized; do
  for i in $(seq "$runs"); do
    for bin in "$a" "$b"; do
      rate=$("$bin" bench --envs "$envs" --layout "$layout" --seconds "$secs" --json --baseline "$none" \
        | python3 -c 'import json,sys; print(json.loads(sys.stdin.read().strip().splitlines()[-1])["env_steps_per_sec"])')
      echo "$layout $i $bin $rate" >> "$out"
    done
  done
done
python3 - "$out" "$a" "$b" <<'PY'
import sys, statistics
rows = [l.split() for l in open(sys.argv[1])]
a, b = sys.argv[2], sys.argv[3]
for layout in ("index", "materialized"):
    ra = [float(r[3]) for r in rows if r[0] == layout and r[2] == a]
    rb = [float(r[3]) for r in rows if r[0] == layout and r[2] == b]
    ratios = [y / x for x, y in zip(ra, rb)]
    print(f"{layout:13s} A median {statistics.median(ra)/1e6:6.2f} M  B median {statistics.median(rb)/1e6:6.2f} M  "
          f"B/A median {statistics.median(ratios):.3f} (pairs {min(ratios):.3f}..{max(ratios):.3f})")
    print("  A runs:", " ".join(f"{x/1e6:.2f}" for x in ra))
    print("  B runs:", " ".join(f"{x/1e6:.2f}" for x in rb))
PY
rm -f "$out"
