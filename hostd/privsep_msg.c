/* The header of the privileged part's messages to its HTTP server process (privsep_msg.h). */
#include "hostd/privsep_msg.h"

#include <errno.h>
#include <string.h>

void privsep_msg_header(uint8_t out[PRIVSEP_HEADER_SIZE], enum privsep_msg_type type, uint32_t len)
{
	uint32_t magic = PRIVSEP_MAGIC;
	uint16_t version = PRIVSEP_VERSION, t = (uint16_t)type;

	memcpy(out, &magic, 4);
	memcpy(out + 4, &version, 2);
	memcpy(out + 6, &t, 2);
	memcpy(out + 8, &len, 4);
}

int privsep_msg_parse(
	const uint8_t hdr[PRIVSEP_HEADER_SIZE], enum privsep_msg_type *ret_type, uint32_t *ret_len)
{
	uint32_t magic, len;
	uint16_t version, type;

	memcpy(&magic, hdr, 4);
	memcpy(&version, hdr + 4, 2);
	memcpy(&type, hdr + 6, 2);
	memcpy(&len, hdr + 8, 4);
	if (magic != PRIVSEP_MAGIC)
		return -EPROTO;
	if (version != PRIVSEP_VERSION)
		return -EPROTONOSUPPORT;
	if (type < 1 || type > PRIVSEP_MSG_TYPES)
		return -EBADMSG;
	if (len > PRIVSEP_MSG_MAX)
		return -EMSGSIZE;
	*ret_type = (enum privsep_msg_type)type;
	*ret_len = len;
	return 0;
}
