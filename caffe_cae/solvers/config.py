"""Reading and checking a SolverParameter the way ``caffe train`` does, and resolving its nets.

``read_solver`` = Caffe's ``ReadSolverParamsFromTextFileOrDie``: parse, upgrade a legacy
``solver_type``, and fix ``snapshot_prefix``; ``load_solver`` is the one way in (a path is read,
a SolverParameter's copy upgraded), so a solver is upgraded once however it is built.
``train_net_param`` / ``test_net_params`` follow ``Solver::InitTrainNet`` / ``InitTestNets``:
which field names the net(s), and the NetState merge (solver default phase, then the net's own
state, then ``train_state`` / ``test_state``).
"""
from __future__ import annotations

import logging
import os

from caffe_cae import prototxt
from caffe_cae.errors import CaffeCaeError
from caffe_cae.proto import caffe_pb2
from caffe_cae.solvers.lr_policy import check_policy
from caffe_cae.solvers.registry import solver_class

log = logging.getLogger(__name__)

REGULARIZATION_TYPES = ("L2", "L1")


def load_solver(solver) -> caffe_pb2.SolverParameter:
    """The SolverParameter of a solver prototxt path (:func:`read_solver`) or of a
    SolverParameter (an upgraded copy; the caller's message is left as it is)."""
    if not isinstance(solver, caffe_pb2.SolverParameter):
        return read_solver(solver)
    param = caffe_pb2.SolverParameter()
    param.CopyFrom(solver)
    return upgrade_solver(param, None)


def read_solver(path: str | os.PathLike) -> caffe_pb2.SolverParameter:
    """Parse a solver prototxt, upgrade it if legacy, and apply Caffe's snapshot_prefix rule."""
    path = str(path)
    if os.path.isdir(path):
        raise CaffeCaeError(f"{path}: is a directory, expected a solver prototxt")
    if not os.path.isfile(path):
        raise CaffeCaeError(f"{path}: no such solver file")
    try:
        param = prototxt.read_solver_text(path)
    except CaffeCaeError:
        if _is_net_file(path):
            raise CaffeCaeError(
                f"{path}: this is a net definition, not a solver; write a solver that names it "
                f"(e.g. caffe-cae gen MODEL --solver --net {path} -o solver.prototxt)"
            ) from None
        raise
    param = upgrade_solver(param, path)
    fix_snapshot_prefix(param, path)
    return param


def _is_net_file(path: str) -> bool:
    try:
        prototxt.read_net_text(path)
    except CaffeCaeError:
        return False
    return True


def upgrade_solver(param: caffe_pb2.SolverParameter, source: str | None) -> caffe_pb2.SolverParameter:
    """Map a deprecated ``solver_type`` enum to ``type`` (the migrator's UpgradeSolverAsNeeded)."""
    if not param.HasField("solver_type"):
        return param
    from caffe_cae.migrate import upgrade_solver as migrate_solver

    return migrate_solver(param, source=source)[0]


def fix_snapshot_prefix(param: caffe_pb2.SolverParameter, solver_path: str) -> None:
    """Caffe's UpgradeSnapshotPrefixProperty: no prefix -> solver path without extension;
    a prefix naming an existing directory -> ``<dir>/<solver file stem>``."""
    # boost::filesystem works on the path as written (no normalising of "./" or "//"): the
    # prefix ends up in every solverstate's learned_net, so it is spelled exactly as Caffe's.
    stem_path = _boost_split_extension(solver_path)[0]
    if not param.HasField("snapshot_prefix"):
        param.snapshot_prefix = stem_path
        log.info("snapshot_prefix was not specified and is set to %s", param.snapshot_prefix)
    elif os.path.isdir(param.snapshot_prefix):
        stem = stem_path.rpartition("/")[2]  # boost's path(solver).stem()
        prefix = param.snapshot_prefix
        param.snapshot_prefix = prefix + stem if prefix.endswith("/") else f"{prefix}/{stem}"
        log.info("snapshot_prefix is a directory and is set to %s", param.snapshot_prefix)


def _boost_split_extension(path: str) -> tuple[str, str]:
    """``(path without extension, extension)`` as boost::filesystem v3's ``replace_extension()``
    / ``extension()``: from the last dot of the file name, unless the name is "." or ".."."""
    head, sep, name = path.rpartition("/")
    if name in ("", ".", "..") or "." not in name:
        return path, ""
    dot = name.rfind(".")
    return head + sep + name[:dot], name[dot:]


def check_snapshot_writable(param: caffe_pb2.SolverParameter, where: str = "solver") -> None:
    """Caffe's ``CheckSnapshotWritePermissions``: with ``snapshot`` set, create and remove
    ``<prefix>_iter_0.tempfile`` so a missing folder is reported before training, not after."""
    if not param.snapshot:
        return
    probe = f"{param.snapshot_prefix}_iter_0.tempfile"
    try:
        with open(probe, "w"):
            pass
        os.remove(probe)
    except OSError:
        raise CaffeCaeError(
            f"{where}: Cannot write to snapshot prefix '{param.snapshot_prefix}'.  Make sure that "
            f"the directory exists and is writeable."
        ) from None


def check_solver(param: caffe_pb2.SolverParameter, where: str = "solver") -> None:
    """Refuse settings Caffe would CHECK-fail on, before any net is built."""
    solver_type = solver_class(param.type, where)
    check_policy(param, where)
    # Caffe only looks at regularization_type when some local_decay is non-zero.
    if param.weight_decay != 0 and param.regularization_type not in REGULARIZATION_TYPES:
        raise CaffeCaeError(
            f"{where}: unknown regularization_type '{param.regularization_type}'; known: L2, L1"
        )
    solver_type.check_param(param, where)
    if param.iter_size < 1:
        raise CaffeCaeError(f"{where}: iter_size must be >= 1 (got {param.iter_size})")
    if param.average_loss < 1:
        raise CaffeCaeError(f"{where}: average_loss must be >= 1 (got {param.average_loss})")
    if param.snapshot < 0 or param.display < 0 or param.test_interval < 0:
        raise CaffeCaeError(f"{where}: snapshot, display and test_interval must be >= 0")
    if param.snapshot and not param.snapshot_prefix:
        raise CaffeCaeError(f"{where}: snapshot is specified but snapshot_prefix is not")


def resolve_path(name: str, base_dir: str | None) -> str:
    """A file named in the solver: as Caffe, relative to the CWD; failing that, relative to the
    solver file's folder (so a solver also runs from elsewhere)."""
    if os.path.isabs(name) or os.path.exists(name) or not base_dir:
        return name
    beside = os.path.join(base_dir, name)
    return beside if os.path.exists(beside) else name


def _read_net(name: str, what: str, base_dir: str | None, where: str) -> caffe_pb2.NetParameter:
    path = resolve_path(name, base_dir)
    if not os.path.isfile(path):
        raise CaffeCaeError(f"{where}: {what} '{name}': no such net file")
    return prototxt.read_net_text(path)


def _with_state(net: caffe_pb2.NetParameter, phase: int, override: caffe_pb2.NetState | None):
    state = caffe_pb2.NetState(phase=phase)
    state.MergeFrom(net.state)
    if override is not None:
        state.MergeFrom(override)
    net.state.CopyFrom(state)
    return net


def train_net_param(param: caffe_pb2.SolverParameter, base_dir: str | None = None,
                    where: str = "solver"):
    """``(NetParameter, description)`` of the train net, its state set to TRAIN + train_state."""
    fields = [f for f in ("net", "net_param", "train_net", "train_net_param") if param.HasField(f)]
    names = "net, net_param, train_net, train_net_param"
    if not fields:
        raise CaffeCaeError(f"{where}: no train net: give one of {names}")
    if len(fields) > 1:
        raise CaffeCaeError(f"{where}: more than one train net given ({', '.join(fields)}); give one of {names}")
    field = fields[0]
    if field in ("net_param", "train_net_param"):
        net = caffe_pb2.NetParameter()
        net.CopyFrom(getattr(param, field))
        source = f"{field}"
    else:
        net = _read_net(getattr(param, field), field, base_dir, where)
        source = f"{field} file: {getattr(param, field)}"
    train_state = param.train_state if param.HasField("train_state") else None
    return _with_state(net, caffe_pb2.TRAIN, train_state), source


def test_net_params(param: caffe_pb2.SolverParameter, base_dir: str | None = None,
                    where: str = "solver"):
    """``[(NetParameter, description)]`` of the test nets in Caffe's order: test_net_param,
    test_net, then one copy of net_param / net per remaining ``test_iter``."""
    generic = [f for f in ("net", "net_param") if param.HasField(f)]
    if len(generic) > 1:
        raise CaffeCaeError(f"{where}: both net_param and net given; give one")
    n_explicit = len(param.test_net_param) + len(param.test_net)
    n_iter = len(param.test_iter)
    if (generic and n_iter < n_explicit) or (not generic and n_iter != n_explicit):
        raise CaffeCaeError(
            f"{where}: test_iter must be specified for each test net ({n_explicit} test nets, "
            f"{n_iter} test_iter)"
        )
    nets = []
    for net in param.test_net_param:
        copy = caffe_pb2.NetParameter()
        copy.CopyFrom(net)
        nets.append((copy, "test_net_param"))
    for name in param.test_net:
        nets.append((_read_net(name, "test_net", base_dir, where), f"test_net file: {name}"))
    for _ in range(n_iter - n_explicit):
        if param.HasField("net_param"):
            copy = caffe_pb2.NetParameter()
            copy.CopyFrom(param.net_param)
            nets.append((copy, "net_param"))
        else:
            nets.append((_read_net(param.net, "net", base_dir, where), f"net file: {param.net}"))
    if param.test_state and len(param.test_state) != len(nets):
        raise CaffeCaeError(
            f"{where}: test_state must be unspecified or given once per test net "
            f"({len(nets)} test nets, {len(param.test_state)} test_state)"
        )
    if nets and param.test_interval <= 0:
        raise CaffeCaeError(f"{where}: test nets given but test_interval is not > 0")
    out = []
    for i, (net, source) in enumerate(nets):
        override = param.test_state[i] if param.test_state else None
        out.append((_with_state(net, caffe_pb2.TEST, override), source))
    return out
