/* Logging: one line per message on stderr, with journald priority prefixes when journald reads it.
 */
#include "common/log.h"

#include <stdarg.h>
#include <sys/stat.h>

static const char *log_ident = "powerd";
static int log_max_level = LOG_INFO;
static bool log_to_journal;

static const char *const level_names[] = {
	[LOG_EMERG] = "emerg",
	[LOG_ALERT] = "alert",
	[LOG_CRIT] = "crit",
	[LOG_ERR] = "error",
	[LOG_WARNING] = "warning",
	[LOG_NOTICE] = "notice",
	[LOG_INFO] = "info",
	[LOG_DEBUG] = "debug",
};

/* systemd sets JOURNAL_STREAM=<dev>:<inode> of the stream it connected to stderr. */
static bool stderr_is_journal(void)
{
	const char *e = getenv("JOURNAL_STREAM");
	unsigned long long dev, ino;
	struct stat st;

	if (!e || sscanf(e, "%llu:%llu", &dev, &ino) != 2)
		return false;
	if (fstat(STDERR_FILENO, &st) < 0)
		return false;
	return (unsigned long long)st.st_dev == dev && (unsigned long long)st.st_ino == ino;
}

void log_setup(const char *ident)
{
	log_ident = ident;
	log_to_journal = stderr_is_journal();
}

void log_set_max_level(int level)
{
	log_max_level = level;
}

int log_get_max_level(void)
{
	return log_max_level;
}

int log_level_from_string(const char *s, int *ret_level)
{
	for (int i = LOG_ERR; i <= LOG_DEBUG; i++)
		if (streq(s, level_names[i])) {
			*ret_level = i;
			return 0;
		}
	if (streq(s, "warn")) {
		*ret_level = LOG_WARNING;
		return 0;
	}
	return -EINVAL;
}

const char *log_level_to_string(int level)
{
	if (level < 0 || level > LOG_DEBUG)
		return "?";
	return level_names[level];
}

void log_msg(int level, const char *fmt, ...)
{
	char line[2048];
	va_list ap;
	int saved = errno;

	if (level > log_max_level)
		return;
	va_start(ap, fmt);
	vsnprintf(line, sizeof(line), fmt, ap);
	va_end(ap);
	/* A message quoting hostile input (a config value, a path, a domain name) must stay one
	 * line: a newline would start a journal entry without a priority. */
	for (char *p = line; *p; p++)
		if (*p == '\n' || *p == '\r')
			*p = ' ';
	/* One write per line, so lines from concurrent writers never interleave. */
	if (log_to_journal)
		dprintf(STDERR_FILENO, "<%d>%s\n", level, line);
	else
		dprintf(STDERR_FILENO, "%s: %s: %s\n", log_ident, log_level_to_string(level), line);
	errno = saved;
}
