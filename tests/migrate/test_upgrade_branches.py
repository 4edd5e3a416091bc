"""Audit of the migrator against BVLC Caffe's ``src/caffe/util/upgrade_proto.cpp`` and the
``upgrade_*_proto_*`` tools (master 9b89154): branches the golden cases do not reach.

What decides the tools' exit status is Caffe's ``is_fully_compatible``: only "Unknown parameter X
for layer type T", an unknown V0 pool method and a V1 layer still holding a V0 ``layer`` make it
false.  Everything ``UpgradeV0Net`` silently drops (net fields other than name / input /
input_dim / force_backward, V1 fields beside a V0 ``layer``) leaves the upgrade successful.
"""
from __future__ import annotations

from caffe_cae import prototxt
from caffe_cae.migrate import has_problems, net_needs_upgrade, upgrade_net, upgrade_solver
from caffe_cae.proto import caffe_pb2


def net(text):
    return prototxt.parse_text(text, caffe_pb2.NetParameter)


def upgrade(text):
    return upgrade_net(net(text), source="in.prototxt", reshape_fix=False)


V0_CONV = 'layers { layer { name: "c" type: "conv" num_output: 2 kernelsize: 3 } bottom: "data" top: "c" }'
V0_INPUT = 'input: "data" input_dim: 1 input_dim: 1 input_dim: 5 input_dim: 5\n'


# -- UpgradeV0Net: what it drops without counting it as a problem


def test_v0_net_fields_caffe_drops_are_not_problems():
    upgraded, notes = upgrade(V0_INPUT + 'state { phase: TRAIN } debug_info: true force_backward: true\n'
                              + V0_CONV)
    assert not has_problems(notes)
    assert not upgraded.HasField("state") and not upgraded.HasField("debug_info")
    assert upgraded.force_backward
    assert any(n.level == "warning" and "state" in n for n in notes)  # still reported


def test_v1_fields_beside_a_v0_layer_are_dropped_without_problem():
    text = V0_INPUT + ('layers { layer { name: "c" type: "conv" num_output: 2 kernelsize: 3 } '
                       'name: "ignored" blobs_lr: 5 bottom: "data" top: "c" }')
    upgraded, notes = upgrade(text)
    assert not has_problems(notes)
    assert upgraded.layer[1].name == "c" and len(upgraded.layer[1].param) == 0


def test_v0_net_connection_without_v0_layer_keeps_only_bottom_and_top():
    text = V0_INPUT + V0_CONV + '\nlayers { name: "r" type: RELU bottom: "c" top: "c" }'
    upgraded, notes = upgrade(text)
    assert not has_problems(notes)
    relu = upgraded.layer[2]
    assert (relu.name, relu.type, list(relu.bottom), list(relu.top)) == ("", "", ["c"], ["c"])


def test_v0_net_with_layer_entries_loses_them_like_caffe():
    # UpgradeV0Net starts from net_param->Clear(): the 'layer' entries are gone before
    # UpgradeV1Net could refuse the mix, so Caffe succeeds (exit 0) without them.
    text = V0_INPUT + V0_CONV + '\nlayer { name: "new" type: "ReLU" bottom: "c" top: "c" }'
    upgraded, notes = upgrade(text)
    assert not has_problems(notes)
    assert [layer.name for layer in upgraded.layer] == ["input", "c"]
    assert any(n.level == "warning" and "layer" in n for n in notes)


def test_v0_cli_exit_status_follows_caffe(tmp_path, capsys):
    from caffe_cae import cli

    src = tmp_path / "in.prototxt"
    src.write_text(V0_INPUT + 'debug_info: true\n' + V0_CONV)
    assert cli.main(["migrate", str(src), "-o", str(tmp_path / "out.prototxt")]) == 0
    src.write_text(V0_INPUT + V0_CONV.replace("num_output: 2", "num_output: 2 dropout_ratio: 0.1"))
    assert cli.main(["migrate", str(src), "-o", str(tmp_path / "out.prototxt")]) == 1


# -- UpgradeV0LayerParameter: every field mapping


def test_v0_field_mapping_per_type():
    text = V0_INPUT + """
layers { layer { name: "c" type: "conv" num_output: 4 biasterm: false kernelsize: 3 stride: 2 pad: 1
         group: 2 weight_filler { type: "xavier" } bias_filler { type: "constant" value: 0.5 } }
         bottom: "data" top: "c" }
layers { layer { name: "p" type: "pool" pool: AVE kernelsize: 2 stride: 2 pad: 1 } bottom: "c" top: "p" }
layers { layer { name: "l" type: "lrn" local_size: 3 alpha: 0.5 beta: 0.25 k: 2 } bottom: "p" top: "l" }
layers { layer { name: "d" type: "dropout" dropout_ratio: 0.3 } bottom: "l" top: "l" }
layers { layer { name: "i" type: "innerproduct" num_output: 7 biasterm: false } bottom: "l" top: "i" }
layers { layer { name: "cat" type: "concat" concat_dim: 0 } bottom: "i" bottom: "i" top: "cat" }
layers { layer { name: "img" type: "images" source: "list.txt" batchsize: 2 rand_skip: 1
         shuffle_images: true new_height: 9 new_width: 8 } top: "img" top: "lab" }
layers { layer { name: "win" type: "window_data" source: "w.txt" batchsize: 3 det_fg_threshold: 0.6
         det_bg_threshold: 0.4 det_fg_fraction: 0.3 det_context_pad: 16 det_crop_mode: "square" }
         top: "win" top: "wlab" }
layers { layer { name: "h" type: "hdf5_data" source: "h.txt" batchsize: 4 } top: "h" }
layers { layer { name: "o" type: "hdf5_output" hdf5_output_param { file_name: "o.h5" } } bottom: "h" }
layers { layer { name: "g" type: "infogain_loss" source: "H.binaryproto" } bottom: "i" bottom: "lab" }
"""
    upgraded, notes = upgrade(text)
    assert not has_problems(notes), [n for n in notes if n.level == "error"]
    got = {layer.name: layer for layer in upgraded.layer}
    conv = got["c"].convolution_param
    assert (conv.num_output, conv.bias_term, list(conv.kernel_size), list(conv.stride), list(conv.pad),
            conv.group) == (4, False, [3], [2], [1], 2)
    assert conv.weight_filler.type == "xavier" and conv.bias_filler.value == 0.5
    pool = got["p"].pooling_param
    assert (pool.pool, pool.kernel_size, pool.stride, pool.pad) == (caffe_pb2.PoolingParameter.AVE, 2, 2, 1)
    lrn = got["l"].lrn_param
    assert (lrn.local_size, lrn.alpha, lrn.beta, lrn.k) == (3, 0.5, 0.25, 2)
    assert got["d"].dropout_param.dropout_ratio == np_f32(0.3)
    assert (got["i"].inner_product_param.num_output, got["i"].inner_product_param.bias_term) == (7, False)
    assert got["cat"].concat_param.concat_dim == 0
    img = got["img"].image_data_param
    assert (img.source, img.batch_size, img.rand_skip, img.shuffle, img.new_height, img.new_width) == (
        "list.txt", 2, 1, True, 9, 8)
    win = got["win"].window_data_param
    assert (win.source, win.batch_size, win.context_pad, win.crop_mode) == ("w.txt", 3, 16, "square")
    assert (win.fg_threshold, win.bg_threshold, win.fg_fraction) == (np_f32(0.6), np_f32(0.4), np_f32(0.3))
    assert (got["h"].hdf5_data_param.source, got["h"].hdf5_data_param.batch_size) == ("h.txt", 4)
    assert got["o"].hdf5_output_param.file_name == "o.h5"
    assert got["g"].infogain_loss_param.source == "H.binaryproto"
    assert [got[n].type for n in ("c", "p", "l", "d", "i", "cat", "img", "win", "h", "o", "g")] == [
        "Convolution", "Pooling", "LRN", "Dropout", "InnerProduct", "Concat", "ImageData", "WindowData",
        "HDF5Data", "HDF5Output", "InfogainLoss"]


def np_f32(x):
    import numpy as np

    return float(np.float32(x))


def test_v0_wrong_type_fields_each_logged_with_caffes_words():
    text = V0_INPUT + ('layers { layer { name: "r" type: "relu" num_output: 3 shuffle_images: true '
                       'hdf5_output_param { file_name: "x" } } bottom: "data" top: "r" }')
    _, notes = upgrade(text)
    errors = [n for n in notes if n.level == "error"]
    assert errors[:3] == ["Unknown parameter num_output for layer type relu",
                          "Unknown parameter shuffle for layer type relu",
                          "Unknown parameter hdf5_output_param for layer type relu"]


# -- UpgradeNetDataTransformation


def test_data_transformation_for_image_and_window_data():
    text = """
layers { name: "a" type: IMAGE_DATA image_data_param { source: "s" scale: 0.5 mirror: true } top: "a" }
layers { name: "b" type: WINDOW_DATA window_data_param { source: "w" crop_size: 7 mean_file: "m" } top: "b" }
layers { name: "c" type: DATA data_param { source: "d" } top: "c" }
"""
    upgraded, notes = upgrade(text)
    a, b, c = upgraded.layer
    assert (a.transform_param.scale, a.transform_param.mirror) == (0.5, True)
    assert not a.image_data_param.HasField("scale") and a.image_data_param.source == "s"
    assert (b.transform_param.crop_size, b.transform_param.mean_file) == (7, "m")
    # mutable_transform_param() on every DATA layer: an empty message Caffe prints as "{ }"
    assert c.HasField("transform_param") and c.transform_param.ByteSize() == 0
    assert "transform_param {\n  }" in prototxt.to_text(upgraded)


# -- UpgradeV1LayerParameter


def test_v1_blob_share_mode_and_param_names():
    text = ('layers { name: "ip" type: INNER_PRODUCT param: "w" param: "b" blob_share_mode: PERMISSIVE '
            'blob_share_mode: STRICT blobs_lr: 1 weight_decay: 0 weight_decay: 1 '
            'inner_product_param { num_output: 2 } bottom: "x" top: "y" }')
    upgraded, _ = upgrade(text)
    specs = upgraded.layer[0].param
    assert [(s.name, s.share_mode, s.HasField("lr_mult"), s.decay_mult) for s in specs] == [
        ("w", caffe_pb2.ParamSpec.PERMISSIVE, True, 0.0), ("b", caffe_pb2.ParamSpec.STRICT, False, 1.0)]


def test_v1_layer_without_type_gets_no_type():
    upgraded, notes = upgrade('layers { name: "x" bottom: "a" top: "b" }')
    assert not upgraded.layer[0].HasField("type") and not has_problems(notes)


# -- UpgradeNetInput


def test_input_shape_wins_over_input_dim_and_layer_goes_first():
    text = ('input: "a" input: "b" input_shape { dim: 2 dim: 3 } input_shape { dim: 4 } '
            'input_dim: 9 input_dim: 9 input_dim: 9 input_dim: 9 '
            'layer { name: "r" type: "ReLU" bottom: "a" top: "r" }')
    upgraded, notes = upgrade(text)
    first = upgraded.layer[0]
    assert (first.name, first.type, list(first.top)) == ("input", "Input", ["a", "b"])
    assert [list(s.dim) for s in first.input_param.shape] == [[2, 3], [4]]
    assert not upgraded.input and not upgraded.input_dim and not upgraded.input_shape
    assert [layer.name for layer in upgraded.layer] == ["input", "r"]


def test_bare_input_is_stripped():
    upgraded, _ = upgrade('input: "a" layer { name: "r" type: "ReLU" bottom: "a" top: "r" }')
    assert [layer.name for layer in upgraded.layer] == ["r"] and not upgraded.input


# -- UpgradeNetBatchNorm


def test_batch_norm_with_three_params_only():
    text = ('layer { name: "bn3" type: "BatchNorm" param { lr_mult: 1 } param { lr_mult: 1 name: "s" } '
            'param { decay_mult: 5 } bottom: "x" top: "y" }'
            'layer { name: "bn2" type: "BatchNorm" param { lr_mult: 1 } param { lr_mult: 1 } bottom: "y" top: "z" }')
    assert net_needs_upgrade(net(text))
    upgraded, _ = upgrade(text)
    bn3, bn2 = upgraded.layer
    assert [(p.lr_mult, p.decay_mult) for p in bn3.param] == [(0, 0)] * 3 and bn3.param[1].name == "s"
    assert [p.lr_mult for p in bn2.param] == [1, 1] and not bn2.param[0].HasField("decay_mult")


# -- upgrade_solver_proto_text


def test_solver_already_up_to_date_is_unchanged_and_not_a_problem():
    solver = prototxt.parse_text('type: "Adam" base_lr: 0.1', caffe_pb2.SolverParameter)
    upgraded, notes = upgrade_solver(solver)
    assert upgraded == solver and not has_problems(notes)


def test_solver_type_sgd_given_explicitly_is_upgraded():
    solver = prototxt.parse_text("solver_type: SGD", caffe_pb2.SolverParameter)
    upgraded, _ = upgrade_solver(solver)
    assert upgraded.type == "SGD" and not upgraded.HasField("solver_type")
    assert prototxt.to_text(upgraded) == 'type: "SGD"\n'


# -- the tools' exit status: 2 when the input cannot be parsed (upgrade_net_proto_text,
#    upgrade_net_proto_binary and upgrade_solver_proto_text all `return 2` then)


def test_unparsable_inputs_exit_2_like_caffes_tools(tmp_path, capsys):
    from caffe_cae import cli

    bad = tmp_path / "bad.prototxt"
    bad.write_text('name: "x"\nlayers { name: "a" \n')
    assert cli.main(["migrate", str(bad)]) == 2
    assert cli.main(["migrate", "--solver", str(bad)]) == 2
    binary = tmp_path / "bad.caffemodel"
    binary.write_bytes(b"\xff\xff\xff\xff not a proto")
    assert cli.main(["migrate", str(binary), "-o", str(tmp_path / "out.caffemodel")]) == 2
    err = capsys.readouterr().err.splitlines()
    assert len(err) == 3 and all(line.startswith("caffe-cae migrate: error: ") for line in err)
    assert not (tmp_path / "out.caffemodel").exists()
