"""How much a finished run's numbers depend on where in the (unshuffled) epoch it stopped.

    python tools/epoch_position.py model1 [--dims 10] [--out docs/reproduction] [--extra 600] [--every 100]

Continues the run's final snapshot (in a temporary copy: the run folder is not touched) for
``--extra`` more iterations and prints, every ``--every`` iterations, the position in the epoch,
the test losses over the whole test set and the paper protocol's linear (LDA, 10-fold) error of
the test codes.  With the authors' unshuffled data the test loss jumps at every epoch end (600
iterations); this shows whether the codes' separability moves with it.
"""
from __future__ import annotations

import argparse
import json
import os
import pathlib
import shutil
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import h5py  # noqa: E402
import numpy as np  # noqa: E402

from caffe_cae.experiments import encode as encode_mod  # noqa: E402
from caffe_cae.experiments import protocol, reproduce  # noqa: E402
from caffe_cae.experiments.run import Run, advance_data, run_name  # noqa: E402
from caffe_cae.solver import get_solver  # noqa: E402


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("model")
    parser.add_argument("--dims", type=int, default=10)
    parser.add_argument("--out", default="docs/reproduction", help="the reproduce output folder")
    parser.add_argument("--extra", type=int, default=600, help="iterations to continue (default one epoch)")
    parser.add_argument("--every", type=int, default=100, help="iterations between measurements")
    args = parser.parse_args()
    source = pathlib.Path(args.out)
    settings, files = reproduce.settings_from_json(json.loads((source / "sweep.json").read_text()))
    name = run_name(args.model, args.dims, 1)
    with tempfile.TemporaryDirectory() as tmp:
        settings.out = pathlib.Path(tmp)
        shutil.copytree(source / "runs" / name, settings.out / "runs" / name)
        run = Run(settings, files, args.model, args.dims, 1)
        param = run.generate()
        start = run.snapshots()[-1]
        solver = get_solver(param)
        solver.restore(str(run.dir / f"snap_iter_{start}.solverstate"))
        advance_data(solver.net, start * param.iter_size)
        epoch = settings.spec.counts["train"] // solver.net.blobs["data"].data.shape[0]   # batches per pass
        with h5py.File(files.test_h5, "r") as h5:
            labels = np.asarray(h5["label"]).astype(np.int64)
            shapes = encode_mod.data_shapes(h5)
        print(f"{name}: continuing from iteration {start}; an epoch is {epoch} iterations")
        for extra in range(0, args.extra + 1, args.every):
            if extra:
                solver.step(args.every)
            weights = settings.out / f"w_{solver.iter}.caffemodel"
            solver.net.save(str(weights))
            test = solver.test(len(solver.test_nets) - 1)
            with h5py.File(files.test_h5, "r") as h5:
                encoder = encode_mod.Encoder(str(run.net_path), str(weights), shapes, batch_size=100)
                codes = encode_mod.encode_open(encoder, h5, [run.spec.code_blob], progress=False)[0]
            c = codes[run.spec.code_blob].reshape(len(labels), -1)
            lda = protocol.cross_validate(
                c, labels, lambda fold: protocol.make_model("paper", "linear", c.shape[1], len(c), fold, 1, "scg", 1),
                10, 0)
            losses = ", ".join(f"{k} {float(np.sum(v)):.2f}" for k, v in test.items() if k != "loss")
            print(f"iteration {solver.iter} (epoch position {solver.iter % epoch}): test {losses}; "
                  f"LDA error {lda['error']:.2f} %", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
