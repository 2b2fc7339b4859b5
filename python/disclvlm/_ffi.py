"""Loading libdisclvlm.so.1 and declaring the C signatures (ctypes).

The library is looked up, in order, at:

1. ``disclvlm/_lib/libdisclvlm.so.1`` next to this file (the copy the wheel
   installs, built with the package: pyproject.toml, lib/meson.build; a
   manylinux wheel finds its dependencies through its run path in
   ``disclvlm.libs/``);
2. the path in the ``DISCLVLM_LIBRARY`` environment variable (developers:
   the source tree's package with a build tree's library);
3. ``ctypes.util.find_library("disclvlm")`` (an installed copy).

``ctypes.CDLL`` releases the GIL for the duration of every foreign call, so
long calls (encoding, training) let other Python threads run.
"""
from __future__ import annotations

import ctypes
import ctypes.util
import os
from ctypes import (POINTER, Structure, c_char_p, c_double, c_float, c_int, c_size_t,
                    c_uint, c_uint32, c_uint64, c_void_p)
from typing import List, Optional

# Opaque handles are passed around as void pointers.
_handle = c_void_p
_status = c_int

ABI_VERSION = 1
_SONAME = "libdisclvlm.so.%d" % ABI_VERSION


class TrainStats(Structure):
    """Mirror of ``dlv_train_stats`` (fields may only be appended)."""

    _fields_ = [
        ("struct_size", c_size_t),
        ("loss", c_double),
        ("loss_contrastive", c_double),
        ("loss_ntp", c_double),
        ("grad_norm", c_double),
        ("learning_rate", c_double),
        ("logit_scale", c_double),
        ("step", c_uint64),
        ("tokens", c_uint64),
    ]


def _candidates() -> List[str]:
    here = os.path.dirname(os.path.abspath(__file__))
    out = [os.path.join(here, "_lib", _SONAME)]
    env = os.environ.get("DISCLVLM_LIBRARY")
    if env:
        out.append(env)
    found = ctypes.util.find_library("disclvlm")
    if found:
        out.append(found)
    return out


def _load() -> ctypes.CDLL:
    tried = []
    for path in _candidates():
        # A bare name from find_library is resolved by the dynamic loader.
        if os.sep in path and not os.path.exists(path):
            tried.append("%s (absent)" % path)
            continue
        if os.sep in path:
            path = os.path.abspath(path)
        try:
            return ctypes.CDLL(path)
        except OSError as e:
            tried.append("%s (%s)" % (path, e))
    raise ImportError(
        "disclvlm: cannot load %s; tried: %s. Install the wheel for this platform, "
        "or set DISCLVLM_LIBRARY to the library's path." % (_SONAME, "; ".join(tried) or "nothing"))


lib = _load()
library_path: Optional[str] = getattr(lib, "_name", None)

# name: (restype, argtypes)
_SIGNATURES = {
    "dlv_status_str": (c_char_p, [_status]),
    "dlv_last_error": (c_char_p, []),
    "dlv_clear_error": (None, []),
    "dlv_version": (c_char_p, []),
    "dlv_version_numbers": (None, [POINTER(c_int), POINTER(c_int), POINTER(c_int)]),
    "dlv_build_features": (c_char_p, []),
    "dlv_model_options_new": (_status, [POINTER(_handle)]),
    "dlv_model_options_free": (None, [_handle]),
    "dlv_model_options_set_backend": (_status, [_handle, c_char_p]),
    "dlv_model_options_set_device": (_status, [_handle, c_int]),
    "dlv_model_options_set_weight_dtype": (_status, [_handle, c_char_p]),
    "dlv_model_load": (_status, [c_char_p, _handle, POINTER(_handle)]),
    "dlv_model_free": (None, [_handle]),
    "dlv_model_embed_dim": (_status, [_handle, POINTER(c_size_t)]),
    "dlv_model_describe": (_status, [_handle, c_char_p, c_size_t, POINTER(c_size_t)]),
    "dlv_session_options_new": (_status, [POINTER(_handle)]),
    "dlv_session_options_free": (None, [_handle]),
    "dlv_session_options_set_threads": (_status, [_handle, c_int]),
    "dlv_session_options_set_truncate": (_status, [_handle, c_int]),
    "dlv_session_options_set_compute": (_status, [_handle, c_char_p]),
    "dlv_text_positions": (_status, [_handle, c_char_p, c_int, POINTER(c_size_t),
                                     POINTER(c_size_t)]),
    "dlv_session_new": (_status, [_handle, _handle, POINTER(_handle)]),
    "dlv_session_free": (None, [_handle]),
    "dlv_session_cancel": (_status, [_handle]),
    "dlv_image_from_file": (_status, [c_char_p, POINTER(_handle)]),
    "dlv_image_from_memory": (_status, [c_void_p, c_size_t, POINTER(_handle)]),
    "dlv_image_from_rgb": (_status, [c_void_p, c_uint32, c_uint32, c_size_t, POINTER(_handle)]),
    "dlv_image_free": (None, [_handle]),
    "dlv_encode_images": (_status, [_handle, POINTER(_handle), c_size_t, c_void_p, c_size_t]),
    "dlv_encode_text": (_status, [_handle, POINTER(c_char_p), c_size_t, c_void_p, c_size_t]),
    "dlv_embed_tokens": (_status, [_handle, c_void_p, c_size_t, _handle, c_uint, c_void_p,
                                   c_size_t]),
    "dlv_session_logit_scale": (_status, [_handle, POINTER(c_float)]),
    "dlv_score": (_status, [_handle, c_void_p, c_size_t, c_void_p, c_size_t, c_size_t,
                            c_void_p, c_size_t]),
    "dlv_batch_new": (_status, [POINTER(_handle)]),
    "dlv_batch_free": (None, [_handle]),
    "dlv_batch_add": (_status, [_handle, _handle, c_char_p, c_char_p]),
    "dlv_train_options_new": (_status, [POINTER(_handle)]),
    "dlv_train_options_free": (None, [_handle]),
    "dlv_train_options_set": (_status, [_handle, c_char_p, c_char_p]),
    "dlv_train_begin": (_status, [_handle, _handle]),
    "dlv_train_step": (_status, [_handle, _handle, POINTER(TrainStats)]),
    "dlv_train_checkpoint_save": (_status, [_handle, c_char_p]),
    "dlv_train_checkpoint_load": (_status, [_handle, c_char_p]),
    "dlv_train_save_model": (_status, [_handle, c_char_p, c_char_p]),
    "dlv_adapter_load": (_status, [_handle, c_char_p]),
    "dlv_adapter_save": (_status, [_handle, c_char_p]),
    "dlv_adapter_clear": (_status, [_handle]),
    "dlv_preprocess_options_new": (_status, [POINTER(_handle)]),
    "dlv_preprocess_options_free": (None, [_handle]),
    "dlv_preprocess_options_set_pad_square": (_status, [_handle, c_int]),
    "dlv_preprocess_options_set_exif_rotate": (_status, [_handle, c_int]),
    "dlv_preprocess_options_set_max_pixels": (_status, [_handle, c_uint64]),
    "dlv_model_image_size": (_status, [_handle, POINTER(c_size_t), POINTER(c_size_t),
                                       POINTER(c_size_t)]),
    "dlv_preprocess_image": (_status, [_handle, _handle, _handle, c_void_p, c_size_t]),
    "dlv_image_check": (_status, [_handle, _handle, _handle]),
    "dlv_tokenizer_load": (_status, [c_char_p, POINTER(_handle)]),
    "dlv_tokenizer_free": (None, [_handle]),
    "dlv_tokenize": (_status, [_handle, c_char_p, c_size_t, c_uint, c_void_p, c_size_t,
                               POINTER(c_size_t)]),
    "dlv_detokenize": (_status, [_handle, c_void_p, c_size_t, c_uint, c_void_p, c_size_t,
                                 POINTER(c_size_t)]),
    "dlv_model_tokenizer": (_status, [_handle, POINTER(_handle)]),
    "dlv_tokenizer_vocab_size": (_status, [_handle, POINTER(c_size_t)]),
}

for _name, (_res, _args) in _SIGNATURES.items():
    _fn = getattr(lib, _name)
    _fn.restype = _res
    _fn.argtypes = _args

EMBED_HIDDEN = 1
TOKENIZE_ADD_SPECIAL = 1
DETOKENIZE_SKIP_SPECIAL = 1
