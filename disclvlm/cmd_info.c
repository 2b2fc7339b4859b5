/* disclvlm info MODEL_DIR: the model's JSON description on stdout. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "commands.h"
#include "disclvlm.h"

static void info_usage(FILE *to)
{
    fprintf(to,
            "usage: disclvlm info [--backend cpu|cuda|auto] MODEL_DIR\n"
            "\n"
            "Loads a Hugging Face LLaVA model directory (config.json and safetensors,\n"
            "single or sharded), checks every tensor, and prints a JSON description:\n"
            "architectures, sizes, dtypes, parameter counts, tensor count, embedding size.\n");
}

int cmd_info(int argc, char **argv)
{
    const char *dir = NULL;
    const char *backend = "cpu";
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0) {
            info_usage(stdout);
            return 0;
        } else if (strcmp(argv[i], "--backend") == 0 && i + 1 < argc) {
            backend = argv[++i];
        } else if (argv[i][0] == '-' && argv[i][1] != '\0') {
            fprintf(stderr, "disclvlm: info: unknown option '%s'\n", argv[i]);
            return 2;
        } else if (!dir) {
            dir = argv[i];
        } else {
            fprintf(stderr, "disclvlm: info: one MODEL_DIR expected, got '%s' too\n", argv[i]);
            return 2;
        }
    }
    if (!dir) return cli_missing("info", "MODEL_DIR");

    dlv_model_options *opts = NULL;
    dlv_model *model = NULL;
    char *json = NULL;
    int rc = 0;
    if (dlv_model_options_new(&opts) != DLV_OK ||
        dlv_model_options_set_backend(opts, backend) != DLV_OK) {
        rc = cli_fail("info");
        goto done;
    }
    if (dlv_model_load(dir, opts, &model) != DLV_OK) {
        rc = cli_fail("info");
        goto done;
    }
    size_t needed = 0;
    if (dlv_model_describe(model, NULL, 0, &needed) != DLV_OK) {
        rc = cli_fail("info");
        goto done;
    }
    json = malloc(needed);
    if (!json) {
        fprintf(stderr, "disclvlm: info: out of memory\n");
        rc = 1;
        goto done;
    }
    if (dlv_model_describe(model, json, needed, NULL) != DLV_OK) {
        rc = cli_fail("info");
        goto done;
    }
    fputs(json, stdout);
    fputc('\n', stdout);
done:
    free(json);
    dlv_model_free(model);
    dlv_model_options_free(opts);
    return rc;
}
