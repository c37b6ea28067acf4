/* libFuzzer target: the guest's energy channel reader (guestd/channel_reader.c): the byte stream
 * a host writes into the virtio-serial port, cut into lines in a bounded buffer, each parsed as a
 * record. The port is a pipe reopened through /proc/self/fd; the input is written in chunks (their
 * sizes from the input's first byte, so a record split across reads is covered), with a drain
 * after each. The reading taken at the end must be what a plain model of the contract gives: the
 * newest valid complete line of at most CHANNEL_RECORD_MAX - 1 bytes, unless a line of another
 * version came after it. */
#include <fcntl.h>

#include "common/channel_record.h"
#include "common/util.h"
#include "guestd/channel_reader.h"
#include "guestd/source.h"
#include "tests/fuzz/fuzz.h"

static int pipe_w = -1;
static char port_path[64];

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	int p[2];

	fuzz_quiet();
	/* one pipe for the whole run: the reader opens its own read end by path each time */
	if (pipe2(p, O_CLOEXEC) < 0 || fcntl(p[1], F_SETFL, O_NONBLOCK) < 0)
		abort();
	pipe_w = p[1];
	snprintf(port_path, sizeof(port_path), "/proc/self/fd/%d", p[0]);
	return 0;
}

struct model {
	bool has_record;
	struct channel_record rec;
	bool is_future; /* the newest parsed line was of another version */
};

static void model_lines(const char *s, size_t size, struct model *m)
{
	*m = (struct model){ 0 };
	for (size_t pos = 0; pos < size;) {
		const char *nl = memchr(s + pos, '\n', size - pos);
		if (!nl)
			break; /* a partial line waits for more */
		size_t len = (size_t)(nl - (s + pos));
		struct channel_record rec;

		if (len <= CHANNEL_RECORD_MAX - 1) {
			int r = channel_record_parse(s + pos, len, &rec);
			if (r == 0) {
				m->rec = rec;
				m->has_record = true;
				m->is_future = false;
			} else if (r == -EPROTONOSUPPORT) {
				m->is_future = true;
			}
		}
		pos += len + 1;
	}
}

static void check_reading(const struct source_reading *rd, const struct model *m)
{
	if (m->is_future) {
		if (rd->error != -EPROTONOSUPPORT)
			abort();
		return;
	}
	if (!m->has_record) {
		if (rd->error == 0)
			abort();
		return;
	}
	if (rd->error != 0 || rd->n_zones != m->rec.n_zones || !rd->has_heartbeat ||
		rd->hb.seq != m->rec.seq || !streq(rd->instance, m->rec.instance))
		abort();
	for (size_t i = 0; i < rd->n_zones; i++)
		if (!streq(rd->zones[i].name, m->rec.zones[i].name) ||
			rd->zones[i].energy_uj != m->rec.zones[i].energy_uj)
			abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct source_reader *r;
	struct source_reading rd;
	struct model m;
	size_t chunk = size ? 1 + (size_t)data[0] * 8 : 1;

	if (size > 32768)
		return -1; /* the pipe holds 64 KiB; this stays well inside */
	if (channel_reader_new(port_path, NULL, &r) < 0)
		abort();
	r->ops->request(r);
	for (size_t off = 0; off < size;) {
		size_t n = MIN(chunk, size - off);

		if (write_all(pipe_w, data + off, n) < 0)
			abort();
		off += n;
		r->ops->request(r);
	}
	if (r->ops->take(r, &rd) < 0)
		abort();
	model_lines((const char *)data, size, &m);
	check_reading(&rd, &m);
	source_reading_done(&rd);
	r->ops->free(r);
	return 0;
}
