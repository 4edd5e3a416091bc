"""pycaffe's interface on top of the interpreter's Net: views, callbacks, batch helpers."""
