"""Model, Session, Tokenizer and Batch: owners of the C handles."""
from __future__ import annotations

import ctypes
import json
import os
import threading
import weakref
from ctypes import byref, c_char_p, c_float, c_size_t, c_void_p
from dataclasses import dataclass
from typing import (TYPE_CHECKING, Any, Dict, List, Optional, Sequence, Tuple, Union)

import numpy as np

from . import _ffi
from ._errors import InvalidArgumentError, check

if TYPE_CHECKING:  # pragma: no cover
    import numpy.typing as npt

    PathLike = Union[str, "os.PathLike[str]"]
    # A path, encoded PNG/JPEG bytes, an H x W x 3 uint8 array or a PIL image.
    ImageLike = Union[str, "os.PathLike[str]", bytes, bytearray, memoryview, "npt.NDArray[np.uint8]",
                      Any]

_lib = _ffi.lib


def _fspath(path: Any, what: str) -> bytes:
    try:
        p = os.fsencode(path)
    except TypeError:
        raise InvalidArgumentError("%s must be a str or os.PathLike, not %s"
                                   % (what, type(path).__name__)) from None
    if b"\0" in p:
        raise InvalidArgumentError("%s %r contains a NUL character" % (what, path))
    return p


def _closed(what: str) -> InvalidArgumentError:
    return InvalidArgumentError("%s is closed" % what)


class _Owner:
    """A C handle with close(), a context manager and a finalizer."""

    _what = "handle"

    def __init__(self) -> None:
        self._h: Optional[int] = None

    @property
    def closed(self) -> bool:
        """True once close() has freed the handle."""
        return self._h is None

    def _ptr(self) -> int:
        h = self._h
        if h is None:
            raise _closed(self._what)
        return h

    def _free(self, h: int) -> None:  # pragma: no cover - overridden
        raise NotImplementedError

    def close(self) -> None:
        """Frees the C handle; further calls on this object raise. Idempotent."""
        h, self._h = self._h, None
        if h is not None:
            self._free(h)

    def __enter__(self):  # type: ignore[no-untyped-def]
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __del__(self) -> None:
        try:
            self.close()
        except Exception:  # interpreter shutdown: modules may be gone
            pass


# ---- images ---------------------------------------------------------------


def _is_pil_image(x: Any) -> bool:
    mod = type(x).__module__ or ""
    return mod.startswith("PIL.") and hasattr(x, "convert") and hasattr(x, "mode")


def _rgb_array(arr: Any, what: str) -> np.ndarray:
    if not isinstance(arr, np.ndarray):
        raise InvalidArgumentError("%s: not an array" % what)
    if arr.dtype != np.uint8:
        raise InvalidArgumentError("%s: an image array must have dtype uint8, not %s"
                                   % (what, arr.dtype))
    if arr.ndim != 3 or arr.shape[2] != 3:
        raise InvalidArgumentError("%s: an image array must have shape (height, width, 3), not %s"
                                   % (what, tuple(arr.shape)))
    h, w, _ = arr.shape
    if h == 0 or w == 0:
        raise InvalidArgumentError("%s: an image array must not be empty, shape %s"
                                   % (what, tuple(arr.shape)))
    s0, s1, s2 = arr.strides
    if not (s2 == 1 and s1 == 3 and s0 >= 3 * w):
        arr = np.ascontiguousarray(arr)
    return arr


def _expand_images(images: Any) -> List[Any]:
    """A list of single images from one image or a sequence of them."""
    if isinstance(images, (str, bytes, bytearray, memoryview, os.PathLike)) or _is_pil_image(images):
        return [images]
    if isinstance(images, np.ndarray):
        if images.ndim == 4:
            return list(images)
        return [images]
    try:
        return list(images)
    except TypeError:
        raise InvalidArgumentError(
            "images must be a path, bytes, an (H, W, 3) uint8 array, a PIL image, or a "
            "sequence of them, not %s" % type(images).__name__) from None


def _new_image(item: Any, index: int) -> int:
    """A new dlv_image handle for one image (the caller frees it)."""
    what = "image %d" % index
    out = c_void_p()
    if _is_pil_image(item):
        item = np.asarray(item.convert("RGB"))
    if isinstance(item, (str, os.PathLike)):
        check(_lib.dlv_image_from_file(_fspath(item, what), byref(out)))
    elif isinstance(item, (bytes, bytearray, memoryview)):
        data = bytes(item)
        if not data:
            raise InvalidArgumentError("%s: empty bytes" % what)
        check(_lib.dlv_image_from_memory(data, len(data), byref(out)))
    elif isinstance(item, np.ndarray):
        arr = _rgb_array(item, what)
        h, w, _ = arr.shape
        check(_lib.dlv_image_from_rgb(arr.ctypes.data, w, h, arr.strides[0], byref(out)))
    else:
        raise InvalidArgumentError(
            "%s: expected a path, bytes, an (H, W, 3) uint8 array or a PIL image, not %s"
            % (what, type(item).__name__))
    assert out.value is not None
    return out.value


class _Images:
    """dlv_image handles for a list of images, freed on exit."""

    def __init__(self, items: Sequence[Any]) -> None:
        self.handles: List[int] = []
        try:
            for i, item in enumerate(items):
                self.handles.append(_new_image(item, i))
        except BaseException:
            self.free()
            raise

    def array(self):  # type: ignore[no-untyped-def]
        return (c_void_p * len(self.handles))(*self.handles)

    def free(self) -> None:
        hs, self.handles = self.handles, []
        for h in hs:
            _lib.dlv_image_free(h)

    def __enter__(self) -> "_Images":
        return self

    def __exit__(self, *exc: object) -> None:
        self.free()


def _texts(texts: Union[str, Sequence[str]]) -> List[bytes]:
    if isinstance(texts, (str, bytes)):
        texts = [texts]  # type: ignore[list-item]
    out = []
    for i, t in enumerate(texts):
        if isinstance(t, str):
            b = t.encode("utf-8")
        elif isinstance(t, bytes):
            b = t
        else:
            raise InvalidArgumentError("text %d: expected str, not %s" % (i, type(t).__name__))
        if b"\0" in b:
            raise InvalidArgumentError("text %d contains a NUL character, which the C API cannot "
                                       "take" % i)
        out.append(b)
    return out


def _embeddings(x: Any, what: str) -> np.ndarray:
    arr = np.asarray(x)
    if arr.dtype.kind not in "fiu":
        raise InvalidArgumentError("%s: embeddings must be a numeric array, not dtype %s"
                                   % (what, arr.dtype))
    arr = np.ascontiguousarray(arr, dtype=np.float32)
    if arr.ndim == 1:
        arr = arr.reshape(1, -1)
    if arr.ndim != 2:
        raise InvalidArgumentError("%s: embeddings must have shape (n, dim), not %s"
                                   % (what, tuple(arr.shape)))
    return arr


# ---- model ------------------------------------------------------------------


class Model(_Owner):
    """A loaded LLaVA checkpoint (weights memory-mapped, config, tokenizer).

    ``Model(path, backend="cpu", threads=None, device=0, weight_dtype="auto")``
    loads a Hugging Face LlavaForConditionalGeneration directory. ``backend``
    is ``"cpu"``, ``"cuda"`` or ``"auto"``; ``threads`` is the default number
    of CPU worker threads for sessions (None or 0: one per online CPU);
    ``weight_dtype`` holds the weights as stored (``"auto"``) or converted
    once at load to ``"f32"``, ``"bf16"`` or ``"f16"`` (transformers'
    ``torch_dtype``; ``"f32"`` speeds up f32 compute on a bf16 checkpoint at
    twice its memory).

    Thread safety: a Model may be shared by threads. Its own ``encode_image``,
    ``encode_text``, ``score`` ... use one built-in session and therefore run
    one at a time; for parallel work give each thread its own ``session()``.
    Close the model (or leave the ``with`` block) after its sessions; closing
    it closes the sessions still open on it.
    """

    _what = "Model"

    def __init__(self, path: "PathLike", backend: str = "cpu", threads: Optional[int] = None,
                 device: int = 0, weight_dtype: str = "auto") -> None:
        super().__init__()
        self.path = os.fspath(path)
        self.threads = threads
        self._sessions: "weakref.WeakSet[Session]" = weakref.WeakSet()
        self._default: Optional[Session] = None
        self._lock = threading.Lock()
        self._count_lock = threading.Lock()
        self._n_sessions = 0  # C sessions alive on this model
        self._zombie: Optional[int] = None
        self._tokenizer: Optional[Tokenizer] = None
        p = _fspath(path, "model path")
        opts = c_void_p()
        check(_lib.dlv_model_options_new(byref(opts)))
        try:
            check(_lib.dlv_model_options_set_backend(opts, backend.encode("utf-8")))
            check(_lib.dlv_model_options_set_device(opts, int(device)))
            check(_lib.dlv_model_options_set_weight_dtype(opts, str(weight_dtype).encode()))
            h = c_void_p()
            check(_lib.dlv_model_load(p, opts, byref(h)))
            self._h = h.value
        finally:
            _lib.dlv_model_options_free(opts)

    def _free(self, h: int) -> None:
        for s in list(self._sessions):
            s.close()
        if self._tokenizer is not None:
            self._tokenizer._h = None  # borrowed from the model
        # A session the garbage collector has not finalized yet (weak
        # references die first in a reference cycle) still needs the C model:
        # its free then waits for the last session's.
        with self._count_lock:
            if self._n_sessions:
                self._zombie = h
                return
        _lib.dlv_model_free(h)

    def _session_freed(self) -> None:
        with self._count_lock:
            self._n_sessions -= 1
            h = self._zombie if self._n_sessions == 0 else None
            self._zombie = None if h is not None else self._zombie
        if h is not None:
            _lib.dlv_model_free(h)

    def close(self) -> None:
        """Closes the sessions still open on this model, then frees it."""
        super().close()

    def __repr__(self) -> str:
        return "<disclvlm.Model %r%s>" % (self.path, " closed" if self.closed else "")

    @property
    def embed_dim(self) -> int:
        """The length of every embedding (the language model's hidden size)."""
        n = c_size_t()
        check(_lib.dlv_model_embed_dim(self._ptr(), byref(n)))
        return n.value

    @property
    def image_size(self) -> Tuple[int, int, int]:
        """(channels, height, width) of the pixels the vision tower sees."""
        c, h, w = c_size_t(), c_size_t(), c_size_t()
        check(_lib.dlv_model_image_size(self._ptr(), byref(c), byref(h), byref(w)))
        return (c.value, h.value, w.value)

    def describe(self) -> Dict[str, Any]:
        """The model's description (architectures, sizes, dtypes, counts) as a dict."""
        ptr = self._ptr()
        needed = c_size_t()
        check(_lib.dlv_model_describe(ptr, None, 0, byref(needed)))
        buf = ctypes.create_string_buffer(needed.value)
        check(_lib.dlv_model_describe(ptr, buf, needed.value, byref(needed)))
        return json.loads(buf.value.decode("utf-8"))

    @property
    def tokenizer(self) -> "Tokenizer":
        """The model's tokenizer (owned by the model)."""
        if self._tokenizer is None or self._tokenizer.closed:
            h = c_void_p()
            check(_lib.dlv_model_tokenizer(self._ptr(), byref(h)))
            self._tokenizer = Tokenizer._borrowed(h.value, self)
        return self._tokenizer

    def session(self, threads: Optional[int] = None, truncate: bool = False,
                compute: str = "f32") -> "Session":
        """A new Session on this model (threads: None = the model's default;
        truncate: cut texts longer than the model's positions instead of
        raising InvalidArgumentError; compute: "f32" or "bf16", what the
        matrix products compute in)."""
        return Session(self, threads=self.threads if threads is None else threads,
                       truncate=truncate, compute=compute)

    def preprocess(self, image: "ImageLike", pad_square: bool = False, exif_rotate: bool = False,
                   max_pixels: Optional[int] = None) -> np.ndarray:
        """The (channels, height, width) float32 pixels the vision tower sees
        for one image, exactly as the model's Hugging Face image processor."""
        ptr = self._ptr()
        shape = self.image_size
        opts = c_void_p()
        check(_lib.dlv_preprocess_options_new(byref(opts)))
        try:
            check(_lib.dlv_preprocess_options_set_pad_square(opts, 1 if pad_square else 0))
            check(_lib.dlv_preprocess_options_set_exif_rotate(opts, 1 if exif_rotate else 0))
            if max_pixels is not None:
                check(_lib.dlv_preprocess_options_set_max_pixels(opts, int(max_pixels)))
            out = np.empty(shape, dtype=np.float32)
            if isinstance(image, np.ndarray) and image.ndim == 4:
                raise InvalidArgumentError("preprocess takes one image, not an array of shape %s"
                                           % (tuple(image.shape),))
            with _Images([image]) as im:
                check(_lib.dlv_preprocess_image(ptr, im.handles[0], opts, out.ctypes.data,
                                                out.size))
            return out
        finally:
            _lib.dlv_preprocess_options_free(opts)

    def check_image(self, image: "ImageLike") -> None:
        """Raises the error encoding `image` would raise (it cannot be read,
        is not a PNG or JPEG, is too large, ...); returns None when the
        model can encode it. Nothing is kept (dlv_image_check)."""
        ptr = self._ptr()
        with _Images([image]) as im:
            check(_lib.dlv_image_check(ptr, im.handles[0], None))

    # Conveniences on a built-in session, serialized by a lock.

    def _default_session(self) -> "Session":
        s = self._default
        if s is None or s.closed:
            s = self._default = self.session()
        return s

    def encode_image(self, images: Any) -> np.ndarray:
        """Session.encode_image on the model's built-in session."""
        with self._lock:
            return self._default_session().encode_image(images)

    def encode_text(self, texts: Union[str, Sequence[str]]) -> np.ndarray:
        """Session.encode_text on the model's built-in session."""
        with self._lock:
            return self._default_session().encode_text(texts)

    def score(self, image_embeddings: Any, text_embeddings: Any, logits: bool = False) -> np.ndarray:
        """Session.score on the model's built-in session."""
        with self._lock:
            return self._default_session().score(image_embeddings, text_embeddings, logits=logits)


# ---- session ------------------------------------------------------------------


@dataclass
class TrainStats:
    """What one training step did (``dlv_train_stats``)."""

    loss: float
    loss_contrastive: float
    loss_ntp: float
    grad_norm: float
    learning_rate: float
    logit_scale: float
    step: int
    tokens: int


class Session(_Owner):
    """A workspace on a Model: the adapter, the optimizer, the compute threads.

    Thread safety: a Session may be shared between threads, but its calls are
    serialized by a lock (the C session is used by one thread at a time);
    ``cancel()`` is the one method that does not wait and may be called from
    any thread while another thread encodes. The GIL is released during
    every C call, so other Python threads run meanwhile.
    """

    _what = "Session"

    def __init__(self, model: Model, threads: Optional[int] = None,
                 truncate: bool = False, compute: str = "f32") -> None:
        super().__init__()
        self.model = model  # keeps the model alive while the session is
        self._lock = threading.Lock()
        self._cancel_lock = threading.Lock()
        opts = c_void_p()
        check(_lib.dlv_session_options_new(byref(opts)))
        try:
            check(_lib.dlv_session_options_set_threads(opts, int(threads or 0)))
            check(_lib.dlv_session_options_set_truncate(opts, 1 if truncate else 0))
            check(_lib.dlv_session_options_set_compute(opts, str(compute).encode()))
            h = c_void_p()
            with model._count_lock:
                check(_lib.dlv_session_new(model._ptr(), opts, byref(h)))
                model._n_sessions += 1
            self._h = h.value
        finally:
            _lib.dlv_session_options_free(opts)
        model._sessions.add(self)

    def _free(self, h: int) -> None:
        _lib.dlv_session_free(h)
        self.model._session_freed()

    def close(self) -> None:
        """Frees the session (waits for a call in progress on another thread)."""
        with self._lock, self._cancel_lock:
            super().close()

    def __repr__(self) -> str:
        return "<disclvlm.Session on %r%s>" % (self.model.path, " closed" if self.closed else "")

    def cancel(self) -> None:
        """Asks the running (or next) long call to stop with CancelledError."""
        with self._cancel_lock:
            if self._h is not None:
                check(_lib.dlv_session_cancel(self._h))

    @property
    def embed_dim(self) -> int:
        """The model's embedding length."""
        self._ptr()
        return self.model.embed_dim

    def encode_image(self, images: Any) -> np.ndarray:
        """L2-normalised embeddings of images, float32 of shape (n, dim).

        ``images`` is one image or a sequence of images, each a path (str or
        os.PathLike) to a PNG/JPEG file, its encoded bytes, an (H, W, 3) uint8
        RGB array (a (N, H, W, 3) array is N images) or a PIL image (converted
        to RGB). The result is always 2-D, one row per image.
        """
        self._ptr()  # a closed session raises before anything else
        items = _expand_images(images)
        dim = self.embed_dim
        out = np.empty((len(items), dim), dtype=np.float32)
        if not items:
            return out
        with _Images(items) as im, self._lock:
            arr = im.array()
            check(_lib.dlv_encode_images(self._ptr(), arr, len(items), out.ctypes.data, out.size))
        return out

    def encode_text(self, texts: Union[str, Sequence[str]]) -> np.ndarray:
        """L2-normalised embeddings of texts, float32 of shape (n, dim).

        ``texts`` is a str or a sequence of str (UTF-8 without NUL characters).
        """
        self._ptr()
        bs = _texts(texts)
        dim = self.embed_dim
        out = np.empty((len(bs), dim), dtype=np.float32)
        if not bs:
            return out
        arr = (c_char_p * len(bs))(*bs)
        with self._lock:
            check(_lib.dlv_encode_text(self._ptr(), arr, len(bs), out.ctypes.data, out.size))
        return out

    def text_positions(self, text: str, after_image: bool = False) -> Tuple[int, int]:
        """(positions, limit): how long the sequence the model runs for
        ``text`` is (its text prompt; with ``after_image``, an image prompt
        followed by it, as training's next-token loss runs a long caption)
        and the model's max_position_embeddings. A text longer than the
        limit raises InvalidArgumentError when encoded, unless the session
        truncates."""
        (b,) = _texts(text)
        n, m = c_size_t(), c_size_t()
        with self._lock:
            check(_lib.dlv_text_positions(self._ptr(), b, 1 if after_image else 0, byref(n),
                                          byref(m)))
        return n.value, m.value

    def embed_tokens(self, ids: Sequence[int], image: Any = None, hidden: bool = False) -> np.ndarray:
        """The final hidden state at the last position of exactly these token
        ids (no BOS or prompt added), float32 of shape (dim,); L2-normalised
        unless ``hidden``. One id equal to the model's image_token_index
        expands to ``image``'s features; ``image`` must be given exactly then."""
        self._ptr()
        a = np.ascontiguousarray(np.asarray(ids, dtype=np.int64))
        if a.ndim != 1:
            raise InvalidArgumentError("ids must be 1-D, not shape %s" % (tuple(a.shape),))
        if a.size and (a.min() < -2**31 or a.max() >= 2**31):
            raise InvalidArgumentError("ids must fit in int32")
        a32 = a.astype(np.int32)
        out = np.empty(self.embed_dim, dtype=np.float32)
        flags = _ffi.EMBED_HIDDEN if hidden else 0
        with _Images([] if image is None else [image]) as im, self._lock:
            img = im.handles[0] if im.handles else None
            check(_lib.dlv_embed_tokens(self._ptr(), a32.ctypes.data, a32.size, img, flags,
                                        out.ctypes.data, out.size))
        return out

    @property
    def logit_scale(self) -> float:
        """exp(logit_scale) of the adapter (1/0.07 without one)."""
        v = c_float()
        with self._lock:
            check(_lib.dlv_session_logit_scale(self._ptr(), byref(v)))
        return v.value

    def score(self, image_embeddings: Any, text_embeddings: Any, logits: bool = False) -> np.ndarray:
        """Cosine similarities, float32 of shape (n_img, n_txt): out[i, j] =
        cos(image i, text j). Inputs are (n, dim) arrays (1-D is one row).
        ``logits`` multiplies by ``logit_scale``."""
        self._ptr()
        img = _embeddings(image_embeddings, "image_embeddings")
        txt = _embeddings(text_embeddings, "text_embeddings")
        if img.shape[1] != txt.shape[1]:
            raise InvalidArgumentError("score: image embeddings have dim %d but text embeddings %d"
                                       % (img.shape[1], txt.shape[1]))
        out = np.empty((img.shape[0], txt.shape[0]), dtype=np.float32)
        if out.size == 0:
            return out
        with self._lock:
            check(_lib.dlv_score(self._ptr(), img.ctypes.data, img.shape[0], txt.ctypes.data,
                                 txt.shape[0], img.shape[1], out.ctypes.data, out.size))
        if logits:
            out *= np.float32(self.logit_scale)
        return out

    def save_model(self, path: "PathLike", dtype: Optional[str] = None) -> None:
        """Writes the model as it is being trained (the "projector", "llm" and
        "vision" sets change its own weights) as a Hugging Face LLaVA directory
        that Model() and transformers load. ``dtype`` None keeps each tensor's
        dtype; "f32", "bf16" or "f16" converts all float tensors."""
        p = _fspath(path, "model path")
        d = None if dtype is None else str(dtype).encode("utf-8")
        with self._lock:
            check(_lib.dlv_train_save_model(self._ptr(), p, d))

    def load_adapter(self, path: "PathLike") -> None:
        """Loads an adapter directory (LoRA, soft prompts, logit scale, prompts);
        the session's adapter is replaced only on success."""
        p = _fspath(path, "adapter path")
        with self._lock:
            check(_lib.dlv_adapter_load(self._ptr(), p))

    def save_adapter(self, path: "PathLike") -> None:
        """Saves the session's adapter (or the defaults) into a directory."""
        p = _fspath(path, "adapter path")
        with self._lock:
            check(_lib.dlv_adapter_save(self._ptr(), p))

    def clear_adapter(self) -> None:
        """Back to the model's default prompts, no LoRA, no soft prompts."""
        with self._lock:
            check(_lib.dlv_adapter_clear(self._ptr()))

    def train_begin(self, **options: Any) -> None:
        """Starts (or restarts) training from the session's adapter (or the
        model's defaults) with the given training options.

        Each keyword is a ``dlv_train_options_set`` key (``lr``, ``optimizer``,
        ``train``, ``lora_rank``, ``schedule``, ``total_steps``, ``seed``, ...;
        see docs/training.md). Values are passed as ``str(value)``, except
        that bools become ``"1"`` / ``"0"`` and a list or tuple of names
        becomes a comma list (``train=["soft", "lora"]``). None leaves a key at
        its default. An unknown key or a bad value raises InvalidArgumentError
        with the library's message. ``train_step`` begins with the defaults
        when this was not called.
        """
        self._ptr()
        pairs = []
        for key, value in options.items():
            if value is None:
                continue
            if isinstance(value, bool):
                text = "1" if value else "0"
            elif isinstance(value, (list, tuple)):
                text = ",".join(str(v) for v in value)
            else:
                text = str(value)
            k, v = key.encode("utf-8"), text.encode("utf-8")
            if b"\0" in k or b"\0" in v:
                raise InvalidArgumentError("train_begin: option %s contains a NUL character"
                                           % key)
            pairs.append((k, v))
        opts = c_void_p()
        check(_lib.dlv_train_options_new(byref(opts)))
        try:
            for k, v in pairs:
                check(_lib.dlv_train_options_set(opts, k, v))
            with self._lock:
                check(_lib.dlv_train_begin(self._ptr(), opts))
        finally:
            _lib.dlv_train_options_free(opts)

    def train_step(self, batch: "Batch") -> TrainStats:
        """One optimizer step (forward, backward, update) on a Batch; returns
        its TrainStats. The session's adapter then holds the updated state
        (encode with it, or ``save_adapter``). Begins training with the
        default options unless ``train_begin`` was called. A model without a
        tokenizer raises UnsupportedError (the prompts need one)."""
        if not isinstance(batch, Batch):
            raise InvalidArgumentError("train_step: expected a Batch, not %s"
                                       % type(batch).__name__)
        st = _ffi.TrainStats()
        st.struct_size = ctypes.sizeof(st)
        with self._lock:
            check(_lib.dlv_train_step(self._ptr(), batch._ptr(), byref(st)))
        return TrainStats(st.loss, st.loss_contrastive, st.loss_ntp, st.grad_norm,
                          st.learning_rate, st.logit_scale, int(st.step), int(st.tokens))

    def checkpoint_save(self, path: "PathLike") -> None:
        """Saves a training checkpoint into a directory: the adapter plus the
        optimizer state, step and RNG state (each file written atomically)."""
        p = _fspath(path, "checkpoint path")
        with self._lock:
            check(_lib.dlv_train_checkpoint_save(self._ptr(), p))

    def checkpoint_load(self, path: "PathLike") -> None:
        """Loads a training checkpoint (checkpoint_save); continuing from it
        gives bit-identical steps to an uninterrupted run."""
        p = _fspath(path, "checkpoint path")
        with self._lock:
            check(_lib.dlv_train_checkpoint_load(self._ptr(), p))


# ---- batch --------------------------------------------------------------------


class Batch(_Owner):
    """Training examples: (image, caption, optional long caption).

    The batch keeps its own copies of the images until it is closed. Not
    thread-safe: fill it from one thread.
    """

    _what = "Batch"

    def __init__(self, examples: Optional[Sequence[Tuple[Any, ...]]] = None) -> None:
        super().__init__()
        self._images: List[int] = []
        h = c_void_p()
        check(_lib.dlv_batch_new(byref(h)))
        self._h = h.value
        for ex in examples or ():
            self.add(*ex)

    def _free(self, h: int) -> None:
        _lib.dlv_batch_free(h)
        imgs, self._images = self._images, []
        for im in imgs:
            _lib.dlv_image_free(im)

    def __len__(self) -> int:
        return len(self._images)

    def add(self, image: Any, caption: str, long_caption: Optional[str] = None) -> None:
        """Adds one example (image as in Session.encode_image, one image)."""
        ptr = self._ptr()
        cap = _texts([caption])[0]
        long_b = None if long_caption is None else _texts([long_caption])[0]
        if isinstance(image, np.ndarray) and image.ndim == 4:
            raise InvalidArgumentError("Batch.add takes one image, not an array of shape %s"
                                       % (tuple(image.shape),))
        im = _new_image(image, len(self._images))
        try:
            check(_lib.dlv_batch_add(ptr, im, cap, long_b))
        except BaseException:
            _lib.dlv_image_free(im)
            raise
        self._images.append(im)


# ---- tokenizer ------------------------------------------------------------------


class Tokenizer(_Owner):
    """A Hugging Face tokenizer.json / SentencePiece tokenizer.model, exact to
    the id with the ``tokenizers`` library. Immutable: thread-safe.

    ``Tokenizer(path)`` loads one (a model directory or the file); a model's
    own is ``model.tokenizer``.
    """

    _what = "Tokenizer"

    def __init__(self, path: "PathLike") -> None:
        super().__init__()
        self._owner: Optional[Model] = None
        h = c_void_p()
        check(_lib.dlv_tokenizer_load(_fspath(path, "tokenizer path"), byref(h)))
        self._h = h.value

    @classmethod
    def _borrowed(cls, h: Optional[int], model: Model) -> "Tokenizer":
        t = cls.__new__(cls)
        _Owner.__init__(t)
        t._owner = model
        t._h = h
        return t

    def _free(self, h: int) -> None:
        if self._owner is None:
            _lib.dlv_tokenizer_free(h)

    @property
    def vocab_size(self) -> int:
        """1 + the largest model or added-token id."""
        n = c_size_t()
        check(_lib.dlv_tokenizer_vocab_size(self._ptr(), byref(n)))
        return n.value

    def encode(self, text: str, add_special: bool = False) -> np.ndarray:
        """Token ids (int32) of a text; add_special adds BOS/EOS per the template."""
        ptr = self._ptr()
        b = text.encode("utf-8") if isinstance(text, str) else bytes(text)
        flags = _ffi.TOKENIZE_ADD_SPECIAL if add_special else 0
        n = c_size_t()
        check(_lib.dlv_tokenize(ptr, b, len(b), flags, None, 0, byref(n)))
        ids = np.empty(n.value, dtype=np.int32)
        if n.value:
            check(_lib.dlv_tokenize(ptr, b, len(b), flags, ids.ctypes.data, ids.size, byref(n)))
        return ids

    def decode(self, ids: Sequence[int], skip_special: bool = False) -> str:
        """The text of token ids."""
        ptr = self._ptr()
        a = np.ascontiguousarray(np.asarray(ids, dtype=np.int32).reshape(-1))
        flags = _ffi.DETOKENIZE_SKIP_SPECIAL if skip_special else 0
        needed = c_size_t()
        check(_lib.dlv_detokenize(ptr, a.ctypes.data, a.size, flags, None, 0, byref(needed)))
        buf = ctypes.create_string_buffer(needed.value)
        check(_lib.dlv_detokenize(ptr, a.ctypes.data, a.size, flags, buf, needed.value,
                                  byref(needed)))
        return buf.raw[:needed.value - 1].decode("utf-8", "replace")


def library_version() -> str:
    """The loaded libdisclvlm's version string (e.g. "0.1.0")."""
    v = _lib.dlv_version()
    return v.decode() if v else ""


def build_features() -> List[str]:
    """The features the loaded library was built with, e.g. ["cpu", "cuda"]."""
    v = _lib.dlv_build_features()
    return [f for f in (v.decode() if v else "").split(",") if f]


__all__ = ["Model", "Session", "Batch", "Tokenizer", "TrainStats", "library_version",
           "build_features"]
