"""disclvlm: Python bindings (ctypes + NumPy) for libdisclvlm.

libdisclvlm turns a LLaVA-style vision-language model into an image-text
embedding model. Example::

    import disclvlm
    with disclvlm.Model("llava-1.5-7b-hf", threads=8) as model:
        s = model.session()
        img = s.encode_image(["cat.jpg", "dog.png"])     # (2, dim) float32
        txt = s.encode_text(["a cat", "a dog"])          # (2, dim) float32
        print(s.score(img, txt))                         # (2, 2) cosines

Every failing library call raises a subclass of DisclvlmError carrying the
library's message. Thread safety: Model and Tokenizer may be shared by
threads; a Session serializes its calls with a lock (``cancel()`` excepted),
so give each thread its own session for parallel work. The GIL is released
during every C call.
"""
from ._errors import (BackendError, BufferTooSmallError, CancelledError, DisclvlmError,
                      DisclvlmIOError, DisclvlmNotImplementedError, FormatError,
                      InvalidArgumentError, NumericError, OutOfMemoryError, UnsupportedError)
from ._core import (Batch, Model, Session, Tokenizer, TrainStats, build_features,
                    library_version)
from ._ffi import library_path

try:
    # Written by the build from meson.build's version (python/_version.py.in).
    from ._version import __version__
except ImportError:
    # The source tree used in place (PYTHONPATH=python with DISCLVLM_LIBRARY)
    # has no _version.py: it is the version of the library it runs with.
    __version__ = library_version()

__all__ = [
    "Model", "Session", "Batch", "Tokenizer", "TrainStats", "library_version", "build_features",
    "library_path", "DisclvlmError", "InvalidArgumentError", "DisclvlmIOError", "FormatError",
    "UnsupportedError", "OutOfMemoryError", "BackendError", "DisclvlmNotImplementedError",
    "NumericError", "CancelledError", "BufferTooSmallError", "__version__",
]
