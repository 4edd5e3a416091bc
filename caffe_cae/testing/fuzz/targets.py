"""Entry points a fuzz case drives: library readers in-process and every command through
``caffe_cae.cli.main``.  Each runs in the case's folder (the seed files, one of them mutated)."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

#: the snapshot files of the seed corpus
MODEL, STATE = "snap_iter_2.caffemodel", "snap_iter_2.solverstate"


@dataclass(frozen=True)
class Target:
    name: str
    #: in-process callable, or None for a CLI target
    call: Callable[[], object] | None = None
    #: the command line of a CLI target (without the program name)
    argv: tuple[str, ...] = ()
    #: the target sets the net up (or reads the data) as Caffe would: what Caffe refuses, it
    #: must refuse (``show`` and ``migrate`` of a text file only print it)
    semantic: bool = True
    #: datasets of the data file the target never reads (what Caffe refuses there goes unseen)
    ignores: tuple[str, ...] = ()


def _net_train():
    from caffe_cae import TRAIN, Net

    net = Net("train.prototxt", TRAIN, seed=1)
    net.forward_backward()


def _net_deploy(path="deploy.prototxt"):
    from caffe_cae import TEST, Net

    net = Net(path, TEST, seed=1)
    net.forward()


def _shapes(path):
    from caffe_cae import params

    params.count_params(path)


def _net_lmdb():
    from caffe_cae import TRAIN, Net

    net = Net("lmdb.prototxt", TRAIN, seed=1)
    for _ in range(4):  # past the end of the 12 records: the cursor wraps
        net.forward_backward()


def _copy_from(weights, net="deploy.prototxt"):
    from caffe_cae import TEST, Net

    Net(net, TEST, seed=1).copy_from(weights)


def _read_weights(path):
    from caffe_cae import weights

    weights.read_weights(path)


def _solver_step():
    from caffe_cae.solvers import get_solver

    get_solver("solver.prototxt").step(2)


def _restore(path):
    from caffe_cae.solvers import get_solver

    solver = get_solver("solver.prototxt")
    solver.restore(path)
    solver.step(1)


def _evaluate():
    from caffe_cae.experiments import evaluate

    codes, labels, switches = evaluate.read_codes("codes.h5")
    evaluate.evaluate_codes(codes, labels, switches, folds=2, classifiers=("linear",), source="codes.h5")


def _encode():
    from caffe_cae.experiments import encode

    encode.encode_h5("train.prototxt", MODEL, "data.h5", ["ip2encode"], batch_size=4)


def _cli(*argv: str) -> Target:
    text_only = argv[0] in ("show", "migrate") and any(a.endswith(".prototxt") for a in argv)
    return Target("cli " + " ".join(argv), argv=tuple(argv), semantic=not text_only)


def _lib(name: str, call, ignores=()) -> Target:
    return Target(name, call=call, ignores=ignores)


#: the targets that read each seed file (the file a case mutates)
TARGETS: dict[str, list[Target]] = {
    "train.prototxt": [
        _lib("Net(train) forward_backward", _net_train),
        _lib("count_params(train)", lambda: _shapes("train.prototxt")),
        _cli("params", "train.prototxt"),
        _cli("time", "train.prototxt", "--iterations", "1"),
        _cli("test", "--model", "train.prototxt", "--weights", MODEL, "--iterations", "1"),
        _cli("export", "train.prototxt", MODEL, "-o", "out.onnx"),
        _cli("encode", "train.prototxt", MODEL, "data.h5", "--out", "out.h5", "--batch", "4"),
        _cli("train", "solver.prototxt", "--iterations", "2"),
    ],
    "deploy.prototxt": [
        _lib("Net(deploy) forward", _net_deploy),
        _lib("count_params(deploy)", lambda: _shapes("deploy.prototxt")),
        _cli("params", "deploy.prototxt"),
        _cli("export", "deploy.prototxt", "-o", "out.onnx"),
        _cli("show", "deploy.prototxt"),
        _cli("migrate", "deploy.prototxt", "-o", "out.prototxt"),
    ],
    "legacy.prototxt": [
        _lib("Net(legacy) forward", lambda: _net_deploy("legacy.prototxt")),
        _cli("migrate", "legacy.prototxt", "-o", "out.prototxt"),
        _cli("params", "legacy.prototxt"),
    ],
    "solver.prototxt": [
        _lib("get_solver step(2)", _solver_step),
        _cli("train", "-solver", "solver.prototxt", "-iterations", "2"),
        _cli("show", "solver.prototxt"),
        _cli("migrate", "--solver", "solver.prototxt", "-o", "out.prototxt"),
    ],
    "train.txt": [
        _lib("Net(train) forward_backward", _net_train),
        _cli("params", "train.prototxt"),
    ],
    "data.h5": [
        _lib("Net(train) forward_backward", _net_train, ignores=("label",)),  # the net's data layer has one top
        _lib("encode_h5", _encode),
        _cli("infer", "model.onnx", "--input", "data.h5", "-o", "out.h5", "--device", "cpu"),
        Target("cli train solver.prototxt --iterations 2", argv=("train", "solver.prototxt", "--iterations", "2"),
               ignores=("label",)),
    ],
    MODEL: [
        _lib("copy_from(caffemodel)", lambda: _copy_from(MODEL)),
        _lib("read_weights(caffemodel)", lambda: _read_weights(MODEL)),
        _cli("show", MODEL),
        _cli("migrate", MODEL, "-o", "out.caffemodel"),
        _cli("export", "deploy.prototxt", MODEL, "-o", "out.onnx"),
        _cli("test", "-model", "train.prototxt", "-weights", MODEL, "-iterations", "1"),
        _cli("train", "solver.prototxt", "--weights", MODEL, "--iterations", "1"),
    ],
    STATE: [
        _lib("restore(solverstate)", lambda: _restore(STATE)),
        _cli("show", STATE),
        _cli("train", "solver.prototxt", "--snapshot", STATE, "--iterations", "3"),
    ],
    MODEL + ".h5": [
        _lib("copy_from(caffemodel.h5)", lambda: _copy_from(MODEL + ".h5")),
        _lib("read_weights(caffemodel.h5)", lambda: _read_weights(MODEL + ".h5")),
        _cli("show", MODEL + ".h5"),
        _cli("export", "deploy.prototxt", MODEL + ".h5", "-o", "out.onnx"),
    ],
    "deploy.caffemodel.h5": [
        _lib("copy_from(deploy.caffemodel.h5)", lambda: _copy_from("deploy.caffemodel.h5")),
        _cli("test", "deploy.prototxt", "--weights", "deploy.caffemodel.h5", "--iterations", "1"),
    ],
    STATE + ".h5": [
        _lib("restore(solverstate.h5)", lambda: _restore(STATE + ".h5")),
        _cli("show", STATE + ".h5"),
        _cli("train", "solver.prototxt", "--snapshot", STATE + ".h5", "--iterations", "3"),
    ],
    "model.onnx": [
        _cli("infer", "model.onnx", "--input", "data.h5", "-o", "out.h5", "--device", "cpu"),
    ],
    "lmdb.prototxt": [
        _lib("Net(lmdb) forward_backward", _net_lmdb),
        _cli("params", "lmdb.prototxt"),
    ],
    "lmdb/data.mdb": [
        _lib("Net(lmdb) forward_backward", _net_lmdb),
        _cli("params", "lmdb.prototxt"),
        _cli("compute_image_mean", "lmdb", "out.binaryproto"),
    ],
    "mean.binaryproto": [
        _lib("Net(lmdb) forward_backward", _net_lmdb),
    ],
    "codes.h5": [
        _lib("read_codes + evaluate_codes", _evaluate),
        _cli("evaluate", "codes.h5", "--folds", "2", "--classifiers", "linear"),
    ],
}
