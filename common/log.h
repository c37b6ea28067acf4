/* Logging to stderr in a form journald understands: "<N>message" (sd-daemon priority prefixes)
 * when stderr is the journal (JOURNAL_STREAM), "ident: level: message" on a terminal or a file. */
#pragma once

#include <stdbool.h>
#include <syslog.h>

#include "common/util.h"

void log_setup(const char *ident);
void log_set_max_level(int level); /* syslog priority: LOG_ERR .. LOG_DEBUG */
int log_get_max_level(void);
/* "error", "warning", "notice", "info", "debug" -> LOG_*; -EINVAL otherwise. */
int log_level_from_string(const char *s, int *ret_level);
const char *log_level_to_string(int level);

void log_msg(int level, const char *fmt, ...) _printf_(2, 3);

#define log_err(...) log_msg(LOG_ERR, __VA_ARGS__)
#define log_warn(...) log_msg(LOG_WARNING, __VA_ARGS__)
#define log_notice(...) log_msg(LOG_NOTICE, __VA_ARGS__)
#define log_info(...) log_msg(LOG_INFO, __VA_ARGS__)
#define log_debug(...) log_msg(LOG_DEBUG, __VA_ARGS__)
