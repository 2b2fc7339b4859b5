"""Tests of the installed disclvlm package (ctypes + NumPy over libdisclvlm).

Run against the installed package in a fresh venv: by run_python_tests.sh
(meson test `python`: the package copied in with the build tree's library)
and by wheel_ci.sh (CI: the repaired manylinux wheel). The
embeddings are compared bit for bit with the `disclvlm encode-image /
encode-text` CLI of the same build (same library code, same inputs, same
thread count).
"""
import gc
import os
import shutil
import subprocess
import sys
import threading

import numpy as np
import pytest

import disclvlm
from conftest import gen_tiny

CLI = os.environ.get("DISCLVLM_CLI")
TEXTS = ["a cat", "a dog sitting on a red mat", "x", "unicode: é, 猫, 🙂", ""]


def rss_bytes():
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def assert_batch_close(got, want):
    """The same inputs in another batch (other companions, count, padding):
    the library promises equality within 1e-6 + 1e-6 |want| (docs/models.md,
    "Batch independence"), not bit identity: OpenBLAS may block a GEMM
    differently for another row count."""
    assert got.shape == want.shape
    assert np.allclose(got, want, rtol=1e-6, atol=1e-6), np.abs(got - want).max()


def run_cli(*args):
    if not CLI:
        pytest.skip("DISCLVLM_CLI is not set (run through run_python_tests.sh)")
    assert os.path.exists(CLI), "DISCLVLM_CLI=%s does not exist" % CLI
    p = subprocess.run([CLI, *args], capture_output=True, text=True, timeout=300)
    assert p.returncode == 0, p.stderr
    return p


# ---- the package itself ---------------------------------------------------------


def test_installed_package_bundles_the_library():
    lib = disclvlm.library_path
    assert lib and os.path.exists(lib), lib
    if os.environ.get("DISCLVLM_EXPECT_BUNDLED") == "1":
        pkg = os.path.dirname(os.path.abspath(disclvlm.__file__))
        assert os.path.dirname(os.path.abspath(lib)) == os.path.join(pkg, "_lib"), lib
        # An installed package, not the source tree's python/ directory.
        assert "site-packages" in pkg, pkg
    assert disclvlm.library_version() == disclvlm.__version__
    assert "cpu" in disclvlm.build_features()


def test_model_properties(model):
    assert model.embed_dim == 64
    assert model.image_size == (3, 28, 28)
    d = model.describe()
    assert d["architectures"] == ["LlavaForConditionalGeneration"]
    tok = model.tokenizer
    ids = tok.encode("a cat")
    assert ids.dtype == np.int32 and ids.ndim == 1 and ids.size > 0
    assert tok.decode(ids) == "a cat"
    with_bos = tok.encode("a cat", add_special=True)
    assert with_bos.size == ids.size + 1
    assert tok.vocab_size > int(ids.max())


def test_standalone_tokenizer(model_dir):
    with disclvlm.Tokenizer(model_dir) as tok:
        assert tok.decode(tok.encode("hello world")) == "hello world"
    assert tok.closed
    with pytest.raises(disclvlm.InvalidArgumentError, match="Tokenizer is closed"):
        tok.encode("x")
    with pytest.raises(disclvlm.DisclvlmError) as e:
        disclvlm.Tokenizer("/nonexistent/tokenizer.json")
    assert "/nonexistent" in str(e.value)


# ---- exact agreement with the C library (the CLI) -------------------------------


def test_encode_text_matches_cli(model_dir, session, tmp_path):
    out = tmp_path / "t.npy"
    run_cli("encode-text", "--model", model_dir, "--threads", "1", "--out", str(out), "--",
            *TEXTS)
    want = np.load(out)
    got = session.encode_text(TEXTS)
    assert got.dtype == np.float32 and got.shape == (len(TEXTS), 64)
    assert np.array_equal(got, want), np.abs(got - want).max()
    np.testing.assert_allclose(np.linalg.norm(got, axis=1), 1.0, rtol=1e-5)


def test_encode_image_matches_cli(model_dir, session, images, tmp_path):
    paths, _ = images
    out = tmp_path / "i.npy"
    run_cli("encode-image", "--model", model_dir, "--threads", "1", "--out", str(out), "--",
            *paths)
    want = np.load(out)
    got = session.encode_image(paths)
    assert got.dtype == np.float32 and got.shape == (len(paths), 64)
    assert np.array_equal(got, want), np.abs(got - want).max()


def test_qwen2_siglip_matches_cli(qwen_dir, images, tmp_path):
    paths, _ = images
    run_cli("encode-image", "--model", qwen_dir, "--threads", "1", "--out",
            str(tmp_path / "i.npy"), "--", *paths)
    run_cli("encode-text", "--model", qwen_dir, "--threads", "1", "--out",
            str(tmp_path / "t.npy"), "--", *TEXTS)
    with disclvlm.Model(qwen_dir, threads=1) as m:
        assert np.array_equal(m.encode_image(paths), np.load(tmp_path / "i.npy"))
        assert np.array_equal(m.encode_text(TEXTS), np.load(tmp_path / "t.npy"))


def test_image_sources_agree(session, images):
    """Every source of the same pixels gives the same embedding: bit for bit
    in a batch of the same size, within the batch tolerance across sizes."""
    paths, arrays = images
    from_path = session.encode_image(paths[:3])
    single = [session.encode_image(p) for p in paths[:3]]
    for i in range(3):
        assert_batch_close(single[i], from_path[i:i + 1])
    with open(paths[0], "rb") as f:
        data = f.read()
    assert np.array_equal(session.encode_image(data), single[0])
    assert np.array_equal(session.encode_image(bytearray(data)), single[0])
    assert np.array_equal(session.encode_image(arrays), from_path)
    # A single array, a non-contiguous view and a (N, H, W, 3) batch.
    assert np.array_equal(session.encode_image(arrays[1]), single[1])
    wide = np.zeros((17, 80, 3), np.uint8)
    wide[:, ::2] = arrays[1]
    view = wide[:, ::2]
    assert not view.flags.c_contiguous
    assert np.array_equal(session.encode_image(view), single[1])
    stacked = np.stack([arrays[0], arrays[0]])
    assert np.array_equal(session.encode_image(stacked),
                          session.encode_image([paths[0], paths[0]]))
    assert_batch_close(session.encode_image(stacked), from_path[[0, 0]])
    import pathlib
    assert np.array_equal(session.encode_image(pathlib.Path(paths[2])), single[2])
    assert session.encode_image([]).shape == (0, 64)


def test_pil_image(session, images):
    Image = pytest.importorskip("PIL.Image")
    paths, arrays = images
    im = Image.fromarray(arrays[0], "RGB")
    assert np.array_equal(session.encode_image(im), session.encode_image(paths[0]))


def test_batch_independence_and_model_convenience(model, session):
    one_by_one = np.concatenate([session.encode_text(t) for t in TEXTS])
    batched = session.encode_text(TEXTS)
    assert_batch_close(one_by_one, batched)
    assert np.array_equal(model.encode_text(TEXTS), batched)


def test_score(session, images):
    paths, _ = images
    img = session.encode_image(paths)
    txt = session.encode_text(TEXTS)
    s = session.score(img, txt)
    assert s.shape == (len(paths), len(TEXTS)) and s.dtype == np.float32
    np.testing.assert_allclose(s, img @ txt.T, atol=1e-5)
    assert session.logit_scale == pytest.approx(1 / 0.07, rel=1e-6)
    np.testing.assert_allclose(session.score(img, txt, logits=True), s * session.logit_scale,
                               rtol=1e-6)
    assert session.score(img[0], txt).shape == (1, len(TEXTS))


def test_embed_tokens(session, model):
    ids = model.tokenizer.encode("a cat", add_special=True)
    e = session.embed_tokens(ids)
    h = session.embed_tokens(ids, hidden=True)
    assert e.shape == h.shape == (64,)
    np.testing.assert_allclose(e, h / np.linalg.norm(h), atol=1e-6)


def test_adapter_roundtrip(session, tmp_path):
    before = session.encode_text(TEXTS)
    session.save_adapter(tmp_path / "adapter")
    assert os.listdir(tmp_path / "adapter")
    session.load_adapter(tmp_path / "adapter")
    assert np.array_equal(session.encode_text(TEXTS), before)
    session.clear_adapter()
    assert np.array_equal(session.encode_text(TEXTS), before)
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(disclvlm.DisclvlmError) as e:
        session.load_adapter(empty)
    assert str(empty) in str(e.value)


# ---- errors cross the boundary as exceptions ----------------------------------------


def test_bad_model_path():
    with pytest.raises(disclvlm.DisclvlmIOError) as e:
        disclvlm.Model("/nonexistent/model")
    assert "/nonexistent/model" in str(e.value)
    assert e.value.status == 2 and isinstance(e.value, OSError)


def test_corrupt_model(tmp_path):
    bad = gen_tiny(tmp_path / "bad", "--vision", "clip", "--text", "llama",
                   "--bad-shape", "language_model.model.norm.weight")
    with pytest.raises(disclvlm.FormatError) as e:
        disclvlm.Model(bad)
    assert "language_model.model.norm.weight" in str(e.value)
    assert e.value.status == 3
    # A truncated safetensors file.
    good = gen_tiny(tmp_path / "trunc", "--vision", "clip", "--text", "llama")
    st = os.path.join(good, "model.safetensors")
    with open(st, "r+b") as f:
        f.truncate(os.path.getsize(st) // 2)
    with pytest.raises(disclvlm.DisclvlmError) as e:
        disclvlm.Model(good)
    assert "model.safetensors" in str(e.value)


def test_unknown_backend(model_dir):
    with pytest.raises(disclvlm.InvalidArgumentError) as e:
        disclvlm.Model(model_dir, backend="tpu")
    assert "tpu" in str(e.value)


def test_bad_images(session, tmp_path):
    with pytest.raises(disclvlm.DisclvlmIOError, match="/nonexistent.png"):
        session.encode_image("/nonexistent.png")
    junk = tmp_path / "junk.png"
    junk.write_bytes(b"\x89PNG\r\n\x1a\nnot really")
    with pytest.raises(disclvlm.DisclvlmError, match="junk.png"):
        session.encode_image([str(junk)])
    with pytest.raises(disclvlm.DisclvlmError):
        session.encode_image(b"not an image")
    with pytest.raises(disclvlm.InvalidArgumentError, match="dtype uint8"):
        session.encode_image(np.zeros((8, 8, 3), np.float32))
    with pytest.raises(ValueError, match=r"shape \(height, width, 3\)"):
        session.encode_image(np.zeros((8, 8, 4), np.uint8))
    with pytest.raises(disclvlm.InvalidArgumentError, match=r"shape"):
        session.encode_image(np.zeros((8, 8), np.uint8))
    with pytest.raises(disclvlm.InvalidArgumentError, match="empty"):
        session.encode_image(np.zeros((0, 8, 3), np.uint8))
    with pytest.raises(disclvlm.InvalidArgumentError, match="image 1"):
        session.encode_image([np.zeros((8, 8, 3), np.uint8), 42])


def test_check_image(model, images, tmp_path):
    paths, arrays = images
    assert model.check_image(paths[0]) is None
    assert model.check_image(arrays[1]) is None
    with pytest.raises(disclvlm.DisclvlmIOError, match="/nonexistent.png"):
        model.check_image("/nonexistent.png")
    junk = tmp_path / "junk.png"
    junk.write_bytes(b"\x89PNG\r\n\x1a\nnot really")
    with pytest.raises(disclvlm.DisclvlmError, match="junk.png"):
        model.check_image(str(junk))


def test_bad_texts_and_scores(session):
    with pytest.raises(disclvlm.InvalidArgumentError, match="NUL"):
        session.encode_text(["ok", "a\0b"])
    with pytest.raises(disclvlm.InvalidArgumentError, match="text 0"):
        session.encode_text([3])
    e = session.encode_text(["a"])
    with pytest.raises(disclvlm.InvalidArgumentError, match="dim"):
        session.score(e, e[:, :10])
    with pytest.raises(disclvlm.NumericError) as err:
        session.score(np.full((1, 64), np.nan, np.float32), e)
    assert "not finite" in str(err.value) and err.value.status == 8


def test_sequence_limit(model, session):
    import disclvlm
    huge = " ".join(["word"] * 300)
    n, limit = session.text_positions(huge)
    assert limit == 256 and n > limit
    assert session.text_positions(huge, after_image=True)[0] > n
    with pytest.raises(disclvlm.InvalidArgumentError) as e:
        session.encode_text(["sky", huge])
    assert "texts[1]" in str(e.value) and "(256)" in str(e.value)
    with model.session(truncate=True) as s:
        e2 = s.encode_text([huge, huge + " and more"])
    assert np.abs(e2[0] - e2[1]).max() < 1e-5


def test_bf16_compute(model, session):
    texts = ["a red square", "two blue circles"]
    e32 = session.encode_text(texts)
    with model.session(compute="bf16") as s:
        e16 = s.encode_text(texts)
    cos = (e32 * e16).sum(1) / (np.linalg.norm(e32, axis=1) * np.linalg.norm(e16, axis=1))
    assert (cos > 0.999).all(), cos
    assert not np.array_equal(e32, e16)
    with pytest.raises(disclvlm.InvalidArgumentError) as e:
        model.session(compute="f8")
    assert "'f8'" in str(e.value)


def test_weight_dtype(model_dir, session):
    texts = ["a red square", "two blue circles"]
    e32 = session.encode_text(texts)
    with disclvlm.Model(model_dir, weight_dtype="bf16") as m16:
        e16 = m16.encode_text(texts)
    cos = (e32 * e16).sum(1) / (np.linalg.norm(e32, axis=1) * np.linalg.norm(e16, axis=1))
    assert (cos > 0.999).all(), cos
    assert not np.array_equal(e32, e16)
    with pytest.raises(disclvlm.InvalidArgumentError) as e:
        disclvlm.Model(model_dir, weight_dtype="int8")
    assert "'int8'" in str(e.value)


def test_text_without_tokenizer(tmp_path):
    d = gen_tiny(tmp_path / "notok", "--vision", "clip", "--text", "llama")
    with disclvlm.Model(d) as m, m.session() as s:
        with pytest.raises(disclvlm.UnsupportedError) as e:
            s.encode_text(["a"])
    assert e.value.status == 4 and str(e.value)


def _train_batch(arrays):
    batch = disclvlm.Batch()
    batch.add(arrays[0], "a picture", "a long caption of a picture")
    batch.add(arrays[1], "another picture")
    batch.add(arrays[2], "a third one", "with its own long caption")
    return batch


TRAIN_OPTIONS = dict(lr=1e-2, seed=7, lora_rank=4, lora_alpha=8.0, grad_clip=1.0,
                     train=["soft", "lora", "logit_scale"], contrastive=True)


def test_train_steps_and_trained_adapter(model, session, images, tmp_path):
    paths, arrays = images
    untrained = session.encode_text(TEXTS)
    session.train_begin(**TRAIN_OPTIONS)
    with _train_batch(arrays) as batch:
        assert len(batch) == 3
        stats = [session.train_step(batch) for _ in range(3)]
    for i, st in enumerate(stats):
        assert isinstance(st, disclvlm.TrainStats)
        assert st.step == i + 1, stats
        for v in (st.loss, st.loss_contrastive, st.loss_ntp, st.grad_norm, st.logit_scale):
            assert np.isfinite(v), st
        assert st.loss > 0 and st.grad_norm > 0 and st.tokens > 0, st
        assert st.learning_rate == pytest.approx(1e-2), st
    # The session's adapter is the trained state.
    trained_txt = session.encode_text(TEXTS)
    trained_img = session.encode_image(paths)
    assert not np.array_equal(trained_txt, untrained)
    assert session.logit_scale == pytest.approx(stats[-1].logit_scale, rel=1e-6)
    # Saved, it loads in a fresh session and gives the same embeddings.
    session.save_adapter(tmp_path / "trained")
    with model.session() as fresh:
        assert np.array_equal(fresh.encode_text(TEXTS), untrained)
        fresh.load_adapter(tmp_path / "trained")
        assert np.array_equal(fresh.encode_text(TEXTS), trained_txt)
        assert np.array_equal(fresh.encode_image(paths), trained_img)
        assert fresh.logit_scale == session.logit_scale
    # The model itself (no projector/llm/vision set trained: the base
    # weights) saves as a checkpoint that loads and encodes as the original.
    session.save_model(tmp_path / "saved", dtype="f32")
    with disclvlm.Model(tmp_path / "saved", threads=1) as saved:
        assert np.array_equal(saved.encode_text(TEXTS), untrained)
    with pytest.raises(disclvlm.InvalidArgumentError, match="f64"):
        session.save_model(tmp_path / "bad-dtype", dtype="f64")


def test_checkpoint_resume_is_bit_identical(model, images, tmp_path):
    _, arrays = images
    ckpt = tmp_path / "ckpt"
    with _train_batch(arrays) as batch:
        with model.session() as a:
            a.train_begin(**TRAIN_OPTIONS)
            a.train_step(batch)
            a.train_step(batch)
            a.checkpoint_save(ckpt)
            assert os.listdir(ckpt)
            want = a.train_step(batch)
            want_txt = a.encode_text(TEXTS)
        with model.session() as b:
            b.checkpoint_load(ckpt)
            got = b.train_step(batch)
            got_txt = b.encode_text(TEXTS)
    assert got.step == 3
    assert got == want  # every field, bit for bit
    assert np.array_equal(got_txt, want_txt)
    with model.session() as c:
        missing = tmp_path / "no-such-checkpoint"
        with pytest.raises(disclvlm.DisclvlmError) as e:
            c.checkpoint_load(missing)
        assert str(missing) in str(e.value)


def test_train_option_errors(session, images):
    with pytest.raises(disclvlm.InvalidArgumentError) as e:
        session.train_begin(no_such_option=1)
    assert e.value.status == 1
    assert "no_such_option" in str(e.value) and "dlv_train_options_set" in str(e.value)
    with pytest.raises(disclvlm.InvalidArgumentError, match="lr"):
        session.train_begin(lr="fast")
    with pytest.raises(disclvlm.InvalidArgumentError, match="optimizer"):
        session.train_begin(optimizer="adam9")
    with pytest.raises(disclvlm.InvalidArgumentError, match="cosine"):
        session.train_begin(schedule="cosine", warmup=10, total_steps=5)
    # Valid options of every kind are accepted.
    session.train_begin(optimizer="sgd", lr=0.5, recompute=False, contrastive=True,
                        lora_targets=("q_proj", "v_proj"), schedule="cosine", warmup=1,
                        total_steps=10, micro_batch=0, seed=None)
    _, arrays = images
    with disclvlm.Batch() as batch:
        with pytest.raises(disclvlm.InvalidArgumentError, match="empty"):
            session.train_step(batch)
        batch.add(arrays[0], "x")
    with pytest.raises(disclvlm.InvalidArgumentError, match="Batch is closed"):
        batch.add(arrays[0], "x")
    with pytest.raises(disclvlm.InvalidArgumentError, match="Batch is closed"):
        session.train_step(batch)
    with pytest.raises(disclvlm.InvalidArgumentError):
        session.train_step("not a batch")


def test_train_without_tokenizer(tmp_path, images):
    _, arrays = images
    d = gen_tiny(tmp_path / "notok", "--vision", "clip", "--text", "llama")
    with disclvlm.Model(d) as m, m.session() as s, disclvlm.Batch() as batch:
        batch.add(arrays[0], "a picture", "a long caption")
        with pytest.raises(disclvlm.UnsupportedError) as e:
            s.train_step(batch)
    assert e.value.status == 4
    msg = str(e.value)
    assert "no tokenizer" in msg and "prompts.json" in msg, msg


def test_cancel(session):
    session.cancel()  # the next long call stops
    with pytest.raises(disclvlm.CancelledError, match="cancel"):
        session.encode_text(["a"])
    assert session.encode_text(["a"]).shape == (1, 64)


def test_context_managers_and_closed_handles(model_dir):
    with disclvlm.Model(model_dir) as m:
        s = m.session()
        s2 = m.session()
        s2.close()
        s2.close()  # idempotent
        with pytest.raises(disclvlm.InvalidArgumentError, match="Session is closed"):
            s2.encode_text(["a"])
    assert m.closed and s.closed  # closing the model closed its session
    with pytest.raises(disclvlm.InvalidArgumentError, match="Model is closed"):
        m.session()
    with pytest.raises(disclvlm.InvalidArgumentError, match="Session is closed"):
        s.encode_text(["a"])


# ---- threads -------------------------------------------------------------------------


def test_threads_one_session_each(model):
    want = model.encode_text(TEXTS)
    results, errors = [], []

    def work():
        try:
            with model.session() as s:
                for _ in range(10):
                    results.append(s.encode_text(TEXTS))
        except Exception as e:  # pragma: no cover - reported below
            errors.append(e)

    ts = [threading.Thread(target=work) for _ in range(3)]
    for t in ts:
        t.start()
    for t in ts:
        t.join()
    assert not errors, errors
    assert len(results) == 30
    assert all(np.array_equal(r, want) for r in results)


def test_shared_session_is_serialized(session):
    want = session.encode_text(TEXTS)
    out = []

    def work():
        for _ in range(10):
            out.append(session.encode_text(TEXTS))

    ts = [threading.Thread(target=work) for _ in range(3)]
    for t in ts:
        t.start()
    for t in ts:
        t.join()
    assert len(out) == 30 and all(np.array_equal(r, want) for r in out)


def test_errors_are_per_thread(model_dir):
    """A failure on one thread reports its own message, not another thread's."""
    msgs = {}

    def fail(name):
        try:
            disclvlm.Model("/nonexistent/" + name)
        except disclvlm.DisclvlmError as e:
            msgs[name] = str(e)

    ts = [threading.Thread(target=fail, args=("m%d" % i,)) for i in range(4)]
    for t in ts:
        t.start()
    for t in ts:
        t.join()
    assert all(("/nonexistent/" + k) in v for k, v in msgs.items()) and len(msgs) == 4


# ---- no leak ----------------------------------------------------------------------------


def test_no_leak_1000_create_free(model_dir, images):
    paths, arrays = images

    def cycle():
        with disclvlm.Model(model_dir, threads=1) as m:
            with m.session():
                pass
        try:
            disclvlm.Model("/nonexistent")
        except disclvlm.DisclvlmIOError:
            pass
        with disclvlm.Batch() as b:
            b.add(arrays[0], "x")

    for _ in range(50):  # warm up allocator pools and caches
        cycle()
    gc.collect()
    before = rss_bytes()
    for _ in range(1000):
        cycle()
    gc.collect()
    growth = rss_bytes() - before
    print("RSS growth over 1000 create/free cycles: %d KiB" % (growth // 1024))
    # A leak of even 2 KiB per cycle shows up as 2 MiB.
    assert growth < 2 * 1024 * 1024, "RSS grew by %d KiB" % (growth // 1024)


def test_no_leak_encode_loop(session, images):
    paths, arrays = images
    for _ in range(20):
        session.encode_image(arrays[0])
        session.encode_text(TEXTS)
    gc.collect()
    before = rss_bytes()
    for _ in range(300):
        session.encode_image([arrays[0], paths[0]])
        session.encode_text(TEXTS)
        try:
            session.encode_image(np.zeros((4, 4), np.uint8))
        except disclvlm.InvalidArgumentError:
            pass
    gc.collect()
    growth = rss_bytes() - before
    assert growth < 2 * 1024 * 1024, "RSS grew by %d KiB" % (growth // 1024)


# ---- the benchmark still runs --------------------------------------------------------------


def test_bench_python_runs(model_dir):
    bench = os.environ.get("DISCLVLM_BENCH")
    if not bench:
        pytest.skip("DISCLVLM_BENCH is not set")
    args = [sys.executable, bench, "--model", model_dir, "--iterations", "20"]
    inc = os.environ.get("DISCLVLM_INCLUDE")
    if inc and shutil.which("cc"):
        args += ["--include", inc]  # also the C timing program
    else:
        args += ["--no-c"]
    p = subprocess.run(args, capture_output=True, text=True, timeout=300)
    assert p.returncode == 0, p.stdout + p.stderr
    assert "encode_text" in p.stdout
    print(p.stdout)


def test_cycle_garbage_frees_sessions_before_the_model(model_dir):
    """A model and its sessions collected together in a reference cycle: the
    C model must be freed after the C sessions, whatever the order the
    collector finalizes them in (no crash, no leak)."""
    for _ in range(50):
        m = disclvlm.Model(model_dir, threads=1)
        s = m.session()
        s.cycle = s  # only the cycle collector frees these
        m.cycle = (m, s)
        m.encode_text(["x"])  # and the built-in session
        del m, s
        gc.collect()
    before = rss_bytes()
    for _ in range(300):
        m = disclvlm.Model(model_dir, threads=1)
        s = m.session()
        s.cycle = s
        m.cycle = (m, s)
        del m, s
        gc.collect()
    assert rss_bytes() - before < 2 * 1024 * 1024
