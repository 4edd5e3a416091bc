"""caffe-cae: Caffe nets (and the CAE models of Turchenko et al.) without a Caffe build."""
__version__ = "0.1.0"
