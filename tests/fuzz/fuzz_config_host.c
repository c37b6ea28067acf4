/* libFuzzer target: powerd-host's YAML config (hostd/host_config.c over common/config.c), loaded
 * by path as the daemon does, from a memfd. A successful load must copy and free cleanly. */
#include "common/util.h"
#include "hostd/host_config.h"
#include "tests/fuzz/fuzz.h"

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	fuzz_quiet();
	return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct host_config c;
	char path[64], err[512];
	int fd = fuzz_memfd(data, size, path, sizeof(path));

	err[0] = '\0';
	host_config_init(&c);
	if (host_config_load(path, false, &c, err, sizeof(err)) == 0) {
		struct host_config copy;

		config_copy(host_config_schema, &copy, &c);
		(void)host_config_tracks(&copy, "vm-1");
		host_config_free(&copy);
	} else if (!err[0]) {
		abort(); /* a refused config always says why */
	}
	host_config_free(&c);
	close(fd);
	return 0;
}
