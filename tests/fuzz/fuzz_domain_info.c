/* libFuzzer target: a domain's info labels from domain XML (hostd/domain_info.c), as libvirt
 * hands it over (a whole <domain>, or Nova's metadata element alone). Whatever the XML, every
 * label is valid UTF-8 of at most DOMAIN_INFO_VALUE_MAX bytes without control characters, and the
 * rendered series is one line. */
#include "common/util.h"
#include "hostd/domain_info.h"
#include "tests/fuzz/fuzz.h"

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	fuzz_quiet();
	return 0;
}

static void check_label(const char *v)
{
	size_t len = strlen(v);

	if (len > DOMAIN_INFO_VALUE_MAX)
		abort();
	for (const char *p = v; *p;) {
		size_t n = utf8_valid_len(p);
		if (n == 0 || (n == 1 && ((unsigned char)*p < 0x20 || *p == 0x7f)))
			abort();
		p += n;
	}
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	_cleanup_free_ char *xml = xstrndup((const char *)data, size);
	struct domain_info *info = NULL;
	struct strbuf b = { 0 };
	int r = domain_info_parse_xml(xml, &info);

	if (r < 0) {
		if (r != -EINVAL || info)
			abort();
		return 0;
	}
	for (int l = 0; l < DOMAIN_INFO_N_LABELS; l++)
		check_label(domain_info_get(info, l));
	domain_info_render(&b, "d", info);
	if (!b.buf || strchr(b.buf, '\n') != b.buf + b.len - 1)
		abort();
	strbuf_done(&b);
	domain_info_free(info);
	return 0;
}
