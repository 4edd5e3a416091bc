"""caffe-cae: Caffe nets (and the CAE models of Turchenko et al.) without a Caffe build."""
__version__ = "0.1.0"

from caffe_cae.net import TEST, TRAIN, Net, infer_shapes  # noqa: E402

__all__ = ["Net", "TRAIN", "TEST", "infer_shapes"]
