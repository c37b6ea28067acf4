/* The channel reader: records of the energy channel (DESIGN.md §4), read from the virtio-serial
 * port org.powerd.energy.0 without ever blocking: the port is opened O_NONBLOCK and drained by a
 * read event on the loop (and at each request), into a bounded line buffer. */
#pragma once

#include "guestd/source.h"

#define CHANNEL_PORT_NAME "org.powerd.energy.0"
#define CHANNEL_SYSFS_PORTS "/sys/class/virtio-ports"

/* The device of the port whose sys_dir/<vportNpM>/name holds name: dev_dir/<vportNpM> into buf.
 * No udev needed. -ENOENT when there is none. */
int channel_port_find(
	const char *sys_dir, const char *dev_dir, const char *name, char *buf, size_t size);

/* path: the port's device (or any stand-in that reads the same: a FIFO, a socket). The port is
 * opened at the first request and again at each request after it was closed (it went away, or
 * the host side hung up). base NULL: drained at each request only. */
int channel_reader_new(const char *path, struct event_base *base, struct source_reader **ret);
