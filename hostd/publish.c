/* What every publisher shares: freeing, and one publish with its failures logged once per streak.
 */
#include "hostd/publish.h"

#include "common/log.h"
#include "common/util.h"

void publisher_free(struct publisher *p)
{
	if (p)
		p->ops->free(p);
}

int publisher_publish(struct publisher *p, const char *domain, const struct publish_tick *tick,
	const uint64_t *total_uj)
{
	int r = p->ops->publish(p, tick, total_uj);

	if (r == -EAGAIN)
		return 0; /* nothing published by design (not connected, no room): no streak */
	if (r < 0 && !p->is_failing)
		log_warn("domain %s: cannot write its %s: %s", domain, p->ops->kind, strerror(-r));
	else if (r == 0 && p->is_failing)
		log_info("domain %s: %s writable again", domain, p->ops->kind);
	p->is_failing = r < 0;
	return r;
}
