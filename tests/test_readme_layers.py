"""The README's supported-layer list is the registry's (regenerate it with
`python -m caffe_cae layers --markdown` between the `layers:begin`/`layers:end` markers)."""
import re

from caffe_cae.commands.layers import layer_support, markdown
from tests.helpers.paths import TESTS

README = TESTS.parent / "README.md"


def test_readme_layer_list_matches_the_registry():
    text = README.read_text()
    found = re.search(r"<!-- layers:begin -->\n(.*?)<!-- layers:end -->", text, re.S)
    assert found, "README.md lacks the layers:begin/end markers"
    assert found.group(1) == markdown(layer_support()), (
        "README.md's layer list is stale: paste `python -m caffe_cae layers --markdown` between the markers")
