"""Ray driver of `ploutos sweep --backend ray` (written out and run by the ploutos binary).

It connects to a Ray cluster and runs each trial as a Ray task that starts the `ploutos`
binary on whichever node Ray places it (`ploutos train --config ... --out ...`), with the
trial's CPUs and GPUs as the task's resources. The sweep itself (queue, ASHA, leaderboard)
stays in the binary; this script only relays, as JSON lines:

  stdin  (from ploutos): {"op": "start", "id", "config", "dir", "cpus", "gpus"}
                         {"op": "stop", "id"}     (ASHA: SIGINT, the trial saves and ends)
                         {"op": "stop_all"}       end of stdin: cancel what is left
  stdout (to ploutos):   {"event": "ready", "cpus"}
                         {"event": "metrics", "id", "text"}   new bytes of metrics.csv
                         {"event": "exited", "id", "code", "error"}
                         {"event": "fatal", "message"}

A trial runs in a temporary folder on its node; its `metrics.csv` is streamed through a
small actor as it grows, and when it ends its whole folder comes back as a tar archive
that this driver unpacks into the trial's folder on the machine running `ploutos sweep`.
"""

import argparse
import io
import json
import os
import queue
import shutil
import signal
import subprocess
import sys
import tarfile
import tempfile
import threading
import time

OUT = sys.stdout
OUT_LOCK = threading.Lock()


def die_with_parent():
    """A `preexec_fn` for a trial's process (Linux; None elsewhere): it is killed when the
    Ray worker that started it ends, as Ray ends a dead driver's workers, so a sweep killed
    outright leaves no trial training on the nodes. `prctl` is looked up here, in the
    worker; the child (forked from a threaded process) only calls it, and exits at once if
    the worker died before the signal was set."""
    if not sys.platform.startswith("linux"):
        return None
    try:
        import ctypes

        prctl = ctypes.CDLL(None, use_errno=True).prctl
    except (OSError, AttributeError):
        return None
    parent = os.getpid()

    def in_child():
        prctl(1, 9)  # PR_SET_PDEATHSIG, SIGKILL
        if os.getppid() != parent:
            os._exit(1)

    return in_child


def emit(obj):
    with OUT_LOCK:
        OUT.write(json.dumps(obj) + "\n")
        OUT.flush()


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--address", required=True)
    p.add_argument("--binary", required=True)
    args = p.parse_args()
    try:
        import ray
    except ImportError as e:
        emit({"event": "fatal", "message": f"cannot import ray ({e}); install it (make setup puts ray into .venv) or pass --python"})
        return 2
    if args.address != "auto":
        # Ray itself retries an unreachable address for minutes: a refused port is said at once.
        import socket

        host, _, port = args.address.removeprefix("ray://").rpartition(":")
        try:
            socket.create_connection((host or "127.0.0.1", int(port)), timeout=10).close()
        except (OSError, ValueError) as e:
            emit({"event": "fatal", "message": f"cannot connect to the Ray cluster at {args.address}: {e}"})
            return 2
    try:
        ray.init(address=args.address, logging_level="ERROR", log_to_driver=False, configure_logging=False)
    except Exception as e:  # noqa: BLE001 - whatever Ray raises, one line for the user
        emit({"event": "fatal", "message": f"cannot connect to the Ray cluster at {args.address}: {str(e).splitlines()[0] if str(e) else type(e).__name__}"})
        return 2

    @ray.remote(num_cpus=0)
    class Board:
        """Metrics text pushed by running trials, and the trials asked to stop."""

        def __init__(self):
            self.chunks = {}
            self.stops = set()

        def push(self, trial, text):
            self.chunks.setdefault(trial, []).append(text)

        def pull(self):
            out, self.chunks = self.chunks, {}
            return {k: "".join(v) for k, v in out.items()}

        def stop(self, trial):
            self.stops.add(trial)

        def should_stop(self, trial):
            return trial in self.stops

    @ray.remote(max_retries=0)
    def run_trial(trial, binary, config, cwd, board):
        if ray.get(board.should_stop.remote(trial)):
            return {"code": None, "archive": None}  # the sweep stopped before it started
        work = tempfile.mkdtemp(prefix=f"ploutos-{trial}-")
        try:
            cfg = os.path.join(work, "config.ron")
            with open(cfg, "w") as f:
                f.write(config)
            metrics = os.path.join(work, "runs", "metrics.csv")
            with open(os.path.join(work, "stdout.log"), "wb") as out, open(os.path.join(work, "stderr.log"), "wb") as err:
                proc = subprocess.Popen(
                    [binary, "train", "--config", cfg, "--out", work, "--force"],
                    stdin=subprocess.DEVNULL, stdout=out, stderr=err, start_new_session=True,
                    preexec_fn=die_with_parent(),
                    # The sweep's working folder when the node has it: relative data paths of
                    # the config then resolve as they do for a local sweep.
                    cwd=cwd if os.path.isdir(cwd) else None,
                )
                read, signalled = 0, False
                while True:
                    code = proc.poll()
                    try:
                        with open(metrics, "rb") as f:
                            f.seek(read)
                            data = f.read()
                    except FileNotFoundError:
                        data = b""
                    if data:
                        read += len(data)
                        # Waited on, so that the driver has every row before the exit.
                        ray.get(board.push.remote(trial, data.decode("utf-8", "replace")))
                    if code is not None:
                        break
                    if not signalled and ray.get(board.should_stop.remote(trial)):
                        proc.send_signal(signal.SIGINT)
                        signalled = True
                    time.sleep(0.5)
            buf = io.BytesIO()
            with tarfile.open(fileobj=buf, mode="w:gz") as tar:
                for name in sorted(os.listdir(work)):
                    if name != "config.ron":
                        tar.add(os.path.join(work, name), arcname=name)
            return {"code": code, "archive": buf.getvalue()}
        finally:
            shutil.rmtree(work, ignore_errors=True)

    board = Board.remote()
    emit({"event": "ready", "cpus": ray.cluster_resources().get("CPU", 0)})

    commands = queue.Queue()

    def read_stdin():
        for line in sys.stdin:
            line = line.strip()
            if line:
                commands.put(json.loads(line))
        commands.put(None)

    threading.Thread(target=read_stdin, daemon=True).start()
    pending = {}  # ObjectRef -> (trial id, folder)
    closing = False

    def relay_metrics():
        for trial, text in ray.get(board.pull.remote()).items():
            emit({"event": "metrics", "id": trial, "text": text})

    while True:
        while True:
            try:
                cmd = commands.get_nowait()
            except queue.Empty:
                break
            if cmd is None:
                closing = True
                break
            if cmd["op"] == "start":
                ref = run_trial.options(num_cpus=cmd["cpus"], num_gpus=cmd["gpus"]).remote(
                    cmd["id"], args.binary, cmd["config"], os.getcwd(), board
                )
                pending[ref] = (cmd["id"], cmd["dir"])
            elif cmd["op"] == "stop":
                board.stop.remote(cmd["id"])
            elif cmd["op"] == "stop_all":
                for trial, _ in pending.values():
                    board.stop.remote(trial)
        if closing:
            for ref in pending:
                ray.cancel(ref, force=True)
            return 0
        relay_metrics()
        if not pending:
            time.sleep(0.2)
            continue
        ready, _ = ray.wait(list(pending), num_returns=len(pending), timeout=0.5)
        if ready:
            relay_metrics()
        for ref in ready:
            trial, folder = pending.pop(ref)
            try:
                res = ray.get(ref)
                if res["archive"] is None:
                    emit({"event": "exited", "id": trial, "code": -2, "error": None})
                    continue
                with tarfile.open(fileobj=io.BytesIO(res["archive"]), mode="r:gz") as tar:
                    try:
                        tar.extractall(folder, filter="data")
                    except TypeError:  # Python without extraction filters (< 3.11.4)
                        tar.extractall(folder)
                emit({"event": "exited", "id": trial, "code": res["code"], "error": None})
            except Exception as e:  # noqa: BLE001 - a task that Ray could not run is a failed trial
                msg = str(e).strip().splitlines()
                emit({"event": "exited", "id": trial, "code": -1, "error": f"Ray: {msg[-1] if msg else type(e).__name__}"})


if __name__ == "__main__":
    sys.exit(main())
