/* The messages the privileged part of powerd-host sends its HTTP server process over their
 * socketpair (SOCK_STREAM): a fixed 12-byte header, then length bytes of payload.
 *   magic   u32  PRIVSEP_MAGIC
 *   version u16  PRIVSEP_VERSION (another version is refused: both ends are one binary)
 *   type    u16  enum privsep_msg_type
 *   length  u32  payload bytes, at most PRIVSEP_MSG_MAX
 * All in host byte order: both ends are the same program on the same machine. The only thing the
 * server process sends back is a heartbeat byte now and then, whose content the privileged part
 * ignores: it only notes that the server's loop still runs. */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define PRIVSEP_MAGIC UINT32_C(0x44525750) /* "PWRD" read as little-endian bytes */
#define PRIVSEP_VERSION 1
#define PRIVSEP_HEADER_SIZE 12
/* 3000 domains with four zones render to about 2 MiB of exposition. */
#define PRIVSEP_MSG_MAX (UINT32_C(32) << 20)

enum privsep_msg_type {
	PRIVSEP_MSG_METRICS = 1, /* the Prometheus exposition, served on /metrics */
	PRIVSEP_MSG_STATUS = 2,	 /* the status document, served on the status socket */
	PRIVSEP_MSG_TYPES = 2,
};

void privsep_msg_header(uint8_t out[PRIVSEP_HEADER_SIZE], enum privsep_msg_type type, uint32_t len);
/* 0, or -EPROTO (magic), -EPROTONOSUPPORT (version), -EBADMSG (type), -EMSGSIZE (length). */
int privsep_msg_parse(
	const uint8_t hdr[PRIVSEP_HEADER_SIZE], enum privsep_msg_type *ret_type, uint32_t *ret_len);
