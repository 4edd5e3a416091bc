"""Where the test data lives (copies of ../shared made for the suite; nothing outside the repo)."""
import pathlib

TESTS = pathlib.Path(__file__).resolve().parents[1]
DATA = TESTS / "data"
GOLDEN = DATA / "golden"
GOLDEN_NOH = DATA / "golden_noh"
GOLDEN_BVLC = DATA / "golden_bvlc"
FIXTURES = DATA / "fixtures"
ZOO = FIXTURES / "zoo"


def all_prototxts():
    """Every prototxt under tests/data, with whether it is a solver."""
    for path in sorted(DATA.rglob("*.prototxt")):
        yield path, "solver" in path.name or "solver" in path.parent.name
