"""``python -m caffe_cae`` is the ``caffe-cae`` command."""
import sys

try:
    from caffe_cae.cli import main
except KeyboardInterrupt:  # Ctrl-C while Python loads the command line: one line, as later
    print("caffe-cae: interrupted", file=sys.stderr)
    sys.exit(130)

sys.exit(main())
