/* An outside program built only from `pkg-config --cflags --libs disclvlm`
 * against an installed copy of the library. */
#include <disclvlm.h>
#include <stdio.h>
#include <string.h>

int main(void)
{
    if (strcmp(dlv_version(), DLV_VERSION_STRING) != 0) {
        fprintf(stderr, "header %s but library %s\n", DLV_VERSION_STRING, dlv_version());
        return 1;
    }
    dlv_model *m = NULL;
    dlv_status st = dlv_model_load("/nonexistent", NULL, &m);
    printf("C consumer: disclvlm %s, load of a missing dir: %s (%s)\n", dlv_version(),
           dlv_status_str(st), dlv_last_error());
    return st == DLV_OK ? 1 : 0;
}
