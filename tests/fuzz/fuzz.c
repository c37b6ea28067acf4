/* Helpers shared by the libFuzzer targets (see fuzz.h). */
#include "tests/fuzz/fuzz.h"

#include <dirent.h>
#include <event2/event.h>
#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>

#include "common/log.h"
#include "common/util.h"

#define FIXTURE_PATH_MAX 200
#define FIXTURE_CONTENT_MAX 4096

static char *fixture_root;

static void event_log_discard(int severity, const char *msg)
{
}

void fuzz_quiet(void)
{
	/* every level is above -1: nothing is printed */
	log_set_max_level(-1);
	event_set_log_callback(event_log_discard);
}

int fuzz_memfd(const uint8_t *data, size_t size, char *path, size_t path_size)
{
	int fd = memfd_create("powerd-fuzz", MFD_CLOEXEC);

	if (fd < 0 || write_all(fd, data, size) < 0)
		abort();
	snprintf(path, path_size, "/proc/self/fd/%d", fd);
	return fd;
}

unsigned fuzz_fd_count(void)
{
	unsigned n = 0;

	for (int fd = 0; fd < 256; fd++)
		if (fcntl(fd, F_GETFD) >= 0)
			n++;
	return n;
}

/* Remove everything under dirfd (never following a link), leaving dirfd itself. */
static void empty_dir(int dirfd)
{
	_cleanup_close_ int fd = dup(dirfd);
	DIR *d = fd >= 0 ? fdopendir(fd) : NULL;

	if (!d)
		abort();
	fd = -1; /* the DIR owns it now */
	for (struct dirent *de; (de = readdir(d));) {
		struct stat st;

		if (streq(de->d_name, ".") || streq(de->d_name, ".."))
			continue;
		if (fstatat(dirfd, de->d_name, &st, AT_SYMLINK_NOFOLLOW) < 0)
			continue;
		if (S_ISDIR(st.st_mode)) {
			_cleanup_close_ int sub =
				openat(dirfd, de->d_name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW);
			if (sub >= 0)
				empty_dir(sub);
			unlinkat(dirfd, de->d_name, AT_REMOVEDIR);
		} else {
			unlinkat(dirfd, de->d_name, 0);
		}
	}
	closedir(d);
}

static void fixture_remove(void)
{
	if (!fixture_root)
		return;
	_cleanup_close_ int fd = open(fixture_root, O_RDONLY | O_DIRECTORY | O_NOFOLLOW);
	if (fd >= 0)
		empty_dir(fd);
	rmdir(fixture_root);
	free(fixture_root);
	fixture_root = NULL;
}

/* Whether path is relative, short, and made of at most FUZZ_FIXTURE_DEPTH plain components. */
static bool is_safe_path(const char *path, size_t len)
{
	size_t depth = 0;

	if (len == 0 || len > FIXTURE_PATH_MAX || path[0] == '/' || memchr(path, '\0', len))
		return false;
	for (size_t i = 0; i < len;) {
		size_t j = i;
		while (j < len && path[j] != '/')
			j++;
		if (j == i || (j - i == 1 && path[i] == '.') ||
			(j - i == 2 && path[i] == '.' && path[i + 1] == '.'))
			return false;
		if (++depth > FUZZ_FIXTURE_DEPTH)
			return false;
		i = j + 1;
	}
	return true;
}

/* mkdir -p of every parent of path (relative to root_fd). */
static void make_parents(int root_fd, char *path)
{
	for (char *s = strchr(path, '/'); s; s = strchr(s + 1, '/')) {
		*s = '\0';
		mkdirat(root_fd, path, 0755);
		*s = '/';
	}
}

static size_t decode_content(const char *s, size_t len, char *out)
{
	size_t n = 0, root_len = strlen(fixture_root);

	for (size_t i = 0; i < len && n < FIXTURE_CONTENT_MAX; i++) {
		if (s[i] == '\\' && i + 1 < len && s[i + 1] == 'R') {
			i++;
			if (n + root_len <= FIXTURE_CONTENT_MAX) {
				memcpy(out + n, fixture_root, root_len);
				n += root_len;
			}
		} else if (s[i] == '\\' && i + 1 < len) {
			char c = s[++i];
			out[n++] = c == 'n' ? '\n' : c == '0' ? '\0' : c;
		} else {
			out[n++] = s[i];
		}
	}
	return n;
}

static void add_entry(int root_fd, const char *line, size_t len)
{
	const char *eq = memchr(line, '=', len);
	const char *arrow = NULL;
	char path[FIXTURE_PATH_MAX + 1];
	size_t plen;

	for (size_t i = 0; i + 1 < len && (!eq || line + i < eq); i++)
		if (line[i] == '-' && line[i + 1] == '>') {
			arrow = line + i;
			break;
		}
	if (arrow)
		plen = (size_t)(arrow - line);
	else if (eq)
		plen = (size_t)(eq - line);
	else if (len > 1 && line[len - 1] == '/')
		plen = len - 1;
	else
		return;
	if (!is_safe_path(line, plen))
		return;
	memcpy(path, line, plen);
	path[plen] = '\0';
	make_parents(root_fd, path);
	if (arrow) {
		const char *target = arrow + 2;
		size_t tlen = len - plen - 2;
		char t[FIXTURE_PATH_MAX + 1];

		if (!is_safe_path(target, tlen))
			return;
		memcpy(t, target, tlen);
		t[tlen] = '\0';
		symlinkat(t, root_fd, path);
	} else if (eq) {
		char content[FIXTURE_CONTENT_MAX];
		size_t n = decode_content(eq + 1, len - plen - 1, content);
		_cleanup_close_ int fd = openat(
			root_fd, path, O_WRONLY | O_CREAT | O_TRUNC | O_NOFOLLOW | O_CLOEXEC, 0644);

		if (fd >= 0 && write_all(fd, content, n) < 0)
			abort();
	} else {
		mkdirat(root_fd, path, 0755);
	}
}

const char *fuzz_fixture_build(const uint8_t *data, size_t size)
{
	const char *s = (const char *)data;
	size_t entries = 0;

	if (!fixture_root) {
		const char *tmp = getenv("TMPDIR");
		char *root = xasprintf("%s/powerd-fuzz-XXXXXX", tmp && *tmp ? tmp : "/tmp");

		if (!mkdtemp(root))
			abort();
		fixture_root = root;
		atexit(fixture_remove);
	}
	_cleanup_close_ int root_fd = open(fixture_root, O_RDONLY | O_DIRECTORY | O_NOFOLLOW);
	if (root_fd < 0)
		abort();
	empty_dir(root_fd);
	for (size_t pos = 0; pos < size && entries < FUZZ_FIXTURE_ENTRIES;) {
		const char *nl = memchr(s + pos, '\n', size - pos);
		size_t len = nl ? (size_t)(nl - (s + pos)) : size - pos;

		add_entry(root_fd, s + pos, len);
		entries++;
		pos += len + 1;
	}
	return fixture_root;
}
