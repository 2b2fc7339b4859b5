/*
 * disclvlm.hpp - a header-only C++11 RAII wrapper over the C API in
 * disclvlm.h. Handles are owned by move-only classes that free them in their
 * destructors; a failing call throws disclvlm::error carrying the status and
 * the library's message (disclvlm::not_implemented_error for
 * DLV_E_NOT_IMPLEMENTED). Link with `pkg-config --cflags --libs disclvlm`.
 *
 *     disclvlm::model m("llava-1.5-7b-hf");
 *     disclvlm::session s(m);
 *     std::vector<float> img = s.encode_image_files({"cat.jpg"});
 *     std::vector<float> txt = s.encode_text({"a cat", "a dog"});
 *     std::vector<float> cos = s.score(img, txt);   // 1 x 2, row-major
 *
 * Thread safety is the C API's: a model may be shared by threads, a session
 * is used by one thread at a time (cancel() excepted).
 */
#ifndef DISCLVLM_HPP
#define DISCLVLM_HPP

#include "disclvlm.h"

#include <cstddef>
#include <cstdint>
#include <memory>
#include <stdexcept>
#include <string>
#include <utility>
#include <vector>

namespace disclvlm {

/* A failed libdisclvlm call: what() is the library's message. */
class error : public std::runtime_error {
public:
    error(dlv_status status, const std::string &message)
        : std::runtime_error(message), status_(status) {}
    dlv_status status() const noexcept { return status_; }

private:
    dlv_status status_;
};

/* DLV_E_NOT_IMPLEMENTED: declared with its final signature, not implemented yet. */
class not_implemented_error : public error {
public:
    not_implemented_error(dlv_status status, const std::string &message)
        : error(status, message) {}
};

/* Throws for any status but DLV_OK (call right after the failing call). */
inline void check(dlv_status status)
{
    if (status == DLV_OK) return;
    const char *m = dlv_last_error();
    std::string msg = (m && *m) ? std::string(m) : std::string(dlv_status_str(status));
    if (status == DLV_E_NOT_IMPLEMENTED) throw not_implemented_error(status, msg);
    throw error(status, msg);
}

/* The library's run-time version ("0.1.0"). */
inline std::string version() { return dlv_version(); }
/* The library's build features ("cpu,cuda"). */
inline std::string build_features() { return dlv_build_features(); }

namespace detail {
template <typename T, void (*Free)(T *)>
struct deleter {
    void operator()(T *p) const noexcept { Free(p); }
};
template <typename T, void (*Free)(T *)>
using handle = std::unique_ptr<T, deleter<T, Free>>;
} // namespace detail

/* An image source: a file, encoded bytes or raw RGB8 (copied on creation). */
class image {
public:
    static image from_file(const std::string &path)
    {
        dlv_image *p = nullptr;
        check(dlv_image_from_file(path.c_str(), &p));
        return image(p);
    }
    static image from_memory(const void *data, std::size_t n_bytes)
    {
        dlv_image *p = nullptr;
        check(dlv_image_from_memory(data, n_bytes, &p));
        return image(p);
    }
    /* stride_bytes 0 means 3 * width (tightly packed rows). */
    static image from_rgb(const std::uint8_t *rgb, std::uint32_t width, std::uint32_t height,
                          std::size_t stride_bytes = 0)
    {
        dlv_image *p = nullptr;
        if (stride_bytes == 0) stride_bytes = 3 * static_cast<std::size_t>(width);
        check(dlv_image_from_rgb(rgb, width, height, stride_bytes, &p));
        return image(p);
    }
    const dlv_image *get() const noexcept { return p_.get(); }

private:
    explicit image(dlv_image *p) : p_(p) {}
    detail::handle<dlv_image, dlv_image_free> p_;
};

/* A tokenizer: owned when loaded from a path, borrowed from a model otherwise. */
class tokenizer {
public:
    explicit tokenizer(const std::string &path) : p_(nullptr, &free_owned)
    {
        dlv_tokenizer *t = nullptr;
        check(dlv_tokenizer_load(path.c_str(), &t));
        p_.reset(t);
    }
    std::vector<std::int32_t> encode(const std::string &text, bool add_special = false) const
    {
        unsigned flags = add_special ? DLV_TOKENIZE_ADD_SPECIAL : 0u;
        std::size_t n = 0;
        check(dlv_tokenize(p_.get(), text.data(), text.size(), flags, nullptr, 0, &n));
        std::vector<std::int32_t> ids(n);
        if (n) check(dlv_tokenize(p_.get(), text.data(), text.size(), flags, ids.data(), n, &n));
        return ids;
    }
    std::string decode(const std::vector<std::int32_t> &ids, bool skip_special = false) const
    {
        unsigned flags = skip_special ? DLV_DETOKENIZE_SKIP_SPECIAL : 0u;
        std::size_t needed = 0;
        check(dlv_detokenize(p_.get(), ids.data(), ids.size(), flags, nullptr, 0, &needed));
        std::vector<char> buf(needed);
        check(dlv_detokenize(p_.get(), ids.data(), ids.size(), flags, buf.data(), buf.size(),
                             &needed));
        return std::string(buf.data(), needed ? needed - 1 : 0);
    }
    std::size_t vocab_size() const
    {
        std::size_t n = 0;
        check(dlv_tokenizer_vocab_size(p_.get(), &n));
        return n;
    }
    const dlv_tokenizer *get() const noexcept { return p_.get(); }

private:
    friend class model;
    static void free_owned(const dlv_tokenizer *t) { dlv_tokenizer_free(const_cast<dlv_tokenizer *>(t)); }
    static void free_none(const dlv_tokenizer *) {}
    explicit tokenizer(const dlv_tokenizer *borrowed) : p_(borrowed, &free_none) {}
    std::unique_ptr<const dlv_tokenizer, void (*)(const dlv_tokenizer *)> p_;
};

/* A loaded checkpoint. Must outlive its sessions and borrowed tokenizers. */
class model {
public:
    explicit model(const std::string &dir, const std::string &backend = "cpu", int device = 0)
    {
        dlv_model_options *o = nullptr;
        check(dlv_model_options_new(&o));
        detail::handle<dlv_model_options, dlv_model_options_free> opts(o);
        check(dlv_model_options_set_backend(o, backend.c_str()));
        check(dlv_model_options_set_device(o, device));
        dlv_model *m = nullptr;
        check(dlv_model_load(dir.c_str(), o, &m));
        p_.reset(m);
    }
    std::size_t embed_dim() const
    {
        std::size_t n = 0;
        check(dlv_model_embed_dim(p_.get(), &n));
        return n;
    }
    /* The JSON description (architectures, sizes, dtypes, counts). */
    std::string describe() const
    {
        std::size_t needed = 0;
        check(dlv_model_describe(p_.get(), nullptr, 0, &needed));
        std::vector<char> buf(needed);
        check(dlv_model_describe(p_.get(), buf.data(), buf.size(), &needed));
        return std::string(buf.data());
    }
    /* The model's own tokenizer (valid while the model lives). */
    tokenizer get_tokenizer() const
    {
        const dlv_tokenizer *t = nullptr;
        check(dlv_model_tokenizer(p_.get(), &t));
        return tokenizer(t);
    }
    dlv_model *get() const noexcept { return p_.get(); }

private:
    detail::handle<dlv_model, dlv_model_free> p_;
};

/* Training examples; the images are borrowed and must outlive the batch. */
class batch {
public:
    batch()
    {
        dlv_batch *b = nullptr;
        check(dlv_batch_new(&b));
        p_.reset(b);
    }
    void add(const image &img, const std::string &caption)
    {
        check(dlv_batch_add(p_.get(), img.get(), caption.c_str(), nullptr));
    }
    void add(const image &img, const std::string &caption, const std::string &long_caption)
    {
        check(dlv_batch_add(p_.get(), img.get(), caption.c_str(), long_caption.c_str()));
    }
    const dlv_batch *get() const noexcept { return p_.get(); }

private:
    detail::handle<dlv_batch, dlv_batch_free> p_;
};

/* Training options (dlv_train_options): key = value strings, see disclvlm.h
 * and docs/training.md. set() throws disclvlm::error naming an unknown key
 * or a bad value, and returns *this so that calls chain:
 *     disclvlm::train_options o;
 *     o.set("lr", "1e-3").set("train", "soft,lora");
 */
class train_options {
public:
    train_options()
    {
        dlv_train_options *o = nullptr;
        check(dlv_train_options_new(&o));
        p_.reset(o);
    }
    train_options &set(const std::string &key, const std::string &value)
    {
        check(dlv_train_options_set(p_.get(), key.c_str(), value.c_str()));
        return *this;
    }
    const dlv_train_options *get() const noexcept { return p_.get(); }

private:
    detail::handle<dlv_train_options, dlv_train_options_free> p_;
};

/* A workspace on a model. Embeddings are row-major n x embed_dim() floats. */
class session {
public:
    /* threads 0: one per online CPU. */
    explicit session(model &m, int threads = 0)
    {
        dlv_session_options *o = nullptr;
        check(dlv_session_options_new(&o));
        detail::handle<dlv_session_options, dlv_session_options_free> opts(o);
        check(dlv_session_options_set_threads(o, threads));
        dlv_session *s = nullptr;
        check(dlv_session_new(m.get(), o, &s));
        p_.reset(s);
        dim_ = m.embed_dim();
    }
    std::size_t embed_dim() const noexcept { return dim_; }

    std::vector<float> encode_images(const std::vector<const image *> &images)
    {
        std::vector<const dlv_image *> hs;
        hs.reserve(images.size());
        for (const image *im : images) hs.push_back(im ? im->get() : nullptr);
        std::vector<float> out(images.size() * dim_);
        if (!images.empty())
            check(dlv_encode_images(p_.get(), hs.data(), hs.size(), out.data(), out.size()));
        return out;
    }
    std::vector<float> encode_image(const image &img) { return encode_images({&img}); }
    std::vector<float> encode_image_files(const std::vector<std::string> &paths)
    {
        std::vector<image> imgs;
        imgs.reserve(paths.size());
        for (const std::string &p : paths) imgs.push_back(image::from_file(p));
        std::vector<const image *> ptrs;
        for (const image &im : imgs) ptrs.push_back(&im);
        return encode_images(ptrs);
    }
    std::vector<float> encode_text(const std::vector<std::string> &texts)
    {
        std::vector<const char *> cs;
        cs.reserve(texts.size());
        for (const std::string &t : texts) cs.push_back(t.c_str());
        std::vector<float> out(texts.size() * dim_);
        if (!texts.empty())
            check(dlv_encode_text(p_.get(), cs.data(), cs.size(), out.data(), out.size()));
        return out;
    }
    /* dlv_embed_tokens: exactly these ids; img only with one image token. */
    std::vector<float> embed_tokens(const std::vector<std::int32_t> &ids,
                                    const image *img = nullptr, bool hidden = false)
    {
        std::vector<float> out(dim_);
        check(dlv_embed_tokens(p_.get(), ids.data(), ids.size(), img ? img->get() : nullptr,
                               hidden ? DLV_EMBED_HIDDEN : 0u, out.data(), out.size()));
        return out;
    }
    /* Cosines of n_img = img.size() / dim rows with n_txt = txt.size() / dim
     * rows: out[i * n_txt + j]. */
    std::vector<float> score(const std::vector<float> &img, const std::vector<float> &txt)
    {
        if (dim_ == 0 || img.size() % dim_ || txt.size() % dim_)
            throw error(DLV_E_INVALID_ARG, "disclvlm::session::score: sizes are not multiples "
                                           "of the embedding dim");
        std::size_t ni = img.size() / dim_, nt = txt.size() / dim_;
        std::vector<float> out(ni * nt);
        if (!out.empty())
            check(dlv_score(p_.get(), img.data(), ni, txt.data(), nt, dim_, out.data(),
                            out.size()));
        return out;
    }
    float logit_scale() const
    {
        float v = 0;
        check(dlv_session_logit_scale(p_.get(), &v));
        return v;
    }
    void load_adapter(const std::string &dir) { check(dlv_adapter_load(p_.get(), dir.c_str())); }
    void save_adapter(const std::string &dir) { check(dlv_adapter_save(p_.get(), dir.c_str())); }
    void clear_adapter() { check(dlv_adapter_clear(p_.get())); }
    /* Stops the running or next long call (DLV_E_CANCELLED); any thread. */
    void cancel() { check(dlv_session_cancel(p_.get())); }
    /* Starts (or restarts) training from the session's adapter with these
     * options (train_step begins with the defaults when this was not called). */
    void train_begin(const train_options &opts) { check(dlv_train_begin(p_.get(), opts.get())); }
    void train_begin() { check(dlv_train_begin(p_.get(), nullptr)); }
    /* One optimizer step; the session's adapter then holds the new state. */
    dlv_train_stats train_step(const batch &b)
    {
        dlv_train_stats st = DLV_TRAIN_STATS_INIT;
        check(dlv_train_step(p_.get(), b.get(), &st));
        return st;
    }
    /* Training checkpoints: adapter, optimizer state, step and RNG state. */
    void checkpoint_save(const std::string &dir)
    {
        check(dlv_train_checkpoint_save(p_.get(), dir.c_str()));
    }
    void checkpoint_load(const std::string &dir)
    {
        check(dlv_train_checkpoint_load(p_.get(), dir.c_str()));
    }
    /* dlv_train_save_model: the model as trained, as a Hugging Face LLaVA
     * directory; dtype "" keeps each tensor's dtype, else "f32", "bf16", "f16". */
    void save_model(const std::string &dir, const std::string &dtype = std::string())
    {
        check(dlv_train_save_model(p_.get(), dir.c_str(), dtype.empty() ? nullptr : dtype.c_str()));
    }
    dlv_session *get() const noexcept { return p_.get(); }

private:
    detail::handle<dlv_session, dlv_session_free> p_;
    std::size_t dim_ = 0;
};

} // namespace disclvlm

#endif /* DISCLVLM_HPP */
