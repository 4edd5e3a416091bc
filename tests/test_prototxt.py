"""Prototxt parsing and printing: every real file parses, printing is Caffe's, errors say where."""
import numpy as np
import pytest

from caffe_cae import prototxt
from caffe_cae.errors import CaffeCaeError
from caffe_cae.proto import caffe_pb2
from tests.helpers.paths import DATA, GOLDEN, all_prototxts

SYNTAX_ERROR_CASE = GOLDEN / "mig_syntax_error" / "in.prototxt"
# Real-world nets of Caffe forks: each parses, with the fork's parameters where the fork has them.
FORK_FILES = {
    "fixtures/zoo/densenet121/DenseNet_121.prototxt": ("pooling_param", "ceil_mode"),
    "fixtures/zoo/faster_rcnn_zf/test.prototxt": ("roi_pooling_param", "spatial_scale"),
    "fixtures/zoo/mobilenet_ssd/deploy.prototxt": ("permute_param", "order"),
    "fixtures/zoo/segnet_basic/segnet_basic_inference.prototxt": ("dense_image_data_param", "batch_size"),
}
FILES = [(p, solver) for p, solver in all_prototxts() if p != SYNTAX_ERROR_CASE]


def _message_type(is_solver):
    return caffe_pb2.SolverParameter if is_solver else caffe_pb2.NetParameter


@pytest.mark.parametrize("path, is_solver", FILES, ids=[str(p.relative_to(DATA)) for p, _ in FILES])
def test_every_prototxt_parses_and_round_trips(path, is_solver):
    message = prototxt.read_text_file(path, _message_type(is_solver))
    again = prototxt.parse_text(prototxt.to_text(message), _message_type(is_solver))
    assert again == message


@pytest.mark.parametrize("relative", sorted(FORK_FILES))
def test_fork_files_parse_with_their_fork_fields(relative):
    net = prototxt.read_text_file(DATA / relative, caffe_pb2.NetParameter)
    param_name, field = FORK_FILES[relative]
    set_fields = [{f.name for f, _ in getattr(layer, param_name).ListFields()}
                  for layer in net.layer if layer.HasField(param_name)]
    assert set_fields and any(field in names for names in set_fields)


@pytest.mark.parametrize("text, named, suggestion", [
    ('layer { name: "n" type: "Normalize" norm_parm { } }', '"norm_parm"', '"norm_param"'),
    ('layer { pooling_param { ceil_mod: false } }', '"ceil_mod"', '"ceil_mode"'),
    ('layer { prior_box_param { aspect_ratios: 2 } }', '"aspect_ratios"', '"aspect_ratio"'),
    ('layer { pooling_param { pool: MAXX } }', "MAXX", '"MAX"'),
])
def test_unknown_fields_are_one_line_errors_with_the_nearest_name(text, named, suggestion):
    with pytest.raises(CaffeCaeError) as err:
        prototxt.parse_text(text, caffe_pb2.NetParameter, "fork.prototxt")
    message = str(err.value)
    assert "\n" not in message and message.startswith("fork.prototxt:1:") and named in message
    assert message.endswith(f"; did you mean {suggestion}?")


def test_a_field_of_an_unknown_fork_is_named_without_a_guess():
    with pytest.raises(CaffeCaeError) as err:
        prototxt.parse_text('layer { yolo_v9_param { anchors: 3 } }', caffe_pb2.NetParameter, "y.prototxt")
    assert str(err.value) == ('y.prototxt:1:9: Message type "caffe.LayerParameter" has no field named '
                              '"yolo_v9_param".')


def test_noh_unpooling_files_are_among_them():
    names = {p.name for p, _ in FILES}
    assert {"unpool_test.prototxt", "DeconvNet_inference_deploy.prototxt", "stage_1_train.prototxt"} <= names
    net = prototxt.read_net_text(DATA / "golden_noh" / "unpool_test" / "unpool_test.prototxt")
    unpool = [l for l in net.layers if l.type == caffe_pb2.V1LayerParameter.UNPOOLING]
    assert len(unpool) == 2 and unpool[0].unpooling_param.unpool_size == 6


@pytest.mark.parametrize("out", sorted(GOLDEN.glob("mig_*/out.prototxt")), ids=lambda p: p.parent.name)
def test_printing_is_byte_identical_to_caffe(out):
    """Caffe's upgrade tools printed these with C++ TextFormat; we print them back identically."""
    text = out.read_text()
    message = prototxt.parse_text(text, _message_type("solver" in out.parent.name))
    assert prototxt.to_text(message) == text


@pytest.mark.parametrize(
    "value, text",
    [(1.0, "1"), (0.1, "0.1"), (1e-8, "1e-08"), (0.00392156839, "0.00392156839"), (0.0039215684, "0.00392156839"),
     (0.006, "0.006"), (0.0005, "0.0005"), (-2.5, "-2.5"), (1e20, "1e+20"), (float("inf"), "inf"),
     (float("-inf"), "-inf"), (float("nan"), "nan"), (0.999, "0.999"), (1 / 3, "0.333333343")],
)
def test_float_format_matches_cpp(value, text):
    assert prototxt.format_float(value) == text
    if text != "nan":
        assert np.float32(float(text)) == np.float32(value)


def test_printer_order_indent_and_escapes():
    layer = caffe_pb2.LayerParameter(name='a"b', type="Convolution", top=["y"], bottom=["x"])
    layer.convolution_param.kernel_size.extend([3, 5])
    layer.phase = caffe_pb2.TRAIN
    text = prototxt.to_text(layer)
    assert text == (
        'name: "a\\"b"\ntype: "Convolution"\nbottom: "x"\ntop: "y"\nphase: TRAIN\n'
        "convolution_param {\n  kernel_size: 3\n  kernel_size: 5\n}\n"
    )


def test_syntax_error_names_file_line_and_column():
    with pytest.raises(CaffeCaeError) as err:
        prototxt.read_net_text(SYNTAX_ERROR_CASE)
    message = str(err.value)
    assert message.startswith(f"{SYNTAX_ERROR_CASE}:15:1: ") and "\n" not in message


@pytest.mark.parametrize(
    "text, where, words",
    [
        ('name: "x"\nlayer {\n  name: "a" bogus: 1\n}\n', "3:13", 'no field named "bogus"'),
        ('layers { type: FANCY }\n', "1:16", "FANCY"),
        ('name: "a"\nname: "b"\n', "2:7", 'multiple "name"'),
        ('layer { convolution_param { num_output: -3 } }', "1:41", ""),
    ],
)
def test_parse_errors_are_one_line_with_location(text, where, words):
    with pytest.raises(CaffeCaeError) as err:
        prototxt.parse_text(text, caffe_pb2.NetParameter, source="net.prototxt")
    message = str(err.value)
    assert message.startswith(f"net.prototxt:{where}: ") and words in message and "\n" not in message


def test_missing_file_names_the_path(tmp_path):
    missing = tmp_path / "nope.prototxt"
    with pytest.raises(CaffeCaeError, match=f"^{missing}: no such file$"):
        prototxt.read_net_text(missing)


def test_write_text_file_is_atomic_and_keeps_header(tmp_path):
    target = tmp_path / "net.prototxt"
    prototxt.write_text_file(target, caffe_pb2.NetParameter(name="n"), header="# kept\n")
    assert target.read_text() == '# kept\nname: "n"\n'
    assert [p.name for p in tmp_path.iterdir()] == ["net.prototxt"]


FORK_TRAINING_SNIPPETS = {
    "ssd_train": '''layer { name: "data" type: "AnnotatedData" top: "data" top: "label"
  transform_param { mirror: true mean_value: 104 resize_param { prob: 1 resize_mode: WARP height: 300
    width: 300 interp_mode: LINEAR interp_mode: AREA } emit_constraint { emit_type: CENTER }
    distort_param { brightness_prob: 0.5 brightness_delta: 32 } expand_param { prob: 0.5 max_expand_ratio: 4 } }
  annotated_data_param { batch_sampler { sampler { min_scale: 0.3 max_scale: 1 } sample_constraint {
    min_jaccard_overlap: 0.1 } max_sample: 1 max_trials: 50 } label_map_file: "labelmap.prototxt" } }
layer { name: "mbox_loss" type: "MultiBoxLoss" bottom: "mbox_loc" top: "mbox_loss"
  multibox_loss_param { loc_loss_type: SMOOTH_L1 conf_loss_type: SOFTMAX num_classes: 21 match_type: PER_PREDICTION
    overlap_threshold: 0.5 neg_pos_ratio: 3 code_type: CENTER_SIZE mining_type: MAX_NEGATIVE } }''',
    "segnet_train": '''layer { name: "loss" type: "SoftmaxWithLoss" bottom: "conv1" bottom: "label" top: "loss"
  loss_param { weight_by_label_freqs: true ignore_label: 11 class_weighting: 0.2595 class_weighting: 0.1826 } }
layer { name: "drop" type: "Dropout" bottom: "a" top: "a" dropout_param { dropout_ratio: 0.5 sample_weights_test: true } }''',
    "py_faster_rcnn_train": '''layer { name: "loss_bbox" type: "SmoothL1Loss" bottom: "bbox_pred" top: "loss_bbox"
  smooth_l1_loss_param { sigma: 3.0 } }
layer { name: "drop6" type: "Dropout" bottom: "fc6" top: "fc6" dropout_param { dropout_ratio: 0.5 scale_train: false } }''',
    "pspnet": '''layer { name: "interp" type: "Interp" bottom: "conv6" top: "conv6_interp" interp_param { zoom_factor: 8 } }
layer { name: "shuffle" type: "ShuffleChannel" bottom: "a" top: "b" shuffle_channel_param { group: 3 } }
layer { name: "relu6" type: "ReLU6" bottom: "b" top: "b" relu6_param { negative_slope: 0 } }''',
}


@pytest.mark.parametrize("name", sorted(FORK_TRAINING_SNIPPETS))
def test_fork_training_files_parse_and_print_back(name):
    net = prototxt.parse_text(FORK_TRAINING_SNIPPETS[name], caffe_pb2.NetParameter, name)
    again = prototxt.parse_text(prototxt.to_text(net), caffe_pb2.NetParameter)
    assert again == net and len(net.layer) >= 2
    assert caffe_pb2.NetParameter.FromString(net.SerializeToString()) == net
