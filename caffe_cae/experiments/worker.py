"""A local worker process of ``caffe-cae reproduce --workers N``: one run, then exit.

    python -m caffe_cae.experiments.worker OUT/sweep.json RUN_NAME

Started by :mod:`caffe_cae.experiments.sweep` with the BLAS/OpenMP thread variables already in
its environment.  Exit status: 0 finished, 130 stopped by SIGINT after a snapshot, 1 a user error
(one ``error:`` line), anything else a crash (the sweep starts the run again).
"""
from __future__ import annotations

import json
import logging
import sys


def main(argv: list[str]) -> int:
    from caffe_cae.errors import CaffeCaeError
    from caffe_cae.experiments import reproduce
    from caffe_cae.experiments.progress import reporter
    from caffe_cae.experiments.run import RunInterrupted
    from caffe_cae.experiments.sweep import EXIT_INTERRUPTED, StopFlag
    from caffe_cae.parallel import limit_threads

    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(levelname)s %(name)s: %(message)s",
                        stream=sys.stderr)
    logging.getLogger("caffe_cae.experiments").setLevel(logging.INFO)
    sweep_file, name = argv
    try:
        with open(sweep_file) as stream:
            settings, files = reproduce.settings_from_json(json.load(stream))
        run = reproduce.find_run(settings, files, name)
        with StopFlag() as stop, limit_threads(settings.threads):
            run.execute(stop=stop, progress=reporter(run.dir, settings.iters))
    except RunInterrupted as interrupted:
        print(f"worker {name}: {interrupted}", file=sys.stderr)
        return EXIT_INTERRUPTED
    except CaffeCaeError as err:
        print(f"worker {name}: error: {' '.join(str(err).split())}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:   # a second SIGINT: no snapshot
        return EXIT_INTERRUPTED + 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
