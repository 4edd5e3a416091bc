"""tools/code_sparsity.py: both readings of the sparsity for every finished run of a folder."""
import json
import pathlib
import subprocess
import sys

import h5py
import numpy as np

TOOL = pathlib.Path(__file__).resolve().parents[2] / "tools" / "code_sparsity.py"


def test_the_tool_prints_signed_and_magnitude_sparsity_next_to_the_paper(tmp_path):
    run = tmp_path / "runs" / "model4-10d-run1"
    run.mkdir(parents=True)
    (run / "result.json").write_text(json.dumps({"model": "model4", "dims": 10, "run": 1}))
    codes = np.array([[10.0, 2.9], [1.0, -2.0], [5.0, -12.0]], np.float32)
    with h5py.File(run / "codes.h5", "w") as h5:
        h5["ip2encode"], h5["label"] = codes, np.array([0, 1, 2], np.float32)
        h5.attrs["code_blob"] = "ip2encode"
    out = subprocess.run([sys.executable, str(TOOL), "--out", str(tmp_path)], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    # signed: max 10, thresholds 1 / 2 / 3; magnitudes: max 12, thresholds 1.2 / 2.4 / 3.6
    assert "| model4-10d-run1 | 33.3 / 50.0 / 66.7 | 16.7 / 33.3 / 50.0 | 73.7 |" in out.stdout


def test_the_tool_says_when_a_folder_has_no_finished_run(tmp_path):
    out = subprocess.run([sys.executable, str(TOOL), "--out", str(tmp_path)], capture_output=True, text=True)
    assert out.returncode == 1 and "no finished runs" in out.stderr and "Traceback" not in out.stderr
