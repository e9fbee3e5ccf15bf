/* Descriptions of the AN_E* error codes returned across the library. */
#include "agentnet/common.h"

const char *an_strerror(int code)
{
    switch (code) {
    case AN_OK: return "success";
    case AN_EINVAL: return "invalid argument";
    case AN_ENOMEM: return "out of memory";
    case AN_EIO: return "I/O error";
    case AN_ENOTFOUND: return "not found";
    case AN_EEXIST: return "already exists";
    case AN_EFULL: return "bound reached and nothing could be evicted";
    case AN_ETIMEDOUT: return "timed out";
    case AN_EUPSTREAM: return "upstream failed";
    case AN_ETOOBIG: return "value larger than the configured limit";
    case AN_ECLOSED: return "shutting down";
    default: return "unknown error";
    }
}
