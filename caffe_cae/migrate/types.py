"""Layer type tables: V1 enum -> current type string, V0 type string -> V1 enum.

``V1_TYPE_NAMES`` is Caffe's ``UpgradeV1LayerType`` (BVLC master) plus a documented mapping for
the enum values that only Hyeonwoo Noh's 2015 fork knows (``NOH_TYPE_NAMES``).  No BVLC release
has string types for those layers, so the names below are ours:

* ``UNPOOLING`` -> ``"Unpooling"`` (the name most ports of Noh's layer register) with
  ``unpooling_param`` (current-syntax field 10044);
* ``BN`` -> ``"BN"`` with ``bn_param`` (10045) -- Noh's batch normalisation, *not* BVLC's
  ``"BatchNorm"`` (different parameters and blobs);
* ``CROP`` -> ``"NohCrop"``: the fork's crop (from Jon Long's "future" branch) has no
  parameters and computes its offsets itself, unlike BVLC's ``"Crop"`` (explicit ``offset``,
  default 0), so it must not silently become a BVLC Crop;
* the rest keep the fork's class names: ``ELTWISE_ACCURACY`` -> ``"EltwiseAccuracy"``
  (``eltwise_accuracy_param``), ``RED_SOFTMAX_LOSS`` -> ``"RedSoftmaxWithLoss"``,
  ``RED_ACCURACY`` -> ``"RedAccuracy"``, ``BIN_ACCURACY`` -> ``"BinAccuracy"``
  (``binary_accuracy_param``), ``IMAGE_SEG_DATA`` -> ``"ImageSegData"`` (``image_data_param``),
  ``WINDOW_SEG_DATA`` -> ``"WindowSegData"``, ``WINDOW_INST_SEG_DATA`` ->
  ``"WindowInstSegData"``, ``WINDOW_CLS_DATA`` -> ``"WindowClsData"``, ``WINDOW_SEG_BINARY`` ->
  ``"WindowSegBinary"``, ``SELECT_SEG_BINARY`` -> ``"SelectSegBinary"``, ``DROPOUT_CHANNEL`` ->
  ``"DropoutChannel"``.
"""
from __future__ import annotations

from caffe_cae.proto import caffe_pb2

# Caffe's UpgradeV1LayerType, in its order.
BVLC_TYPE_NAMES: dict[str, str] = {
    "NONE": "",
    "ABSVAL": "AbsVal",
    "ACCURACY": "Accuracy",
    "ARGMAX": "ArgMax",
    "BNLL": "BNLL",
    "CONCAT": "Concat",
    "CONTRASTIVE_LOSS": "ContrastiveLoss",
    "CONVOLUTION": "Convolution",
    "DECONVOLUTION": "Deconvolution",
    "DATA": "Data",
    "DROPOUT": "Dropout",
    "DUMMY_DATA": "DummyData",
    "EUCLIDEAN_LOSS": "EuclideanLoss",
    "ELTWISE": "Eltwise",
    "EXP": "Exp",
    "FLATTEN": "Flatten",
    "HDF5_DATA": "HDF5Data",
    "HDF5_OUTPUT": "HDF5Output",
    "HINGE_LOSS": "HingeLoss",
    "IM2COL": "Im2col",
    "IMAGE_DATA": "ImageData",
    "INFOGAIN_LOSS": "InfogainLoss",
    "INNER_PRODUCT": "InnerProduct",
    "LRN": "LRN",
    "MEMORY_DATA": "MemoryData",
    "MULTINOMIAL_LOGISTIC_LOSS": "MultinomialLogisticLoss",
    "MVN": "MVN",
    "POOLING": "Pooling",
    "POWER": "Power",
    "RELU": "ReLU",
    "SIGMOID": "Sigmoid",
    "SIGMOID_CROSS_ENTROPY_LOSS": "SigmoidCrossEntropyLoss",
    "SILENCE": "Silence",
    "SOFTMAX": "Softmax",
    "SOFTMAX_LOSS": "SoftmaxWithLoss",
    "SPLIT": "Split",
    "SLICE": "Slice",
    "TANH": "TanH",
    "WINDOW_DATA": "WindowData",
    "THRESHOLD": "Threshold",
}

# Noh's fork (HyeonwooNoh/caffe 2015); see the module docstring for why these names.
NOH_TYPE_NAMES: dict[str, str] = {
    "CROP": "NohCrop",
    "ELTWISE_ACCURACY": "EltwiseAccuracy",
    "UNPOOLING": "Unpooling",
    "BN": "BN",
    "RED_SOFTMAX_LOSS": "RedSoftmaxWithLoss",
    "RED_ACCURACY": "RedAccuracy",
    "IMAGE_SEG_DATA": "ImageSegData",
    "WINDOW_SEG_DATA": "WindowSegData",
    "WINDOW_INST_SEG_DATA": "WindowInstSegData",
    "BIN_ACCURACY": "BinAccuracy",
    "WINDOW_CLS_DATA": "WindowClsData",
    "WINDOW_SEG_BINARY": "WindowSegBinary",
    "SELECT_SEG_BINARY": "SelectSegBinary",
    "DROPOUT_CHANNEL": "DropoutChannel",
}

#: V1 ``LayerType`` enum name -> current ``type`` string (BVLC's table + Noh's fork).
V1_TYPE_NAMES: dict[str, str] = {**BVLC_TYPE_NAMES, **NOH_TYPE_NAMES}

#: Caffe's UpgradeV0LayerType: V0 type string -> V1 enum name.
V0_TYPE_NAMES: dict[str, str] = {
    "accuracy": "ACCURACY",
    "bnll": "BNLL",
    "concat": "CONCAT",
    "conv": "CONVOLUTION",
    "data": "DATA",
    "dropout": "DROPOUT",
    "euclidean_loss": "EUCLIDEAN_LOSS",
    "flatten": "FLATTEN",
    "hdf5_data": "HDF5_DATA",
    "hdf5_output": "HDF5_OUTPUT",
    "im2col": "IM2COL",
    "images": "IMAGE_DATA",
    "infogain_loss": "INFOGAIN_LOSS",
    "innerproduct": "INNER_PRODUCT",
    "lrn": "LRN",
    "multinomial_logistic_loss": "MULTINOMIAL_LOGISTIC_LOSS",
    "pool": "POOLING",
    "relu": "RELU",
    "sigmoid": "SIGMOID",
    "softmax": "SOFTMAX",
    "softmax_loss": "SOFTMAX_LOSS",
    "split": "SPLIT",
    "tanh": "TANH",
    "window_data": "WINDOW_DATA",
}


def _check_tables() -> None:
    """Every V1 enum value of our schema has a type string (import-time guard)."""
    enum = caffe_pb2.V1LayerParameter.LayerType
    missing = [name for name in enum.keys() if name not in V1_TYPE_NAMES]
    if missing:  # pragma: no cover - a schema edit without a table edit
        raise RuntimeError(f"V1 layer types without a migration type string: {missing}")


_check_tables()


def v1_type_name(enum_value: int) -> str:
    """The current type string for a V1 ``LayerType`` number (KeyError if unknown)."""
    return V1_TYPE_NAMES[caffe_pb2.V1LayerParameter.LayerType.Name(enum_value)]
