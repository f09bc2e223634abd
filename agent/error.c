/* owlsync error values: set, prefix and clear the caller's owl_err.
 * Messages are truncated at OWL_ERR_MAX, never overflowed. */
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "owlsync/error.h"

int err_set(owl_err *err, int code, const char *fmt, ...)
{
    va_list ap;

    if (err == NULL)
        return -1;
    err->code = code;
    va_start(ap, fmt);
    vsnprintf(err->msg, sizeof(err->msg), fmt, ap);
    va_end(ap);
    return -1;
}

int err_oom(owl_err *err)
{
    return err_set(err, OWL_ERUNTIME, "out of memory");
}

int err_prefix(owl_err *err, const char *fmt, ...)
{
    char head[OWL_ERR_MAX];
    char old[OWL_ERR_MAX];
    va_list ap;

    if (err == NULL)
        return -1;
    va_start(ap, fmt);
    vsnprintf(head, sizeof(head), fmt, ap);
    va_end(ap);
    memcpy(old, err->msg, sizeof(old));
    if (snprintf(err->msg, sizeof(err->msg), "%s: %s", head, old) < 0)
        err->msg[0] = '\0';
    return -1;
}

int err_hint(owl_err *err, const char *fmt, ...)
{
    char hint[OWL_ERR_MAX];
    size_t len, hlen;
    va_list ap;

    if (err == NULL)
        return -1;
    va_start(ap, fmt);
    vsnprintf(hint, sizeof(hint), fmt, ap);
    va_end(ap);
    len = strlen(err->msg);
    hlen = strlen(hint);
    if (len + 7 + hlen < sizeof(err->msg)) {
        memcpy(err->msg + len, "\nHINT: ", 7);
        memcpy(err->msg + len + 7, hint, hlen + 1);
    }
    return -1;
}

void err_clear(owl_err *err)
{
    if (err == NULL)
        return;
    err->code = 0;
    err->msg[0] = '\0';
}
