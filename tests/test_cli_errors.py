"""Bad input to every command, as a user makes it: one line on stderr that says where (file,
LINE:COL, layer or blob), exit status != 0, no traceback, nothing half-written.

One table of cases runs in-process (``cli.main``); two subprocess checks make sure the real
entry point prints no traceback either.
"""
import subprocess
import sys

import h5py
import numpy as np
import pytest

from caffe_cae import cli
from tests.helpers.logs import strip_glog

TINY_NET = """name: "tiny"
layer { name: "data" type: "Input" top: "data" input_param { shape { dim: 1 dim: 1 dim: 4 dim: 4 } } }
layer { name: "ip" type: "InnerProduct" bottom: "data" top: "ip"
        inner_product_param { num_output: 2 weight_filler { type: "xavier" } } }
"""
TRAIN_NET = """name: "tiny_train"
layer { name: "data" type: "DummyData" top: "data" top: "target"
        dummy_data_param { shape { dim: 2 dim: 4 } shape { dim: 2 dim: 2 }
                           data_filler { type: "gaussian" } data_filler { type: "constant" } } }
layer { name: "ip" type: "InnerProduct" bottom: "data" top: "ip" inner_product_param { num_output: 2 } }
layer { name: "loss" type: "EuclideanLoss" bottom: "ip" bottom: "target" top: "loss" }
"""
INPUT = 'layer { name: "x" type: "Input" top: "data" input_param { shape { dim: 1 dim: 1 dim: 4 dim: 4 } } }\n'
BAD_NETS = {
    "syntax.prototxt": 'layer {\n  name: "x"\n  type: "Input"\n',
    "unknown_type.prototxt": INPUT + 'layer { name: "bad" type: "NoSuchLayer" bottom: "data" top: "y" }\n',
    "unknown_field.prototxt": 'layer {\n  name: "x"\n  bogus_field: 3\n}\n',
    "two_bottoms.prototxt": INPUT + 'layer { name: "ip" type: "InnerProduct" bottom: "data" bottom: "data" '
                                    'top: "y" inner_product_param { num_output: 2 } }\n',
    "missing_bottom.prototxt": INPUT + 'layer { name: "ip" type: "InnerProduct" bottom: "nothere" top: "y" '
                                       'inner_product_param { num_output: 2 } }\n',
    "kernel_too_big.prototxt": INPUT + 'layer { name: "c" type: "Convolution" bottom: "data" top: "c" '
                                       'convolution_param { num_output: 2 kernel_size: 9 } }\n',
    "bad_enum.prototxt": INPUT + 'layer { name: "p" type: "Pooling" bottom: "data" top: "p" '
                                 'pooling_param { pool: MAXX kernel_size: 2 } }\n',
}
SOLVER = 'net: "train.prototxt"\nbase_lr: 0.01\nlr_policy: "fixed"\nmax_iter: 1\nsnapshot_prefix: "snap"\n'
SOLVERS = {
    "solver.prototxt": SOLVER,
    "solver_typo.prototxt": SOLVER.replace('"fixed"', '"fixd"'),
    "solver_no_net.prototxt": SOLVER.replace("train.prototxt", "nonet.prototxt"),
    "solver_step.prototxt": SOLVER.replace('"fixed"', '"step"'),
    "solver_no_folder.prototxt": SOLVER.replace('"snap"', '"nofolder/snap"') + "snapshot: 1\n",
}


@pytest.fixture(scope="module")
def workdir(tmp_path_factory):
    """A folder with good and bad inputs of every kind (built once for the table)."""
    from caffe_cae import Net
    from caffe_cae.onnx import export, save

    root = tmp_path_factory.mktemp("cli_errors")
    (root / "tiny.prototxt").write_text(TINY_NET)
    (root / "train.prototxt").write_text(TRAIN_NET)
    for name, text in {**BAD_NETS, **SOLVERS}.items():
        (root / name).write_text(text)
    Net(str(root / "tiny.prototxt"), seed=1).save(str(root / "tiny.caffemodel"))
    save(export(str(root / "tiny.prototxt"), str(root / "tiny.caffemodel")), str(root / "tiny.onnx"))
    (root / "adir").mkdir()
    (root / "afile").write_text("a plain file\n")
    (root / "fake.h5").write_text("not hdf5 at all")
    (root / "garbage.caffemodel").write_bytes(b"garbage\x00\x01\x02\xff")
    rng = np.random.default_rng(0)
    with h5py.File(root / "data.h5", "w") as f:
        f["data"] = rng.random((6, 1, 4, 4), dtype=np.float32)
        f["label"] = np.arange(6, dtype=np.float32)
    with h5py.File(root / "wrong_shape.h5", "w") as f:
        f["data"] = rng.random((6, 3, 5, 5), dtype=np.float32)
    with h5py.File(root / "no_data.h5", "w") as f:
        f["foo"] = np.zeros((2, 1, 4, 4), np.float32)
    for name, codes, labels in (("codes.h5", rng.random((40, 2)), np.repeat([0, 1], 20)),
                                ("codes_empty.h5", np.zeros((0, 2)), np.zeros(0, int)),
                                ("codes_mismatch.h5", rng.random((40, 2)), np.arange(30) % 2),
                                ("codes_no_label.h5", rng.random((40, 2)), None)):
        with h5py.File(root / name, "w") as f:
            f["ip"] = codes.astype(np.float32)
            if labels is not None:
                f["label"] = labels
            f.attrs["code_blob"] = "ip"
    return root


# (argv, what the one error line must contain)
CASES = [
    # files that are missing, folders, or of the wrong kind
    ("show missing.prototxt", "missing.prototxt: no such file"),
    ("show adir", "adir: is a directory"),
    ("show tiny.caffemodel --kind net", "tiny.caffemodel: not a text file"),
    ("show solver.prototxt --kind net", 'solver.prototxt:1:1: Message type "caffe.NetParameter" has no field named "net"'),
    ("show tiny.prototxt --kind solver", "tiny.prototxt:1:1: "),
    ("show fake.h5 --kind caffemodel", "fake.h5: not an HDF5 caffemodel"),
    ("show no_data.h5 --kind caffemodel", "no_data.h5: HDF5 caffemodel has no /data group"),
    ("show garbage.caffemodel", "garbage.caffemodel: not a binary caffemodel"),
    ("show tiny.prototxt --kind solverstate", "tiny.prototxt: not a binary solverstate"),
    # prototxt errors name FILE:LINE:COL, net errors the layer or blob
    ("show syntax.prototxt", "syntax.prototxt:4:1: "),
    ("show unknown_field.prototxt", 'unknown_field.prototxt:3:3: Message type "caffe.LayerParameter" has no field named "bogus_field"'),
    ("show bad_enum.prototxt", "bad_enum.prototxt:2:"),
    ("params unknown_type.prototxt", "layer 'bad': unknown layer type 'NoSuchLayer'"),
    ("params two_bottoms.prototxt", "layer 'ip' (InnerProduct): takes exactly 1 bottom blob(s), got 2"),
    ("params missing_bottom.prototxt", "layer 'ip' (InnerProduct): unknown bottom blob 'nothere'"),
    ("params kernel_too_big.prototxt", "layer 'c' (Convolution): output size [-4, -4] is not positive"),
    ("params tiny.prototxt --input-shape data=0,1,1", "--input-shape 'data=0,1,1'"),
    ("params tiny.prototxt --input-shape nosuch=1,4,4", "blob 'nosuch'"),
    # migrate (exit 2 when the input does not parse, as Caffe's upgrade tools)
    ("migrate solver.prototxt", "solver.prototxt: this is a solver, not a net"),
    ("migrate tiny.caffemodel", "tiny.caffemodel: binary weights need an output file"),
    ("migrate tiny.prototxt -o adir", "adir: is a directory, expected a file to write"),
    ("migrate tiny.prototxt -o afile/new.prototxt", "afile/new.prototxt: cannot write (a file is in the way of folder afile)"),
    # gen
    ("gen nosuch", "unknown model 'nosuch'"),
    ("gen model4 --dim 0", "--dim must be at least 1, got 0"),
    ("gen model4 --batch -1", "--batch must be at least 1, got -1"),
    ("gen model4 -o adir", "adir: is a directory, expected a file to write"),
    # test / time
    ("test tiny.prototxt", "need model weights to score"),
    ("test tiny.prototxt --weights missing.caffemodel", "missing.caffemodel: no such file"),
    ("test tiny.prototxt --weights tiny.prototxt", "tiny.prototxt: not a binary caffemodel"),
    ("test tiny.prototxt --weights fake.h5", "fake.h5: not an HDF5 caffemodel"),
    ("test tiny.prototxt --weights tiny.caffemodel --iterations 0", "--iterations must be >= 1 (got 0)"),
    ("test tiny.prototxt --weights tiny.caffemodel --threads -1", "--threads must be 0"),
    ("time tiny.caffemodel --iterations 1", "tiny.caffemodel: not a text file"),
    ("time unknown_type.prototxt --iterations 1", "layer 'bad': unknown layer type"),
    # train: solvers with a typo, a missing net, a net instead of a solver, bad resume files
    ("train", "need a solver"),
    ("train adir", "adir: is a directory, expected a solver prototxt"),
    ("train tiny.prototxt", "tiny.prototxt: this is a net definition, not a solver"),
    ("train solver_typo.prototxt", "solver_typo.prototxt: unknown lr_policy 'fixd'"),
    ("train solver_no_net.prototxt", "solver_no_net.prototxt: net 'nonet.prototxt': no such net file"),
    ("train solver_step.prototxt", "solver_step.prototxt: lr_policy 'step' needs stepsize > 0"),
    ("train solver_no_folder.prototxt", "Cannot write to snapshot prefix 'nofolder/snap'"),
    ("train solver.prototxt --iterations -1", "--iterations must be 0..2147483647, Caffe's int (got -1)"),
    ("train solver.prototxt --snapshot missing.solverstate", "missing.solverstate: no such solverstate file"),
    ("train solver.prototxt --snapshot tiny.caffemodel", "tiny.caffemodel: not a solverstate"),
    ("train solver.prototxt --weights tiny.prototxt", "tiny.prototxt: not a binary caffemodel"),
    # encode
    ("encode tiny.prototxt tiny.caffemodel data.h5 --out c.h5 --batch 0", "--batch must be at least 1 (got 0)"),
    ("encode tiny.prototxt tiny.caffemodel data.h5 --out c.h5 --batch -5", "--batch must be at least 1 (got -5)"),
    ("encode tiny.prototxt tiny.caffemodel data.h5 --out c.h5 --limit 0", "--limit must be at least 1 (got 0)"),
    ("encode tiny.prototxt tiny.caffemodel data.h5 --out c.h5 --blob nosuch", "blob 'nosuch': not in the net"),
    ("encode tiny.prototxt tiny.caffemodel missing.h5 --out c.h5", "missing.h5: no such file"),
    ("encode tiny.prototxt tiny.caffemodel adir --out c.h5", "adir: is a directory, expected an HDF5 data file"),
    ("encode tiny.prototxt tiny.caffemodel fake.h5 --out c.h5", "fake.h5: not an HDF5 data file"),
    ("encode tiny.prototxt tiny.caffemodel no_data.h5 --out c.h5 --blob ip", "blob 'data': the data file has no dataset"),
    ("encode tiny.prototxt tiny.caffemodel data.h5 --out adir --blob ip", "adir: is a directory, expected a file to write"),
    # evaluate: options are checked before any work
    ("evaluate missing.h5", "missing.h5: no such file"),
    ("evaluate adir", "adir: is a directory, expected an HDF5 codes file"),
    ("evaluate data.h5", "data.h5: no code_blob attribute"),
    ("evaluate codes.h5 --blob nosuch", "codes.h5: no dataset 'nosuch'"),
    ("evaluate codes.h5 --folds 1", "--folds must be at least 2 (got 1)"),
    ("evaluate codes.h5 --classifiers foo", "--classifiers: unknown 'foo'"),
    ("evaluate codes.h5 --threshold -1", "--threshold is a fraction of the maximum"),
    ("evaluate codes.h5 --mlp-max-iter 0", "--mlp-max-iter must be at least 1"),
    ("evaluate codes_empty.h5", "codes_empty.h5: dataset 'ip' holds no codes"),
    ("evaluate codes_mismatch.h5", "codes_mismatch.h5: 40 codes in 'ip' but 30 labels"),
    ("evaluate codes_no_label.h5", "codes_no_label.h5: no 'label' dataset"),
    # export / infer
    ("export tiny.prototxt -o x.onnx --outputs nosuch", "--outputs: no blob named 'nosuch'"),
    ("export tiny.prototxt -o x.onnx --opset 1", "--opset 1: supported opsets are"),
    ("export tiny.prototxt garbage.caffemodel -o x.onnx", "garbage.caffemodel: not a binary caffemodel"),
    ("export tiny.prototxt -o afile/x.onnx", "afile/x.onnx: cannot write"),
    ("infer missing.onnx --input data.h5 -o o.h5", "missing.onnx: no such file"),
    ("infer adir --input data.h5 -o o.h5", "adir: is a directory, expected an .onnx file"),
    ("infer tiny.prototxt --input data.h5 -o o.h5 --device cpu", "tiny.prototxt: onnxruntime cannot load the model"),
    ("infer tiny.onnx --input adir -o o.h5 --device cpu", "adir: is a directory, expected an HDF5 file"),
    ("infer tiny.onnx --input fake.h5 -o o.h5 --device cpu", "fake.h5: not an HDF5 file"),
    ("infer tiny.onnx --input no_data.h5 -o o.h5 --device cpu", "no_data.h5: no dataset 'data'"),
    ("infer tiny.onnx --input wrong_shape.h5 -o o.h5 --device cpu",
     "blob 'data': wrong_shape.h5 has samples of shape [3, 5, 5], the model expects [1, 4, 4]"),
    ("infer tiny.onnx --input data.h5 -o o.h5 --batch 0 --device cpu", "--batch 0: must be at least 1"),
    ("infer tiny.onnx --input data.h5 -o adir --device cpu", "adir: is a directory, expected a file to write"),
    # data / reproduce: folders that cannot be made, options checked before any download or training
    ("data mnist --out afile --from adir", "afile: cannot create the folder (a file is in the way)"),
    ("reproduce --out r --iters 0", "--iters must be at least 1"),
    ("reproduce --out r --iters 1 --folds 1", "--folds must be at least 2 (got 1)"),
    ("reproduce --out r --iters 1 --test-every 0", "--test-every must be at least 1 (got 0)"),
    ("reproduce --out r --iters 1 --test-iters 0", "--test-iters must be at least 1 (got 0)"),
    ("reproduce --out r --iters 1 --models ,", "--models and --dims need at least one entry each"),
    ("reproduce --out r --iters 1 --models nosuch", "unknown model 'nosuch'"),
    ("reproduce --out afile --iters 1 --from adir", "afile: cannot create the folder (a file is in the way)"),
]


@pytest.mark.parametrize("argv, expected", CASES, ids=[c[0] for c in CASES])
def test_user_error_is_one_line(argv, expected, workdir, monkeypatch, capsys):
    monkeypatch.chdir(workdir)
    before = sorted(p.name for p in workdir.iterdir())
    status = cli.main(["-q", *argv.split()])
    err = strip_glog(capsys.readouterr().err)  # train logs (and fails) in glog's format
    command = argv.split()[0]
    assert status != 0
    assert err.count("\n") == 1 and err.startswith(f"caffe-cae {command}: error: "), err
    assert expected in err, err
    # nothing written, not even a temporary file, by a command that failed
    assert sorted(p.name for p in workdir.iterdir()) == before


def test_migrate_unparsable_input_exits_2(workdir, monkeypatch, capsys):
    monkeypatch.chdir(workdir)
    assert cli.main(["-q", "migrate", "syntax.prototxt"]) == 2
    assert capsys.readouterr().err.startswith("caffe-cae migrate: error: syntax.prototxt:4:1: ")


@pytest.mark.parametrize("argv", [
    ["train", "solver_typo.prototxt"],
    ["infer", "tiny.onnx", "--input", "wrong_shape.h5", "-o", "o.h5", "--device", "cpu"],
])
def test_entry_point_prints_no_traceback(argv, workdir):
    result = subprocess.run([sys.executable, "-m", "caffe_cae", "-q", *argv], cwd=workdir,
                            capture_output=True, text=True)
    assert result.returncode == 1
    assert "Traceback" not in result.stderr and len(result.stderr.splitlines()) == 1, result.stderr


def test_a_multi_line_message_still_prints_as_one_line(monkeypatch, capsys):
    from caffe_cae.commands import show
    from caffe_cae.errors import CaffeCaeError

    def fail(args):
        raise CaffeCaeError("x.h5: not an HDF5 file (file read failed\n, errno = 21)")

    monkeypatch.setattr(show, "run", fail)
    assert cli.main(["show", "x.h5"]) == 1
    assert capsys.readouterr().err == "caffe-cae show: error: x.h5: not an HDF5 file (file read failed , errno = 21)\n"
