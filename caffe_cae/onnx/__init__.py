"""ONNX export of Caffe nets and onnxruntime sessions (CUDA when it works, CPU otherwise)."""
from caffe_cae.onnx.export import export, export_net, save
from caffe_cae.onnx.runtime import make_session, node_placement, run_batched

__all__ = ["export", "export_net", "save", "make_session", "node_placement", "run_batched"]
