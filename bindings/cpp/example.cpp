// Scores images against texts with the C++ wrapper (include/disclvlm.hpp).
//
//   c++ -std=c++17 example.cpp $(pkg-config --cflags --libs disclvlm) -o example
//   ./example MODEL_DIR IMAGE... -- TEXT...
#include <disclvlm.hpp>

#include <cstdio>
#include <string>
#include <vector>

int main(int argc, char **argv)
{
    std::vector<std::string> images, texts;
    bool after = false;
    for (int i = 2; i < argc; i++) {
        std::string a = argv[i];
        if (a == "--" && !after) after = true;
        else (after ? texts : images).push_back(a);
    }
    if (argc < 2 || images.empty() || texts.empty()) {
        std::fprintf(stderr, "usage: %s MODEL_DIR IMAGE... -- TEXT...\n", argv[0]);
        return 2;
    }
    try {
        disclvlm::model model(argv[1]);
        disclvlm::session s(model);
        std::vector<float> img = s.encode_image_files(images);
        std::vector<float> txt = s.encode_text(texts);
        std::vector<float> cos = s.score(img, txt);
        for (std::size_t i = 0; i < images.size(); i++)
            for (std::size_t j = 0; j < texts.size(); j++)
                std::printf("%s\t%s\t%.4f\n", images[i].c_str(), texts[j].c_str(),
                            static_cast<double>(cos[i * texts.size() + j]));
    } catch (const disclvlm::error &e) {
        std::fprintf(stderr, "example: %s\n", e.what());
        return 1;
    }
    return 0;
}
