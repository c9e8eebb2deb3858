/* Error codes: messages and short names. */
#include "cactor.h"

const char *ca_strerror(int err)
{
    switch (err) {
    case 0:
        return "success";
#define XX(name, val, lower, str)                                                                  \
    case CA_##name:                                                                                \
        return str;
        CA_ERRNO_MAP(XX)
#undef XX
    default:
        return "unknown error";
    }
}

const char *ca_errname(int err)
{
    switch (err) {
    case 0:
        return "ok";
#define XX(name, val, lower, str)                                                                  \
    case CA_##name:                                                                                \
        return lower;
        CA_ERRNO_MAP(XX)
#undef XX
    default:
        return "unknown";
    }
}
