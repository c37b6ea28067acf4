/* The tree reader: a powercap tree (the powerd share, /sys/class/powercap on bare metal) read in
 * a thread of its own, so that a stalled 9p or virtiofs mount blocks that thread only. */
#pragma once

#include "guestd/source.h"

/* base NULL: no loop, readings are waited for with ops->wait(). */
int tree_reader_new(const char *root, struct event_base *base, void (*on_ready)(void *), void *arg,
	struct source_reader **ret);
