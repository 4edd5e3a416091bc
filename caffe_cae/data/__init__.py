"""Caffe's data path without Caffe: Datum records in LMDB/LevelDB (:mod:`.db`, :mod:`.datum`),
images decoded and resized as OpenCV does (:mod:`.images`, :mod:`.resize`), the
DataTransformer (:mod:`.transformer`), image lists and window files (:mod:`.lists`), batches
loaded ahead in order (:mod:`.prefetch`), and the work of ``convert_imageset`` and
``compute_image_mean`` (:mod:`.convert`, :mod:`.mean`)."""
