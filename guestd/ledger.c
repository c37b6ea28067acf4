/* Energy accounting per service or process over exact integer µJ. */
#include "guestd/ledger.h"

#include "common/attribution.h"
#include "common/util.h"

static void entry_done(struct ledger_entry *e)
{
	/* cpu_samples_free() frees the array too: free the strings only. */
	free(e->s.key);
	free(e->s.unit);
	free(e->s.pid);
	free(e->s.comm);
	free(e->s.exe);
	free(e->s.cmdline);
}

void ledger_free(struct ledger *l)
{
	if (!l)
		return;
	for (size_t i = 0; i < l->n; i++)
		entry_done(&l->v[i]);
	free(l->v);
	*l = (struct ledger){ 0 };
}

void ledger_update(
	struct ledger *l, uint64_t energy_uj, uint64_t busy_ns, struct cpu_samples *samples)
{
	size_t n = samples->n;
	struct ledger_entry *next = xcalloc(n ? n : 1, sizeof(*next));
	uint64_t *cpu_ns = xcalloc(n ? n : 1, sizeof(*cpu_ns));
	uint64_t *frac = xcalloc(n ? n : 1, sizeof(*frac));
	uint64_t *got = xcalloc(n ? n : 1, sizeof(*got));
	uint64_t busy_delta = 0;
	size_t j = 0;

	if (l->has_baseline && busy_ns > l->last_busy_ns)
		busy_delta = busy_ns - l->last_busy_ns;
	/* Merge the sorted old entries with the sorted samples. */
	for (size_t i = 0; i < n; i++) {
		struct cpu_sample *s = &samples->v[i];
		int c = 1;

		while (j < l->n && (c = strcmp(l->v[j].s.key, s->key)) < 0)
			entry_done(&l->v[j++]); /* vanished */
		next[i].s = *s;
		if (j < l->n && c == 0) {
			struct ledger_entry *old = &l->v[j++];

			/* A counter that went back (a cgroup recreated) counts from zero. */
			cpu_ns[i] =
				s->cpu_ns >= old->s.cpu_ns ? s->cpu_ns - old->s.cpu_ns : s->cpu_ns;
			frac[i] = old->frac;
			next[i].total_uj = old->total_uj;
			entry_done(old);
		} else {
			cpu_ns[i] = l->has_baseline ? s->cpu_ns : 0;
		}
	}
	while (j < l->n)
		entry_done(&l->v[j++]);

	if (l->has_baseline && n > 0)
		attribution_split(energy_uj, busy_delta, cpu_ns, n, frac, got);
	for (size_t i = 0; i < n; i++) {
		next[i].frac = frac[i];
		next[i].interval_uj = got[i];
		next[i].total_uj += got[i];
	}

	free(l->v);
	l->v = next;
	l->n = n;
	l->last_busy_ns = busy_ns;
	l->has_baseline = true;
	/* The strings now belong to the ledger. */
	free(samples->v);
	*samples = (struct cpu_samples){ 0 };
	free(cpu_ns);
	free(frac);
	free(got);
}

uint64_t ledger_sum_uj(const struct ledger *l)
{
	uint64_t sum = 0;

	for (size_t i = 0; i < l->n; i++)
		sum += l->v[i].total_uj;
	return sum;
}
