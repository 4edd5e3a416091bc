"""Mutations of the seed files: bytes, prototxt text and structure, binary protobuf fields,
HDF5 trees.  Every mutator is ``f(rng, content) -> Mutant``; ``refuse`` marks inputs that BVLC
Caffe refuses (a CHECK fails), which must not be accepted silently."""
from __future__ import annotations

import io
import os
import random
import re
import tempfile
from dataclasses import dataclass

import numpy as np

INT_MAX = 2**31 - 1
EXTREME_INTS = [0, 1, -1, 2, 3, 7, 65535, INT_MAX, 2**31, 2**32 + 1, -(2**31), 2**40, 10**6]
EXTREME_FLOATS = [0.0, -1.0, 1e-30, 1e30, 3.4e38, float("nan"), float("inf"), -float("inf"), 0.5, 2.0]


@dataclass
class Mutant:
    content: bytes
    what: str
    refuse: bool = False


# ------------------------------------------------------------------------------------------
# bytes


def flip_bytes(rng: random.Random, data: bytes) -> Mutant:
    if not data:
        return Mutant(b"\xff", "one byte 0xff")
    buf = bytearray(data)
    count = rng.choice([1, 1, 2, 4, 16])
    for _ in range(count):
        i = rng.randrange(len(buf))
        buf[i] = rng.randrange(256)
    return Mutant(bytes(buf), f"{count} random byte(s) replaced")


def truncate(rng: random.Random, data: bytes) -> Mutant:
    cut = rng.randrange(len(data)) if data else 0
    return Mutant(data[:cut], f"truncated to {cut} of {len(data)} bytes")


def splice(rng: random.Random, data: bytes) -> Mutant:
    if len(data) < 2:
        return Mutant(data + data, "doubled")
    a, b = sorted(rng.sample(range(len(data)), 2))
    choice = rng.randrange(3)
    if choice == 0:
        return Mutant(data[:a] + data[b:], f"bytes {a}..{b} deleted")
    if choice == 1:
        return Mutant(data[:b] + data[a:b] + data[b:], f"bytes {a}..{b} duplicated")
    junk = bytes(rng.randrange(256) for _ in range(rng.choice([1, 3, 8, 64])))
    return Mutant(data[:a] + junk + data[a:], f"{len(junk)} random bytes inserted at {a}")


BYTE_MUTATORS = [flip_bytes, truncate, splice]


# ------------------------------------------------------------------------------------------
# text


_NUMBER = re.compile(rb"(?<![\w.])-?\d+(\.\d+)?(e-?\d+)?(?![\w.])")
_STRING = re.compile(rb'"[^"\n]*"')


#: fields whose size is work asked for (a long test is a long run, not a hang): small values only
_WORK_FIELDS = (b"test_iter", b"max_iter", b"iter_size", b"display", b"average_loss", b"batch_size")


def replace_number(rng: random.Random, data: bytes) -> Mutant:
    spots = list(_NUMBER.finditer(data))
    if not spots:
        return splice(rng, data)
    m = rng.choice(spots)
    new = rng.choice([str(v) for v in EXTREME_INTS] + ["1e30", "nan", "inf", "-0", "0.5", "1e-45"]).encode()
    line = data[data.rfind(b"\n", 0, m.start()) + 1:m.start()]
    if any(field in line for field in _WORK_FIELDS):
        new = rng.choice([b"0", b"-1", b"1", b"3", b"0.5", b"nan"])
    return Mutant(data[:m.start()] + new + data[m.end():], f"number {m.group().decode()} -> {new.decode()}")


def replace_string(rng: random.Random, data: bytes) -> Mutant:
    spots = list(_STRING.finditer(data))
    if not spots:
        return splice(rng, data)
    m = rng.choice(spots)
    new = rng.choice([b'""', b'"nosuch"', b'"data.h5"', b'"\\377\\376"', b'"' + b"x" * 300 + b'"',
                      b'"snap_iter_2.caffemodel"', b'"train.prototxt"', b'"conv1"', b'"data"'])
    return Mutant(data[:m.start()] + new + data[m.end():], f"string {m.group()[:30]!r} -> {new[:30]!r}")


def swap_lines(rng: random.Random, data: bytes) -> Mutant:
    lines = data.split(b"\n")
    if len(lines) < 2:
        return splice(rng, data)
    i, j = rng.sample(range(len(lines)), 2)
    lines[i], lines[j] = lines[j], lines[i]
    return Mutant(b"\n".join(lines), f"lines {i + 1} and {j + 1} swapped")


def invalid_utf8(rng: random.Random, data: bytes) -> Mutant:
    i = rng.randrange(len(data) + 1)
    junk = rng.choice([b"\xff", b"\xc3", b"\xe2\x82", b"\x00", b"\xed\xa0\x80"])
    return Mutant(data[:i] + junk + data[i:], f"bytes {junk!r} inserted at {i}")


TEXT_MUTATORS = [replace_number, replace_number, replace_string, swap_lines, invalid_utf8, truncate, splice]


# ------------------------------------------------------------------------------------------
# protobuf messages (text or binary)


def _scalar_fields(message, prefix=""):
    """``(message, field, path)`` for every set scalar field, recursively (repeated: each item)."""
    from google.protobuf.descriptor import FieldDescriptor as FD

    out = []
    for field, value in message.ListFields():
        path = f"{prefix}{field.name}"
        if field.type == FD.TYPE_MESSAGE:
            items = value if field.is_repeated else [value]
            for k, item in enumerate(items):
                out += _scalar_fields(item, f"{path}[{k}]." if field.is_repeated else f"{path}.")
        else:
            out.append((message, field, path))
    return out


def _new_value(rng: random.Random, field):
    from google.protobuf.descriptor import FieldDescriptor as FD

    t = field.type
    if t in (FD.TYPE_FLOAT, FD.TYPE_DOUBLE):
        return rng.choice(EXTREME_FLOATS)
    if t == FD.TYPE_BOOL:
        return rng.choice([True, False])
    if t == FD.TYPE_ENUM:
        values = [v.number for v in field.enum_type.values]
        return rng.choice(values)
    if t == FD.TYPE_STRING:
        return rng.choice(["", "nosuch", "data", "conv1", "x" * 200, "snap_iter_2.caffemodel", "train.prototxt"])
    if t == FD.TYPE_BYTES:
        return b"\xff\x00"
    bits = 32 if t in (FD.TYPE_INT32, FD.TYPE_SINT32, FD.TYPE_SFIXED32, FD.TYPE_UINT32, FD.TYPE_FIXED32) else 64
    unsigned = t in (FD.TYPE_UINT32, FD.TYPE_FIXED32, FD.TYPE_UINT64, FD.TYPE_FIXED64)
    lo, hi = (0, 2**bits - 1) if unsigned else (-(2**(bits - 1)), 2**(bits - 1) - 1)
    return min(hi, max(lo, rng.choice(EXTREME_INTS)))


def set_field(rng: random.Random, message) -> str:
    """Set one scalar field of ``message`` (somewhere inside) to an extreme value; what was done."""
    fields = _scalar_fields(message)
    if not fields:
        return "no field"
    owner, field, path = rng.choice(fields)
    value = _new_value(rng, field)
    if field.is_repeated:
        items = getattr(owner, field.name)
        items[rng.randrange(len(items))] = value
    else:
        setattr(owner, field.name, value)
    return f"{path} = {value!r}"[:120]


def _layers(net):
    return list(net.layer) or list(net.layers)


def add_layer_field(rng: random.Random, net) -> str:
    """Set a field the layer does not set yet, in the parameter message of its type."""
    from google.protobuf.descriptor import FieldDescriptor as FD

    layers = list(net.layer)
    if not layers:
        return set_field(rng, net)
    layer = rng.choice(layers)
    params = [f for f in layer.DESCRIPTOR.fields if f.name.endswith("_param") and f.type == FD.TYPE_MESSAGE
              and not f.is_repeated]
    own = OWN_PARAM.get(layer.type)
    field = (layer.DESCRIPTOR.fields_by_name[own] if own and rng.random() < 0.7 else rng.choice(params))
    sub = getattr(layer, field.name)
    scalar = [f for f in sub.DESCRIPTOR.fields if f.type != FD.TYPE_MESSAGE]
    if not scalar:
        sub.SetInParent()
        return f"layer {layer.name}: {field.name} {{}}"
    target = rng.choice(scalar)
    value = _new_value(rng, target)
    if target.is_repeated:
        getattr(sub, target.name).append(value)
    else:
        setattr(sub, target.name, value)
    return f"layer {layer.name}: {field.name}.{target.name} = {value!r}"[:120]


#: the parameter message each layer type of the corpus reads
OWN_PARAM = {"Convolution": "convolution_param", "Deconvolution": "convolution_param", "Pooling": "pooling_param",
             "InnerProduct": "inner_product_param", "Reshape": "reshape_param", "Unpooling": "unpooling_param",
             "HDF5Data": "hdf5_data_param", "Input": "input_param", "Sigmoid": "sigmoid_param",
             "SigmoidCrossEntropyLoss": "loss_param"}


def make_in_place(rng: random.Random, net) -> tuple[str, bool]:
    """A layer writes its top into its first bottom (Caffe refuses that for shape-changing layers)."""
    layers = [la for la in net.layer if la.bottom and la.top and la.top[0] != la.bottom[0]]
    if not layers:
        return "no layer", False
    layer = rng.choice(layers)
    old = layer.top[0]
    layer.top[0] = layer.bottom[0]
    for later in net.layer:  # consumers read the bottom instead
        for k, name in enumerate(later.bottom):
            if name == old and later is not layer:
                later.bottom[k] = layer.bottom[0]
    shape_changing = layer.type not in ("Sigmoid", "ReLU", "TanH", "Dropout", "Power", "AbsVal", "BNLL",
                                        "Exp", "Log", "ELU", "PReLU", "Scale", "Bias", "Split", "Threshold")
    return f"layer {layer.name} ({layer.type}) in place on '{layer.bottom[0]}'", shape_changing and layer.type in (
        "Convolution", "Deconvolution", "Pooling", "InnerProduct", "Concat", "SigmoidCrossEntropyLoss",
        "EuclideanLoss", "SoftmaxWithLoss")


def change_type(rng: random.Random, net) -> str:
    from caffe_cae.layers.registry import LAYERS

    layers = list(net.layer)
    if not layers:
        return "no layer"
    layer = rng.choice(layers)
    new = rng.choice(sorted(LAYERS))
    old, layer.type = layer.type, new
    return f"layer {layer.name}: type {old} -> {new}"


def drop_or_duplicate_layer(rng: random.Random, net) -> str:
    layers = net.layer
    if not layers:
        return "no layer"
    i = rng.randrange(len(layers))
    if rng.random() < 0.5:
        name = layers[i].name
        del layers[i]
        return f"layer {name} removed"
    layers.add().CopyFrom(layers[i])
    return f"layer {layers[i].name} duplicated at the end"


def huge_shape(rng: random.Random, net) -> tuple[str, bool]:
    """Input dims whose product passes Caffe's INT_MAX blob limit."""
    for layer in net.layer:
        if layer.type == "Input":
            dims = layer.input_param.shape[0].dim
            dims[0] = rng.choice([10**6, 2**31, 4096])
            dims[-1] = rng.choice([10**6, 2**20, 65536])
            return f"Input dims {list(dims)}", int(np.prod([int(d) for d in dims], dtype=object)) > INT_MAX
    return "no Input", False


def _kernel_blowup(rng: random.Random, net) -> str:
    for layer in net.layer:
        if layer.type == "Deconvolution":
            layer.convolution_param.kernel_size[:] = [rng.choice([65535, 2000, 4096])]
            return f"layer {layer.name}: kernel_size {layer.convolution_param.kernel_size[0]}"
    return "no Deconvolution"


def mutate_net_message(rng: random.Random, net) -> tuple[str, bool]:
    choice = rng.randrange(10)
    if choice < 3:
        return set_field(rng, net), False
    if choice < 5:
        return add_layer_field(rng, net), False
    if choice == 5:
        return make_in_place(rng, net)
    if choice == 6:
        return change_type(rng, net), False
    if choice == 7:
        return drop_or_duplicate_layer(rng, net), False
    if choice == 8:
        return huge_shape(rng, net)
    return _kernel_blowup(rng, net), False


def net_structure(rng: random.Random, data: bytes) -> Mutant:
    from caffe_cae import prototxt
    from caffe_cae.proto import caffe_pb2

    net = prototxt.parse_text(data.decode(), caffe_pb2.NetParameter)
    what, refuse = mutate_net_message(rng, net)
    return Mutant(prototxt.to_text(net).encode(), what, refuse)


def solver_structure(rng: random.Random, data: bytes) -> Mutant:
    from caffe_cae import prototxt
    from caffe_cae.proto import caffe_pb2

    solver = prototxt.parse_text(data.decode(), caffe_pb2.SolverParameter)
    refuse = False
    if rng.random() < 0.5:
        what = set_field(rng, solver)
        for name in ("test_iter", "max_iter", "iter_size", "display", "average_loss"):
            field = getattr(solver, name)
            if name == "test_iter":
                field[:] = [min(n, 3) for n in field]
            elif field > 3:
                setattr(solver, name, 3)
    else:
        field = rng.choice([f for f in solver.DESCRIPTOR.fields if f.type != f.TYPE_MESSAGE])
        value = _new_value(rng, field)
        if field.name.encode() in _WORK_FIELDS:  # work asked for, not a hang
            value = rng.choice([0, -1, 1, 3])
        if field.is_repeated:
            getattr(solver, field.name).append(value)
        else:
            setattr(solver, field.name, value)
        what = f"{field.name} = {value!r}"[:120]
    if solver.test_iter and solver.test_iter[0] == 0 and solver.test_interval > 0:
        refuse = True
    return Mutant(prototxt.to_text(solver).encode(), what, refuse)


# ------------------------------------------------------------------------------------------
# binary protobuf


def binary_structure(message_type):
    def mutate(rng: random.Random, data: bytes) -> Mutant:
        message = message_type()
        message.ParseFromString(data)
        choice = rng.randrange(4)
        if choice == 0:
            return Mutant(_invalid_utf8_string(rng, data), "invalid UTF-8 in a string field")
        if choice == 1:
            removed = _drop_values(rng, message)
            return Mutant(message.SerializeToString(), removed)
        what = set_field(rng, message)
        return Mutant(message.SerializeToString(), what)

    mutate.__name__ = f"{message_type.__name__}_structure"
    return mutate


def _invalid_utf8_string(rng: random.Random, data: bytes) -> bytes:
    """Replace one byte of a name the file holds by 0xff (a length-preserving edit)."""
    names = [b"conv1", b"pool1", b"ip2encode", b"deconv1neur", b"data", b"snap_iter_2.caffemodel", b"tiny_cae",
             b"conv1_W", b"Conv", b"loss"]
    present = [n for n in names if n in data]
    if not present:
        return flip_bytes(rng, data).content
    name = rng.choice(present)
    at = data.index(name) + rng.randrange(len(name))
    return data[:at] + b"\xff" + data[at + 1:]


def _drop_values(rng: random.Random, message) -> str:
    from caffe_cae.proto import caffe_pb2

    blobs = []

    def walk(m):
        for field, value in m.ListFields():
            if field.message_type is None:
                continue
            for item in (value if field.is_repeated else [value]):
                if isinstance(item, caffe_pb2.BlobProto):
                    blobs.append(item)
                else:
                    walk(item)

    walk(message)
    if not blobs:
        return "no blob"
    blob = rng.choice(blobs)
    choice = rng.randrange(4)
    if choice == 0 and len(blob.data):
        del blob.data[-1]
        return "a blob lost its last value"
    if choice == 1:
        blob.shape.dim[:] = [rng.choice([2**31, 10**6, 0, -1, 2**62])] + list(blob.shape.dim)[1:]
        return f"a blob's shape -> {list(blob.shape.dim)}"
    if choice == 2:
        blob.ClearField("shape")
        blob.num, blob.channels, blob.height, blob.width = (rng.choice([1, 2, 0, -1, 2**20]) for _ in range(4))
        return "legacy dims"
    blob.double_data.extend([1.0, 2.0])
    return "double_data added"


# ------------------------------------------------------------------------------------------
# HDF5 trees


def read_tree(data: bytes) -> list:
    """``[(path, value, attrs)]``: value is ``None`` for a group, else the dataset's array."""
    import h5py

    out = []
    with h5py.File(io.BytesIO(data), "r") as handle:
        def visit(name, obj):
            attrs = {k: obj.attrs[k] for k in obj.attrs}
            out.append((name, None if isinstance(obj, h5py.Group) else obj[()], attrs))

        out.append(("", None, {k: handle.attrs[k] for k in handle.attrs}))
        handle.visititems(visit)
    return out


def write_tree(tree: list, special=None) -> bytes:
    """The HDF5 file of ``tree``; ``special(handle)`` adds what plain arrays cannot say."""
    import h5py

    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "f.h5")
        with h5py.File(path, "w", track_order=True) as handle:
            for name, value, attrs in tree:
                if name and value is None:
                    obj = handle.require_group(name)
                elif name:
                    obj = handle.create_dataset(name, data=value)
                else:
                    obj = handle
                for key, attr in attrs.items():
                    obj.attrs[key] = attr
            if special:
                special(handle)
        with open(path, "rb") as f:
            return f.read()


def _odd_array(rng: random.Random, value):
    """A replacement for a dataset's array: other dtypes, shapes and values."""
    value = np.asarray(value)
    numeric = value.dtype.kind in "fiu"  # a string dataset (learned_net) may hold another string
    kind = rng.randrange(14)
    if kind == 0:
        return np.array(b"text"), "a string scalar", numeric
    if kind == 1:
        return np.array([b"a", b"b"] * max(1, len(value) // 2 if value.ndim else 1)), "strings", numeric
    if kind == 2:
        return value.astype(bool), "bool", value.ndim > 0 and value.size > 0
    if kind == 3:
        return value.astype(np.complex64) + 1j, "complex", True
    if kind == 4:
        rec = np.zeros(value.shape, dtype=[("a", "f4"), ("b", "i4")])
        return rec, "compound", True
    if kind == 5:
        return np.float32(1.5), "a scalar", False
    if kind == 6:
        return value.reshape(-1)[:0], "no rows", False
    if kind == 7:
        out = value.astype(np.float64).copy()
        if out.size:
            out.reshape(-1)[rng.randrange(out.size)] = rng.choice([np.nan, np.inf, -1e12, 1e12, -1])
        return out, "one value NaN/inf/huge/negative", False
    if kind == 8:
        return value.reshape(value.shape + (1,)) if value.ndim else value, "an extra axis", False
    if kind == 9:
        return value.astype(np.int8), "int8", False
    if kind == 10:
        return value.astype(np.float16), "float16", False
    if kind == 11:
        return np.zeros((len(value) if value.ndim else 1, 3, 5), np.float32), "another sample shape", False
    if kind == 12:
        return np.full(value.shape, 7.0, np.float32), "constant", False
    return value[:1] if value.ndim else value, "one row", False


def hdf5_structure(rng: random.Random, data: bytes) -> Mutant:
    tree = read_tree(data)
    datasets = [i for i, (name, value, _) in enumerate(tree) if name and value is not None]
    groups = [i for i, (name, value, _) in enumerate(tree) if value is None]
    choice = rng.randrange(8)
    if choice <= 2 and datasets:
        i = rng.choice(datasets)
        name, value, attrs = tree[i]
        new, what, refuse = _odd_array(rng, value)
        tree[i] = (name, new, attrs)
        return Mutant(write_tree(tree), f"dataset '{name}': {what}", refuse)
    if choice == 3 and datasets:
        i = rng.choice(datasets)
        name = tree[i][0]
        del tree[i]
        if rng.random() < 0.5:  # a group where the dataset was
            tree.append((name, None, {}))
            return Mutant(write_tree(tree), f"dataset '{name}' replaced by a group")
        return Mutant(write_tree(tree), f"dataset '{name}' removed")
    if choice == 4 and len(groups) > 1:
        i = rng.choice(groups[1:])
        name = tree[i][0]
        tree = [t for t in tree if not (t[0] == name or t[0].startswith(name + "/"))]
        tree.append((name, np.arange(3, dtype=np.float32), {}))
        return Mutant(write_tree(tree), f"group '{name}' replaced by a dataset")
    if choice == 5:
        i = rng.choice(groups) if groups else 0
        name, value, attrs = tree[i]
        attrs = dict(attrs)
        keys = list(attrs) or ["code_blob", "switches"]
        key = rng.choice(keys + ["code_blob", "switches"])
        attrs[key] = rng.choice(["[[1", "[[-1, 0]]", "[[1e12, 4]]", "label", "nosuch", "", "{}", "[1, 2]",
                                 np.arange(3), 7, b"\xff\xfe", "[[\"a\", 2]]", "[[3, 0]]", "null"])
        tree[i] = (name, value, attrs)
        return Mutant(write_tree(tree), f"attribute {key!r} of '{name or '/'}' -> {attrs[key]!r}"[:120])
    if choice == 6 and datasets:
        i = rng.choice(datasets)
        name, value, attrs = tree[i]
        value = np.asarray(value)
        rows = rng.choice([2**20, 2**28, 2**34])
        shape = (rows,) + tuple(value.shape[1:]) if value.ndim else (rows,)
        del tree[i]

        def huge(handle):
            handle.create_dataset(name, shape=shape, dtype=value.dtype if value.dtype.kind in "fiu" else "f4",
                                  chunks=(1,) + tuple(shape[1:]), compression="gzip")
        count = int(np.prod(shape, dtype=object))
        return Mutant(write_tree(tree, huge), f"dataset '{name}' declared {list(shape)} (compressed, unwritten)",
                      count > INT_MAX)
    return flip_bytes(rng, data) if rng.random() < 0.5 else truncate(rng, data)


__all__ = ["Mutant", "BYTE_MUTATORS", "TEXT_MUTATORS", "net_structure", "solver_structure", "binary_structure",
           "hdf5_structure", "read_tree", "write_tree"]
