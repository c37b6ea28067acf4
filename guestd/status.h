/* `powerd-guest status`: ask the running daemon for its exposition on its own listen address and
 * print the VM's zones and the daemon's health. */
#pragma once

#include <stddef.h>

#include "guestd/guest_config.h"

#define GUEST_STATUS_MAX_BYTES (16u << 20)
#define GUEST_STATUS_TIMEOUT_MS 5000

/* 0 healthy (served, source up), 1 served but not healthy, 3 nothing answers (not running). */
int guest_status_main(const struct guest_config *cfg);

/* The value of the first sample of family name whose labels contain label_key="label_value"
 * (label_key NULL: the first sample of name); -ENOENT when there is none. Exposition text as
 * served, hostile until checked: label values are unescaped and bounded. */
int guest_status_sample(const char *exposition, const char *name, const char *label_key,
	const char *label_value, double *ret);
