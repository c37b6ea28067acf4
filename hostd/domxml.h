/* Reading and editing libvirt domain XML with libxml2: the small helpers attach.c (persistent
 * definitions) and domains.c (the live XML of running domains) share, and what both need to know
 * of the energy channel's device. */
#pragma once

#include <stdbool.h>

#include <libxml/tree.h>

#include "hostd/channel.h"

/* What powerd-host hot-plugs (live) and attach --channel adds (persistent): libvirt picks the
 * socket path, qemu listens on it. */
#define DOMXML_CHANNEL_DEVICE                                                                      \
	"<channel type='unix'><source mode='bind'/><target type='virtio' name='" CHANNEL_PORT_NAME \
	"'/></channel>"

/* A document from libvirt's XML text (no network, no error output); NULL if it does not parse. */
xmlDoc *domxml_parse(const char *xml);

bool domxml_node_is(const xmlNode *n, const char *name);
/* The first child element of that name without a namespace. */
xmlNode *domxml_child(xmlNode *parent, const char *name);
bool domxml_attr_is(xmlNode *n, const char *attr, const char *value);
xmlNode *domxml_new_child(xmlNode *parent, const char *name);
void domxml_set_attr(xmlNode *n, const char *name, const char *value);
void domxml_unlink_free(xmlNode *n);

/* <controller type='virtio-serial'> among devices. */
xmlNode *domxml_find_virtio_serial(xmlNode *devices);
/* The <channel> whose <target type='virtio' name='org.powerd.energy.0'/>. */
xmlNode *domxml_find_channel(xmlNode *devices);

/* The energy channel as a running domain's live XML shows it. */
struct domxml_channel {
	bool has_controller;
	bool has_channel;
	char *path; /* <source mode='bind' path=...> of a unix channel (qemu listens there),
		     * absolute; NULL if none (heap) */
};

/* -EINVAL if xml is not a domain. */
int domxml_channel_inspect(const char *xml, struct domxml_channel *ret);
void domxml_channel_done(struct domxml_channel *c);
