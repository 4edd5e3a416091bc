"""``python -m caffe_cae`` is the ``caffe-cae`` command."""
import sys

from caffe_cae.cli import main

sys.exit(main())
