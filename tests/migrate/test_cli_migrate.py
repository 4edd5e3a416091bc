"""``caffe-cae migrate`` end to end: stdout/-o, comments, stderr report, exit codes."""
from caffe_cae import prototxt
from caffe_cae.proto import caffe_pb2
from tests.helpers.paths import DATA, FIXTURES
from tests.migrate.conftest import migrate_subprocess

CAE = DATA / "legacy_cae" / "mnistCAE10sym0202.prototxt"


def test_stdout_keeps_leading_comments_and_reports_reshape():
    result = migrate_subprocess(CAE)
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("# Legacy (V1 syntax")
    assert "\n\nname: \"mnistCAE10sym0202\"\n" in result.stdout
    net = prototxt.parse_text(result.stdout, caffe_pb2.NetParameter)
    assert [l.name for l in net.layer if l.type == "Reshape"] == ["reshape"]
    reports = [line for line in result.stderr.splitlines() if "inserted Reshape" in line]
    assert len(reports) == 1 and "'deconv2'" in reports[0] and "ip1decodesh" in reports[0]


def test_output_file_no_comments_no_reshape_fix(tmp_path, migrate_main):
    out = tmp_path / "new.prototxt"
    result = migrate_main(CAE, "-o", out, "--no-comments", "--no-reshape-fix")
    assert result.returncode == 0 and result.stdout == ""
    text = out.read_text()
    assert text.startswith('name: "mnistCAE10sym0202"\n') and "Reshape" not in text
    assert "inserted Reshape" not in result.stderr
    assert f"Wrote upgraded NetParameter text proto to {out}" in result.stderr


def test_problems_write_output_and_exit_1(tmp_path, migrate_main):
    legacy = tmp_path / "v0.prototxt"
    legacy.write_text('layers { layer { name: "r" type: "relu" num_output: 3 } bottom: "x" top: "y" }\n'
                      'input: "x"\n')
    out = tmp_path / "new.prototxt"
    result = migrate_main(legacy, "-o", out)
    assert result.returncode == 1
    assert "Unknown parameter num_output for layer type relu" in result.stderr
    assert 'type: "ReLU"' in out.read_text()


def test_solver_given_as_net_gets_a_hint(migrate_main):
    solver = DATA / "legacy_cae" / "solver-mnistCAE10sym020203.prototxt"
    result = migrate_main(solver)
    assert result.returncode == 2 and "use 'caffe-cae migrate --solver" in result.error
    assert len(result.error.strip().splitlines()) == 1


def test_solver_to_stdout(migrate_main):
    result = migrate_main("--solver", FIXTURES / "deconvnet_noh" / "stage_1_solver.prototxt")
    assert result.returncode == 0
    solver = prototxt.parse_text(result.stdout, caffe_pb2.SolverParameter)
    assert solver.iter_size == 8
    assert "File already in latest proto format" in result.stderr


def test_hdf5_weights_refused(migrate_main):
    result = migrate_main("weights.caffemodel.h5", "-o", "x.caffemodel.h5")
    assert result.returncode == 1 and "HDF5 weights" in result.stderr
