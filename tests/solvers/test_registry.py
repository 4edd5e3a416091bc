"""The solver registry is the one table of solver types: every Caffe type has a class there that
carries its update rule, history count and checks, and everything else (get_solver, the config
checks, the unknown-type error) asks it.  A SolverParameter is upgraded once on the way in."""
from __future__ import annotations

import logging
import shutil

import pytest

import caffe_cae
from caffe_cae import get_solver, prototxt, weights
from caffe_cae.errors import CaffeCaeError
from caffe_cae.proto import caffe_pb2
from caffe_cae.solvers import SOLVER_CLASSES, Solver, config, updates
from tests.helpers.paths import GOLDEN
from tests.solvers.golden_cases import ALL_CASES, load

CASE = "sgd_fixed_momentum"


def test_every_caffe_solver_type_is_registered_in_caffe_order():
    # The deprecated solver_type enum names every type Caffe has, upper-cased, in this order.
    assert [t.upper() for t in SOLVER_CLASSES] == list(caffe_pb2.SolverParameter.SolverType.keys())


@pytest.mark.parametrize("name", list(SOLVER_CLASSES))
def test_each_type_is_one_class_with_rule_history_and_checks(name):
    cls = SOLVER_CLASSES[name]
    assert issubclass(cls, Solver) and cls.TYPE == name
    assert getattr(caffe_cae, f"{name}Solver") is cls  # the pycaffe name
    assert "compute_update_value" in vars(cls)
    assert cls.HISTORY_SETS in (1, 2)
    assert callable(cls.check_param)


@pytest.mark.parametrize("case", ALL_CASES)
def test_history_count_matches_caffes_snapshot(case):
    folder, _, info, _ = load(case)
    solver_type = prototxt.read_solver_text(str(folder / "solver.prototxt")).type
    state = weights.read_solverstate(str(folder / f"snapshot_iter_{info['iters']}.solverstate"))
    n_params = sum(len(layer["param_shapes"]) for layer in info["layers"])
    assert len(state.history) == SOLVER_CLASSES[solver_type].HISTORY_SETS * n_params


def test_golden_cases_cover_every_registered_type():
    types = {prototxt.read_solver_text(str(load(c)[0] / "solver.prototxt")).type for c in ALL_CASES}
    assert types == set(SOLVER_CLASSES)


@pytest.mark.parametrize("text, message", [
    ('type: "AdaGrad" momentum: 0.9', "s: momentum cannot be used with AdaGrad"),
    ('type: "RMSProp" momentum: 0.9', "s: momentum cannot be used with RMSProp"),
    ('type: "RMSProp" rms_decay: 1', "s: rms_decay should lie between 0 and 1 (got 1)"),
    ('type: "RMSProp" rms_decay: -0.5', "s: rms_decay should lie between 0 and 1 (got -0.5)"),
])
def test_the_type_class_refuses_what_caffes_constructor_checks(text, message):
    param = prototxt.parse_text(text, caffe_pb2.SolverParameter, "s")
    with pytest.raises(CaffeCaeError) as err:
        SOLVER_CLASSES[param.type].check_param(param, "s")
    assert str(err.value) == message


@pytest.mark.parametrize("name", ["SGD", "Nesterov", "AdaDelta", "Adam"])
def test_types_without_constructor_checks_accept_momentum(name):
    param = caffe_pb2.SolverParameter(type=name, momentum=0.9)
    SOLVER_CLASSES[name].check_param(param, "s")


@pytest.fixture
def case_dir(tmp_path, monkeypatch):
    target = tmp_path / CASE
    shutil.copytree(GOLDEN / CASE, target)
    monkeypatch.chdir(target)
    return target


def _param(**fields):
    param = prototxt.read_solver_text("solver.prototxt")
    for name, value in fields.items():
        setattr(param, name, value)
    return param


def test_unknown_type_lists_exactly_the_registry(case_dir):
    param = _param(type="Foo")
    expected = "solver: unknown solver type 'Foo'; known: SGD, Nesterov, AdaGrad, RMSProp, AdaDelta, Adam"
    assert expected.endswith(", ".join(SOLVER_CLASSES))
    for refuse in (get_solver, lambda p: config.check_solver(p, "solver")):
        with pytest.raises(CaffeCaeError) as err:
            refuse(param)
        assert str(err.value) == expected


def test_a_newly_registered_type_is_known_everywhere(case_dir, monkeypatch):
    # config and get_solver keep no list of their own: registering a class is all it takes.
    class SignSolver(updates.SGDSolver):
        TYPE = "Sign"

        @classmethod
        def check_param(cls, param, where):
            if param.momentum > 0.5:
                raise CaffeCaeError(f"{where}: Sign wants momentum <= 0.5")

    monkeypatch.setitem(SOLVER_CLASSES, "Sign", SignSolver)
    with pytest.raises(CaffeCaeError, match=r"^solver: Sign wants momentum <= 0.5$"):
        get_solver(_param(type="Sign", momentum=0.9))
    assert type(get_solver(_param(type="Sign", momentum=0.5))) is SignSolver
    with pytest.raises(CaffeCaeError, match=r"known: SGD, .*, Adam, Sign$"):
        config.check_solver(_param(type="Foo"))


def _upgrade_logs(caplog):
    return [r for r in caplog.records if r.getMessage().startswith("Attempting to upgrade")]


def test_a_legacy_solver_parameter_is_upgraded_once(case_dir, caplog):
    param = _param(solver_type=caffe_pb2.SolverParameter.ADAM)
    param.ClearField("type")
    with caplog.at_level(logging.INFO):
        solver = get_solver(param)
    assert type(solver) is caffe_cae.AdamSolver and solver.param.type == "Adam"
    assert len(_upgrade_logs(caplog)) == 1
    assert param.HasField("solver_type") and not param.HasField("type")  # the caller's copy


def test_a_legacy_solver_file_is_upgraded_once(case_dir, caplog):
    text = (case_dir / "solver.prototxt").read_text()
    (case_dir / "legacy.prototxt").write_text(text + "solver_type: NESTEROV\n")
    with caplog.at_level(logging.INFO):
        solver = get_solver("legacy.prototxt")
    assert type(solver) is caffe_cae.NesterovSolver
    assert len(_upgrade_logs(caplog)) == 1


def test_the_base_class_is_not_a_solver(case_dir):
    with pytest.raises(TypeError, match="base class"):
        Solver(_param())
