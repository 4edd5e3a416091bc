"""The structural half of Caffe's Net: everything decided before any numerics.

* :mod:`.filtering` - phase/level/stage rules (``Net::FilterNet``)
* :mod:`.splits`    - automatic Split layers (``InsertSplits``)
* :mod:`.graph`     - wiring, shapes, loss weights, parameter sharing and the backward plan
  (``Net::Init`` without allocating a single array)
* :mod:`.trained`   - ``ToProto``/``ToHDF5`` and ``CopyTrainedLayersFrom`` of a built net
"""
