/* The host instance id, kept beside the boot it was made for (see instance.h). The file:
 *   boot_id <the kernel's boot_id>
 *   instance <32 lowercase hex>
 */
#include "hostd/instance.h"

#include <fcntl.h>
#include <stdio.h>
#include <sys/random.h>
#include <sys/stat.h>

#include "common/util.h"
#include "hostd/mounts.h"

#define BOOT_ID_MAX 64

int host_instance_random(char ret[CHANNEL_INSTANCE_LEN + 1])
{
	unsigned char raw[CHANNEL_INSTANCE_LEN / 2];
	ssize_t n = getrandom(raw, sizeof(raw), 0);

	if (n != (ssize_t)sizeof(raw))
		return n < 0 ? -errno : -EIO;
	for (size_t i = 0; i < sizeof(raw); i++)
		snprintf(ret + 2 * i, 3, "%02x", raw[i]);
	return 0;
}

static int read_boot_id(const char *proc_root, char *buf, size_t size)
{
	_cleanup_free_ char *path = xasprintf("%s/sys/kernel/random/boot_id", proc_root);
	size_t len;
	int r = read_file_at(AT_FDCWD, path, buf, size, &len);

	if (r < 0)
		return r;
	if (len > 0 && buf[len - 1] == '\n')
		buf[--len] = '\0';
	if (len == 0 || strchr(buf, ' ') || strchr(buf, '\n'))
		return -EINVAL;
	return 0;
}

/* The instance in the file's content, if it was made for boot_id. */
static int parse_file(const char *buf, const char *boot_id, char *ret)
{
	char want[BOOT_ID_MAX + 32];

	snprintf(want, sizeof(want), "boot_id %s\ninstance ", boot_id);
	if (!startswith(buf, want))
		return -ESTALE;
	const char *id = buf + strlen(want);
	size_t len = strcspn(id, "\n");
	if (!channel_instance_is_valid(id, len) || !streq(id + len, "\n"))
		return -EINVAL;
	memcpy(ret, id, len);
	ret[len] = '\0';
	return 0;
}

static int write_file(int dirfd, const char *boot_id, const char *instance)
{
	_cleanup_free_ char *content = xasprintf("boot_id %s\ninstance %s\n", boot_id, instance);

	return write_file_atomic_at(dirfd, HOST_INSTANCE_FILE, content);
}

int host_instance_load(
	const char *share_dir, const char *proc_root, char ret[CHANNEL_INSTANCE_LEN + 1])
{
	char boot_id[BOOT_ID_MAX], buf[256];
	size_t len;
	int r;

	r = read_boot_id(proc_root, boot_id, sizeof(boot_id));
	if (r < 0)
		return r;
	_cleanup_free_ char *dir = xasprintf("%s/" MOUNTS_PRIVATE_DIR, share_dir);
	_cleanup_close_ int dirfd = open(dir, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	if (dirfd < 0)
		return -errno;
	r = read_file_at(dirfd, HOST_INSTANCE_FILE, buf, sizeof(buf), &len);
	if (r == 0 && parse_file(buf, boot_id, ret) == 0)
		return 0;
	r = host_instance_random(ret);
	if (r < 0)
		return r;
	return write_file(dirfd, boot_id, ret);
}
