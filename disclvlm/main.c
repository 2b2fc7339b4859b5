/* disclvlm: command-line front end to libdisclvlm. Everything it does goes
 * through the public API, so it is the library's first user. */
#include <stdio.h>
#include <string.h>

#include "commands.h"
#include "disclvlm.h"

typedef struct command {
    const char *name;
    int (*run)(int argc, char **argv);
    const char *summary;
} command;

static const command commands[] = {
    {"info", cmd_info, "print a JSON description of a model directory"},
    {"preprocess", cmd_preprocess, "write an image's model input tensor as a .npy file"},
    {"tokenize", cmd_tokenize, "print the token ids of a text"},
    {"detokenize", cmd_detokenize, "print the text of token ids"},
    {"embed", cmd_embed, "write the embedding of exact token ids as a .npy file"},
    {"encode-image", cmd_encode_image, "write image embeddings as a .npy file"},
    {"encode-text", cmd_encode_text, "write text embeddings as a .npy file"},
    {"score", cmd_score, "print the image-text cosine (or logit) matrix"},
    {"train", cmd_train, "fine-tune an adapter (soft prompts, LoRA) on image-caption pairs"},
    {"eval", cmd_eval, "evaluate: retrieval, SugarCrepe, Winoground, zero-shot classification"},
    {"shapesworld", cmd_shapesworld, "generate the ShapesWorld compositional benchmark"},
    {"serve", cmd_serve, "serve text and image embeddings over HTTP (OpenAI-compatible)"},
};

static void usage(FILE *to)
{
    fprintf(to,
            "usage: disclvlm [--help] [--version] COMMAND [ARGS]\n"
            "\n"
            "Discriminative embeddings from LLaVA-style vision-language models.\n"
            "\n"
            "commands:\n");
    for (size_t i = 0; i < sizeof commands / sizeof commands[0]; i++)
        fprintf(to, "  %-13s %s\n", commands[i].name, commands[i].summary);
    fprintf(to, "\n'disclvlm COMMAND --help' describes one command.\n");
}

int cli_missing(const char *cmd, const char *what)
{
    fprintf(stderr, "disclvlm: %s: %s is required (see 'disclvlm %s --help')\n", cmd, what, cmd);
    return 2;
}

int cli_fail(const char *context)
{
    const char *msg = dlv_last_error();
    fprintf(stderr, "disclvlm: %s: %s\n", context, (msg && *msg) ? msg : "unknown error");
    return 1;
}

int main(int argc, char **argv)
{
    if (argc < 2) {
        usage(stderr);
        return 2;
    }
    if (strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0) {
        usage(stdout);
        return 0;
    }
    if (strcmp(argv[1], "--version") == 0) {
        printf("disclvlm %s (backends: %s)\n", dlv_version(), dlv_build_features());
        return 0;
    }
    for (size_t i = 0; i < sizeof commands / sizeof commands[0]; i++)
        if (strcmp(argv[1], commands[i].name) == 0) return commands[i].run(argc - 1, argv + 1);
    fprintf(stderr, "disclvlm: unknown command '%s' (see 'disclvlm --help')\n", argv[1]);
    return 2;
}
