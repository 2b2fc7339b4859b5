// The C++ twin of consumer.c.
#include <disclvlm.h>

#include <cstdio>
#include <string>

int main()
{
    if (std::string(dlv_version()) != DLV_VERSION_STRING) return 1;
    dlv_session_options *opts = nullptr;
    if (dlv_session_options_new(&opts) != DLV_OK) return 1;
    dlv_status st = dlv_session_options_set_threads(opts, 2);
    dlv_session_options_free(opts);
    std::printf("C++ consumer: disclvlm %s, set_threads: %s\n", dlv_version(), dlv_status_str(st));
    return st == DLV_OK ? 0 : 1;
}
