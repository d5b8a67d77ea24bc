"""Loads the event file written by `examples/write_tensorboard.rs` with TensorBoard's own
reader (EventAccumulator, which also checks every TFRecord CRC) and asserts its tags, steps
and values; with RESUMED, that a resumed run's restart mark drops the crashed run's points
past its checkpoint. Usage: read_tensorboard.py DIR [RESUMED]. Exits 1 with one line per
mismatch."""

import glob
import math
import os
import sys
import time

from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

# tag -> [(step, value)]; mirrors examples/write_tensorboard.rs.
EXPECTED = {
    "train/policy_loss": [(s, 0.5 - 0.125 * s) for s in range(5)],
    "time/fps": [(2048, 1000.0), (4096, 2000.0), (1 << 40, 3000.0)],
    "eval/sharpe": [(2048, -1.5), (4096, -0.5), (1 << 40, 0.5)],
}


def main(directory, resumed=None):
    passed, failures = 0, []

    def check(ok, what):
        nonlocal passed
        if ok:
            passed += 1
        else:
            failures.append(what)

    files = glob.glob(os.path.join(directory, "events.out.tfevents.*"))
    check(len(files) == 1, f"expected 1 event file in {directory}, found {files}")

    acc = EventAccumulator(directory)
    acc.Reload()
    check(acc.file_version == 2.0, f"file_version: got {acc.file_version!r}, want 2.0")

    tags = sorted(acc.Tags().get("scalars", []))
    check(tags == sorted(EXPECTED), f"scalar tags: got {tags}, want {sorted(EXPECTED)}")

    now = time.time()
    for tag, want in EXPECTED.items():
        if tag not in tags:
            continue
        got = [(e.step, e.value) for e in acc.Scalars(tag)]
        check(len(got) == len(want), f"{tag}: got {len(got)} points, want {len(want)}")
        for (gs, gv), (ws, wv) in zip(got, want):
            check(gs == ws, f"{tag}: step {gs}, want {ws}")
            # simple_value is a float32; these values are exact in float32.
            check(math.isclose(gv, wv, rel_tol=0, abs_tol=1e-6), f"{tag}@{ws}: value {gv}, want {wv}")
        for e in acc.Scalars(tag):
            check(now - 3600 < e.wall_time <= now + 60, f"{tag}@{e.step}: wall_time {e.wall_time} not recent")

    if resumed is not None:
        acc = EventAccumulator(resumed)
        acc.Reload()
        got = [(e.step, e.value) for e in acc.Scalars("train/loss")]
        want = [(100, 1.0), (200, 2.0), (300, 30.0), (400, 40.0)]
        check(got == want, f"resumed train/loss: got {got}, want {want} (the crashed run's 300 dropped)")

    for f in failures:
        print(f"tensorboard check FAILED: {f}", file=sys.stderr)
    print(f"tensorboard check: {passed} passed, {len(failures)} failed")
    return 1 if failures else 0


if __name__ == "__main__":
    if len(sys.argv) not in (2, 3):
        print("usage: read_tensorboard.py DIR [RESUMED]", file=sys.stderr)
        sys.exit(2)
    sys.exit(main(*sys.argv[1:]))
