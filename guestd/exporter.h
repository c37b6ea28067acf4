/* Rendering powerd-guest's exposition (DESIGN.md §3): native names, or Scaphandre's names, units
 * and labels. Pure: reads the source and ledger, writes text. */
#pragma once

#include <stdint.h>

#include "common/strbuf.h"
#include "guestd/ledger.h"
#include "guestd/source.h"

/* Processes served at most, the ones with the most energy; the rest still count in the sums. */
#define EXPORTER_MAX_PROCESSES 500

struct exporter_view {
	const struct source *source;
	const struct ledger *ledger; /* NULL: attribution none */
	int attribution;	     /* enum guest_attribution */
	int metric_names;	     /* enum guest_metric_names */
	uint64_t interval_ns;	     /* of the last sample, for power */
	const char *version;
};

void exporter_render(struct strbuf *b, const struct exporter_view *v);
