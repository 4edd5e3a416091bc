"""The sweep's one progress display: runs done, iterations/s, ETA; plain lines when not on a terminal."""
import io
import logging

from caffe_cae.experiments.progress import SweepProgress, reporter


def test_aggregates_the_runs_and_logs_plain_lines_off_a_terminal(tmp_path, caplog):
    folders = {name: tmp_path / name for name in ("a", "b", "c")}
    for folder in folders.values():
        folder.mkdir()
    reporter(folders["a"], 100)("training", 40, 2.0)
    reporter(folders["b"], 100)("training", 10, 3.0)
    reporter(folders["c"], 100)("done", 100, 0.0)
    stream = io.StringIO()           # not a terminal
    display = SweepProgress(folders, 100, every=3600, stream=stream)
    now = display.snapshot()
    assert now["done"] == 1 and now["running"] == 2 and now["iterations"] == 150
    assert now["stages"] == {"training": 2}
    assert now["rate"] == 5.0 and now["eta"] == 150 / 5.0
    with caplog.at_level(logging.INFO, logger="caffe_cae.experiments.reproduce"):
        with display:
            display.mark("a", "failed")
    assert "reproduce: runs 1/3 done, 1 running (1 training), 150/300 iterations, 3.0 it/s, ETA 0m50s (training)" in caplog.text
    assert stream.getvalue() == ""   # no bar frames


def test_a_terminal_gets_one_bar(tmp_path):
    class Terminal(io.StringIO):
        def isatty(self):
            return True

    folder = tmp_path / "a"
    folder.mkdir()
    reporter(folder, 10)("training", 4, 1.0)
    stream = Terminal()
    with SweepProgress({"a": folder}, 10, stream=stream):
        pass
    assert "reproduce:" in stream.getvalue() and "4/10" in stream.getvalue() and "runs 0/1 done" in stream.getvalue()
