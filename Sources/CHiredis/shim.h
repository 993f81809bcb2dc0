// hiredis 0.14 (Debian's libhiredis-dev). `redisCommand` is variadic, so Swift uses
// `redisCommandArgv`; these helpers give Swift plain accessors where the C API uses macros or casts.
#ifndef CHIREDIS_SHIM_H
#define CHIREDIS_SHIM_H

#include <hiredis/hiredis.h>

/// Runs one command given as binary-safe arguments; the reply must be freed with freeReplyObject.
static inline redisReply *chiredis_command(redisContext *context, int argc, const char **argv, const size_t *lengths) {
    return (redisReply *)redisCommandArgv(context, argc, argv, lengths);
}

#endif
