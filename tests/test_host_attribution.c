/* attribution_split: property tests against an independent model. The model computes each
 * interval's fixed-point share with a bitwise long division over 192-bit numbers (not the
 * module's 128-bit quotient/remainder split), keeps exact fixed-point sums, and compares with a
 * long double running total of the exact rational shares. */
#include "tests/testutil.h"

#include <inttypes.h>
#include <math.h>

#include "common/attribution.h"

typedef unsigned __int128 u128;

static uint64_t rng_state;

static uint64_t rnd(void)
{
	/* splitmix64 */
	uint64_t z = (rng_state += UINT64_C(0x9e3779b97f4a7c15));
	z = (z ^ (z >> 30)) * UINT64_C(0xbf58476d1ce4e5b9);
	z = (z ^ (z >> 27)) * UINT64_C(0x94d049bb133111eb);
	return z ^ (z >> 31);
}

static uint64_t rnd_below(uint64_t n)
{
	return n ? rnd() % n : 0;
}

static void seed(void)
{
	const char *e = getenv("POWERD_TEST_SEED");
	rng_state = e ? strtoull(e, NULL, 0) : now_monotonic_ns();
	print_message("seed %" PRIu64 " (POWERD_TEST_SEED to replay)\n", rng_state);
}

/* floor(a × b × 2^32 / d) by shift-and-subtract over 3×64-bit limbs. */
static u128 model_fixed(uint64_t a, uint64_t b, u128 d)
{
	u128 p = (u128)a * b;
	/* numerator n = p << 32 as 192 bits: hi (64) and lo (128) */
	uint64_t hi = (uint64_t)(p >> 96);
	u128 lo = p << 32;
	u128 q = 0, r = 0;

	for (int bit = 191; bit >= 0; bit--) {
		unsigned nb =
			bit >= 128 ? (unsigned)(hi >> (bit - 128)) & 1 : (unsigned)(lo >> bit) & 1;
		/* r < d ≤ 2^127 here, so the shift cannot overflow */
		r = (r << 1) | nb;
		q <<= 1;
		if (r >= d) {
			r -= d;
			q |= 1;
		}
	}
	return q;
}

struct model {
	size_t n;
	uint64_t *frac, *got, *total;
	u128 *fixed_sum;    /* Σ of per-interval fixed-point shares, exact */
	long double *exact; /* Σ of exact shares */
};

static void model_init(struct model *m, size_t n)
{
	m->n = n;
	m->frac = xcalloc(n, sizeof(uint64_t));
	m->got = xcalloc(n, sizeof(uint64_t));
	m->total = xcalloc(n, sizeof(uint64_t));
	m->fixed_sum = xcalloc(n, sizeof(u128));
	m->exact = xcalloc(n, sizeof(long double));
}

static void model_done(struct model *m)
{
	free(m->frac);
	free(m->got);
	free(m->total);
	free(m->fixed_sum);
	free(m->exact);
}

/* One interval through the module and the model; checks the invariants. */
static void step(struct model *m, uint64_t energy, uint64_t busy, const uint64_t *cpu,
	u128 *host_total, bool check_exact)
{
	u128 sum_cpu = 0;

	for (size_t i = 0; i < m->n; i++)
		sum_cpu += cpu[i];
	u128 d = (u128)busy > sum_cpu ? (u128)busy : sum_cpu;

	attribution_split(energy, busy, cpu, m->n, m->frac, m->got);
	*host_total += energy;

	u128 sum_total = 0, sum_got = 0;
	for (size_t i = 0; i < m->n; i++) {
		if (d == 0) {
			assert_true(m->got[i] == 0);
		} else {
			m->fixed_sum[i] += model_fixed(energy, cpu[i], d);
			m->exact[i] += (long double)energy * (long double)cpu[i] / (long double)d;
		}
		m->total[i] += m->got[i];
		sum_got += m->got[i];
		/* the module's running total is the floor of the exact fixed-point sum */
		assert_true((u128)m->total[i] == m->fixed_sum[i] >> ATTRIBUTION_FRAC_BITS);
		assert_true(m->frac[i] == (uint64_t)(m->fixed_sum[i] & 0xffffffffu));
		sum_total += m->total[i];
		if (check_exact) {
			/* proportional within 1 µJ of the exact share, never above it */
			long double e = m->exact[i];
			long double slack = 1e-9L * e + 1e-6L;
			assert_true((long double)m->total[i] <= e + slack);
			assert_true((long double)m->total[i] > e - 1 - slack);
		}
	}
	/* carried remainders may pay out more than this interval's energy; the sums cannot */
	assert_true(sum_got <= energy + m->n);
	assert_true(sum_total <= *host_total);
}

static uint64_t rnd_magnitude(void)
{
	switch (rnd_below(5)) {
	case 0:
		return 0;
	case 1:
		return rnd_below(100);
	case 2:
		return rnd_below(1000000);
	case 3:
		return rnd_below(UINT64_C(1) << 40);
	default:
		return rnd();
	}
}

static void test_random_intervals(void **state)
{
	seed();
	for (int run = 0; run < 40; run++) {
		size_t n = 1 + rnd_below(run < 4 ? 1000 : 40);
		struct model m;
		uint64_t *cpu = xcalloc(n, sizeof(uint64_t));
		u128 host = 0;
		int intervals = n > 100 ? 200 : 2000;

		model_init(&m, n);
		for (int k = 0; k < intervals; k++) {
			uint64_t energy = rnd_below(200000000);
			uint64_t busy = rnd_below(UINT64_C(16) * 1000000000);
			uint64_t sum = 0;
			for (size_t i = 0; i < n; i++) {
				cpu[i] = rnd_below(busy / n + 2);
				sum += cpu[i];
			}
			switch (rnd_below(6)) {
			case 0: /* skew: the domains' clocks ran ahead of /proc/stat */
				busy = sum / 2;
				break;
			case 1:
				busy = 0;
				break;
			case 2: /* nobody ran */
				busy = 0;
				memset(cpu, 0, n * sizeof(uint64_t));
				break;
			default:
				break;
			}
			step(&m, energy, busy, cpu, &host, true);
		}
		model_done(&m);
		free(cpu);
	}
}

static void test_huge_values(void **state)
{
	seed();
	for (int run = 0; run < 20; run++) {
		size_t n = 1 + rnd_below(8);
		struct model m;
		uint64_t cpu[8];
		u128 host = 0;

		model_init(&m, n);
		for (int k = 0; k < 2000; k++) {
			uint64_t energy = rnd_magnitude();
			uint64_t busy = rnd_magnitude();
			for (size_t i = 0; i < n; i++)
				cpu[i] = rnd_magnitude();
			if (rnd_below(4) == 0)
				for (size_t i = 0; i < n; i++)
					cpu[i] = UINT64_MAX - rnd_below(3);
			/* keep totals within 64 bits: restart the model before they could wrap */
			if (host + energy > (u128)UINT64_MAX) {
				model_done(&m);
				model_init(&m, n);
				host = 0;
			}
			step(&m, energy, busy, cpu, &host, false);
		}
		model_done(&m);
	}
}

static void test_exact_cases(void **state)
{
	uint64_t frac[3] = { 0 }, got[3];
	uint64_t cpu[3] = { 1, 1, 2 };

	/* 100 µJ over 1:1:2 with host busy 4: exactly 25, 25, 50 */
	attribution_split(100, 4, cpu, 3, frac, got);
	assert_int_equal(got[0], 25);
	assert_int_equal(got[1], 25);
	assert_int_equal(got[2], 50);
	assert_int_equal(frac[0], 0);

	/* busy larger than the domains: the rest stays unattributed */
	attribution_split(100, 8, cpu, 3, frac, got);
	assert_int_equal(got[0], 12);
	assert_int_equal(got[2], 25);
	assert_int_equal(frac[0], UINT64_C(1) << 31);
	/* the half µJ carried is paid out next time */
	attribution_split(100, 8, cpu, 3, frac, got);
	assert_int_equal(got[0], 13);
	assert_int_equal(frac[0], 0);

	/* D == 0: nothing attributed, remainders untouched */
	uint64_t zero[3] = { 0 };
	frac[1] = 77;
	attribution_split(1000, 0, zero, 3, frac, got);
	assert_int_equal(got[0] + got[1] + got[2], 0);
	assert_int_equal(frac[1], 77);

	/* a single domain with all the busy time gets everything, even at the extremes */
	uint64_t one = UINT64_MAX, f = 0, g;
	attribution_split(UINT64_MAX, UINT64_MAX, &one, 1, &f, &g);
	assert_true(g == UINT64_MAX);
	assert_int_equal(f, 0);

	/* 1 µJ split over 3 equal domains many times: Σ never above host, each ≈ a third */
	uint64_t fr[3] = { 0 }, tot[3] = { 0 }, c3[3] = { 5, 5, 5 };
	for (int k = 0; k < 3000; k++) {
		attribution_split(1, 15, c3, 3, fr, got);
		for (int i = 0; i < 3; i++)
			tot[i] += got[i];
		assert_true(tot[0] + tot[1] + tot[2] <= (uint64_t)k + 1);
	}
	for (int i = 0; i < 3; i++)
		assert_true(tot[i] == 999 || tot[i] == 1000);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_exact_cases),
		cmocka_unit_test(test_random_intervals),
		cmocka_unit_test(test_huge_values),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
