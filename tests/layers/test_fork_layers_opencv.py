"""Fork layers that OpenCV 4.x dnn implements too (an independent reading of the same forks):
Interp, ShuffleChannel, ReLU6, Permute, Normalize agree with it on random inputs."""
from __future__ import annotations

import numpy as np
import pytest

from caffe_cae.net import Net
from caffe_cae.proto import caffe_pb2

cv2 = pytest.importorskip("cv2")
if not cv2.__version__.startswith("4."):
    pytest.skip(f"OpenCV {cv2.__version__}: only 4.x reads Caffe models", allow_module_level=True)

LAYERS = {
    "interp_zoom": 'type: "Interp" interp_param { zoom_factor: 3 }',
    "interp_height_width": 'type: "Interp" interp_param { height: 11 width: 5 }',
    "shuffle_channel": 'type: "ShuffleChannel" shuffle_channel_param { group: 2 }',
    "relu6": 'type: "ReLU6"',
    "permute": 'type: "Permute" permute_param { order: 0 order: 3 order: 1 order: 2 }',
    "normalize": 'type: "Normalize" norm_param { across_spatial: false channel_shared: false '
                 'scale_filler { type: "uniform" min: 1 max: 3 } }',
}


@pytest.mark.parametrize("name", sorted(LAYERS))
def test_equals_opencv(name, tmp_path):
    text = ('layer { name: "in" type: "Input" top: "x" input_param { shape { dim: 2 dim: 4 dim: 8 dim: 6 } } }\n'
            f'layer {{ name: "y" {LAYERS[name]} bottom: "x" top: "y" }}')
    proto, model = tmp_path / "net.prototxt", tmp_path / "net.caffemodel"
    proto.write_text(text)
    net = Net(str(proto), caffe_pb2.TEST, seed=1)
    net.save(str(model))
    x = (np.random.default_rng(0).standard_normal((2, 4, 8, 6)) * 4).astype(np.float32)
    ours = net.forward(x=x)["y"]
    reference = cv2.dnn.readNetFromCaffe(str(proto), str(model))
    reference.setInput(x)
    np.testing.assert_allclose(ours, reference.forward("y"), rtol=1e-5, atol=1e-5)
