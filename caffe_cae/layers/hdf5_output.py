"""HDF5Output: writes its two bottoms to an HDF5 file at the forward."""
from __future__ import annotations

import numpy as np

from caffe_cae.layers.base import Layer
from caffe_cae.layers.registry import register


def legacy_4d(layer: Layer, array: np.ndarray, index: int) -> np.ndarray:
    """The blob as (num, channels, height, width): missing axes are 1, more than 4 refused."""
    if array.ndim > 4:
        raise layer.error(f"Check failed: num_axes() <= 4 ({array.ndim} vs. 4) Cannot use legacy accessors on "
                          f"Blobs with > 4 axes: bottom {index} {list(array.shape)}")
    return array.reshape(array.shape + (1,) * (4 - array.ndim))


@register("HDF5Output")
class HDF5OutputLayer(Layer):
    """Writes bottom 0 as dataset ``data`` and bottom 1 as ``label`` (both reshaped to 4-D with
    Caffe's legacy accessors: (3, 2) is stored as (3, 2, 1, 1)) to
    ``hdf5_output_param.file_name`` (relative to the working directory), in the net's dtype.
    No tops; the backward does nothing.

    Caffe opens the file at setup and completes it when the net is destroyed; here the file is
    written whole at the forward (a temporary file renamed into place), so no half-written file
    is ever visible and merely building the net (``params``, shape inference) writes nothing.
    As in Caffe, a net writes its file once: a second forward would add the datasets again,
    which Caffe's HDF5 call refuses.
    """

    exact_bottoms = 2
    exact_tops = 0

    def setup(self, bottom_shapes):
        self.file_name = self.param.hdf5_output_param.file_name
        if not self.file_name:
            raise self.error("Failed to open HDF5 file: hdf5_output_param.file_name is empty")
        self.written = False
        return []

    def reshape(self, bottom_shapes):
        return []

    def forward(self, bottom, top):
        data = legacy_4d(self, bottom[0].data, 0)
        label = legacy_4d(self, bottom[1].data, 1)
        if data.shape[0] != label.shape[0]:
            raise self.error(f"Check failed: bottom[0]->num() == bottom[1]->num() ({data.shape[0]} vs. "
                             f"{label.shape[0]}): data and label must have the same batch size")
        if self.written:
            raise self.error(f"Failed to make float dataset data: {self.file_name} was written by this net's "
                             "previous forward (Caffe's HDF5Output writes its datasets once per net)")
        import h5py

        from caffe_cae.fileio import atomic_write

        def write(path):
            with h5py.File(path, "w") as h5:
                h5.create_dataset("data", data=data)
                h5.create_dataset("label", data=label)

        atomic_write(self.file_name, write)
        self.written = True

    def backward(self, top, propagate_down, bottom):
        """Caffe's HDF5OutputLayer::Backward_cpu returns at once."""
