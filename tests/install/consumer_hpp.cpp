// The C++ wrapper (disclvlm.hpp) against an installed library, built with
// nothing but pkg-config: RAII handles, results equal to the C API's,
// exceptions carrying the library's message.
// usage: consumer_hpp TINY_MODEL_DIR_WITH_TOKENIZER IMAGE
#include <disclvlm.hpp>

#include <cmath>
#include <cstdio>
#include <string>
#include <vector>

static int failures = 0;

static void expect(bool ok, const char *what)
{
    std::printf("%s %s\n", ok ? "ok  " : "FAIL", what);
    if (!ok) failures++;
}

template <typename F>
static std::string message_of(F f, dlv_status *status = nullptr)
{
    try {
        f();
    } catch (const disclvlm::error &e) {
        if (status) *status = e.status();
        return e.what();
    }
    return "";
}

int main(int argc, char **argv)
{
    if (argc != 3) return 2;
    const std::string dir = argv[1], image_path = argv[2];
    expect(disclvlm::version() == DLV_VERSION_STRING, "header and library versions agree");

    disclvlm::model model(dir);
    disclvlm::session s(model, 1);
    const std::size_t dim = model.embed_dim();
    expect(dim > 0 && s.embed_dim() == dim, "embed_dim");

    const std::vector<std::string> texts = {"a cat", "a dog on a mat"};
    std::vector<float> txt = s.encode_text(texts);
    expect(txt.size() == 2 * dim, "encode_text size");
    double norm = 0;
    for (std::size_t d = 0; d < dim; d++) norm += double(txt[d]) * double(txt[d]);
    expect(std::fabs(norm - 1.0) < 1e-5, "encode_text is L2-normalised");

    // The same through the C API on the same session: bit-identical.
    std::vector<float> ref(2 * dim);
    const char *cs[2] = {texts[0].c_str(), texts[1].c_str()};
    disclvlm::check(dlv_encode_text(s.get(), cs, 2, ref.data(), ref.size()));
    expect(ref == txt, "encode_text equals the C API's");

    std::vector<float> img = s.encode_image_files({image_path});
    disclvlm::image im = disclvlm::image::from_file(image_path);
    std::vector<float> img_ref(dim);
    disclvlm::check(dlv_encode_image_file(s.get(), image_path.c_str(), img_ref.data(), dim));
    expect(img == img_ref && s.encode_image(im) == img_ref, "encode_image equals the C API's");

    std::vector<float> cos = s.score(img, txt);
    expect(cos.size() == 2, "score is 1 x 2");
    double dot = 0;
    for (std::size_t d = 0; d < dim; d++) dot += double(img[d]) * double(txt[d]);
    expect(std::fabs(dot - double(cos[0])) < 1e-5, "score is the cosine");

    disclvlm::tokenizer tok = model.get_tokenizer();
    expect(tok.decode(tok.encode("a cat")) == "a cat", "tokenizer round trip");

    dlv_status st = DLV_OK;
    std::string msg = message_of([] { disclvlm::model m("/nonexistent/model"); }, &st);
    expect(st == DLV_E_IO && msg.find("/nonexistent/model") != std::string::npos,
           "a bad model path throws disclvlm::error with the library's message");
    msg = message_of([&] { s.encode_image_files({"/nonexistent.png"}); }, &st);
    expect(st == DLV_E_IO && msg.find("/nonexistent.png") != std::string::npos,
           "a bad image path throws with the path");

    // Training: real steps on the tiny model (it has a tokenizer).
    disclvlm::batch b;
    b.add(im, "a picture", "a long caption");
    b.add(im, "the same picture");
    disclvlm::train_options topts;
    topts.set("lr", "1e-2").set("seed", "3").set("lora_rank", "4");
    s.train_begin(topts);
    dlv_train_stats st1 = s.train_step(b);
    dlv_train_stats st2 = s.train_step(b);
    expect(st1.step == 1 && st2.step == 2, "train_step counts steps");
    expect(std::isfinite(st1.loss) && std::isfinite(st2.loss) && st1.loss > 0 &&
               std::isfinite(st2.grad_norm) && st2.tokens > 0,
           "train_step gives finite losses");
    expect(s.encode_text(texts) != txt, "training changed the text embeddings");

    st = DLV_OK;
    msg = message_of([] { disclvlm::train_options o; o.set("no_such_option", "1"); }, &st);
    expect(st == DLV_E_INVALID_ARG && msg.find("no_such_option") != std::string::npos,
           "an unknown training option throws disclvlm::error with the message");

    disclvlm::session moved = std::move(s);
    expect(moved.get() != nullptr && moved.encode_text({"x"}).size() == dim,
           "sessions are movable");

    std::printf("C++ wrapper consumer: %d failure(s)\n", failures);
    return failures ? 1 : 0;
}
