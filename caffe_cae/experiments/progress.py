"""One progress display for a sweep of runs, wherever they compute.

Every run writes ``progress.json`` into its folder (state, iteration, iterations/s, host, pid);
the display reads them all, so it works the same for runs in this process, in local worker
processes and on Dask workers that share the output folder.  On a terminal it is one tqdm bar
over the iterations of all runs (rate and ETA aggregated); otherwise it logs a plain line every
``every`` seconds and when a run ends (no bar frames in log files).
"""
from __future__ import annotations

import logging
import os
import socket
import sys
import threading
import time

from caffe_cae.experiments.run import read_json, write_json

log = logging.getLogger("caffe_cae.experiments.reproduce")

ENDED = ("done", "skipped", "failed", "interrupted")
#: a run whose progress file is older than this is not counted in the rate (its worker is gone)
STALE_S = 60.0


def reporter(run_dir, total: int):
    """``progress(state, iteration, rate)`` for one run: writes ``run_dir/progress.json``."""

    def progress(state: str, iteration: int, rate: float) -> None:
        write_json(run_dir / "progress.json", {
            "state": state, "iter": int(iteration), "iters": int(total), "rate": round(float(rate), 3),
            "host": socket.gethostname(), "pid": os.getpid(), "time": time.time(),
        }, indent=None)

    return progress


def _duration(seconds: float) -> str:
    seconds = int(seconds)
    h, rest = divmod(seconds, 3600)
    return f"{h}h{rest // 60:02d}m" if h else f"{rest // 60}m{rest % 60:02d}s"


class SweepProgress:
    """Aggregates the progress files of ``runs`` (name -> folder), each of ``iters`` iterations."""

    def __init__(self, runs: dict, iters: int, enabled: bool = True, every: float = 60.0, stream=None):
        self.runs, self.iters = runs, iters
        self.stream = stream or sys.stderr
        self.enabled = enabled
        self.tty = enabled and hasattr(self.stream, "isatty") and self.stream.isatty()
        self.every = every
        self.ended: dict[str, str] = {}
        self._bar = None
        self._last_line = 0.0
        self._shown = 0
        self._lock = threading.Lock()
        self._thread = None
        self._halt = threading.Event()

    def mark(self, name: str, state: str) -> None:
        """Record that a run ended (done / skipped / failed / interrupted)."""
        with self._lock:
            self.ended[name] = state
        self.poll(force_line=True)

    def snapshot(self) -> dict:
        """``{"done", "running", "stages", "iterations", "rate", "eta"}`` over all runs now."""
        now = time.time()
        done = iterations = running = 0
        rate = 0.0
        stages: dict[str, int] = {}
        for name, folder in self.runs.items():
            info = read_json(folder / "progress.json") or {}
            state = self.ended.get(name) or info.get("state")
            it = min(int(info.get("iter", 0)), self.iters)
            if state in ("done", "skipped"):
                done += 1
                it = self.iters
            elif state in ("training", "testing") and now - info.get("time", 0) < STALE_S:
                running += 1
                rate += float(info.get("rate", 0.0))
                stages["training"] = stages.get("training", 0) + 1
            elif state in ("encoding", "evaluating", "drawing"):
                running += 1
                stages[state] = stages.get(state, 0) + 1
            iterations += it
        left = len(self.runs) * self.iters - iterations
        eta = left / rate if rate > 0 else None
        return {"done": done, "running": running, "stages": stages, "iterations": iterations, "rate": rate,
                "eta": eta}

    def poll(self, force_line: bool = False) -> None:
        if not self.enabled:
            return
        with self._lock:
            now = self.snapshot()
            text = f"runs {now['done']}/{len(self.runs)} done, {now['running']} running"
            if now["stages"]:
                text += " (" + ", ".join(f"{n} {stage}" for stage, n in sorted(now["stages"].items())) + ")"
            if self.tty:
                if self._bar is None:
                    from tqdm import tqdm

                    self._bar = tqdm(total=len(self.runs) * self.iters, initial=now["iterations"], unit="it",
                                     desc="reproduce", dynamic_ncols=True, file=self.stream)
                    self._shown = now["iterations"]
                self._bar.update(max(0, now["iterations"] - self._shown))
                self._shown = max(self._shown, now["iterations"])
                self._bar.set_postfix_str(text)
                return
            if force_line or time.monotonic() - self._last_line >= self.every:
                self._last_line = time.monotonic()
                eta = "-" if now["eta"] is None else _duration(now["eta"])
                log.info("reproduce: %s, %d/%d iterations, %.1f it/s, ETA %s (training)", text,
                         now["iterations"], len(self.runs) * self.iters, now["rate"], eta)

    # -- in the background ----------------------------------------------------------------
    def __enter__(self):
        self.poll(force_line=True)
        self._thread = threading.Thread(target=self._loop, name="caffe-cae-progress", daemon=True)
        self._thread.start()
        return self

    def _loop(self) -> None:
        while not self._halt.wait(1.0):
            try:
                self.poll()
            except Exception:  # noqa: BLE001 - the display must never stop a sweep
                log.debug("progress display failed", exc_info=True)

    def __exit__(self, *exc):
        self._halt.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
        self.poll(force_line=True)
        if self._bar is not None:
            self._bar.close()
        return False
