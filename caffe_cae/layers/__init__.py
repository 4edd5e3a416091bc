"""All layers, registered by their Caffe type string (importing this package registers them)."""
import importlib

from caffe_cae.layers.registry import LAYERS, create_layer, layer_class, register

# One module per layer family (caffe_cae/layers/<family>.py); importing registers its layers.
FAMILIES = [
    "data",
    "db_data",
    "image_data",
    "window_data",
    "neuron",
    "shape",
    "eltwise",
    "softmax",
    "loss",
    "accuracy",
    "conv",
    "pooling",
    "unpooling",
    "inner_product",
    "neuron_math",
    "reduction",
    "indexing",
    "rearrange",
    "spp",
    "parameter",
    "classification_loss",
    "recurrent",
    "hdf5_output",
    "normalization",
    "affine",
    "prelu",
    # Caffe forks' layers
    "ssd",
    "ssd_detection",
    "segnet",
    "bn",
    "roi_pooling",
    "interp",
    "mobile",
    "python_layer",
    "dense_image_data",
]

for _family in FAMILIES:
    importlib.import_module(f"caffe_cae.layers.{_family}")

__all__ = ["LAYERS", "create_layer", "layer_class", "register"]
