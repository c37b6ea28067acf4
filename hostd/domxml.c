/* libvirt domain XML helpers (see domxml.h). */
#include "hostd/domxml.h"

#include <errno.h>
#include <string.h>

#include <libxml/parser.h>

#include "common/util.h"

xmlDoc *domxml_parse(const char *xml)
{
	return xmlReadMemory(xml, (int)strlen(xml), "domain.xml", NULL,
		XML_PARSE_NONET | XML_PARSE_NOERROR | XML_PARSE_NOWARNING);
}

bool domxml_node_is(const xmlNode *n, const char *name)
{
	return n && n->type == XML_ELEMENT_NODE && streq((const char *)n->name, name);
}

xmlNode *domxml_child(xmlNode *parent, const char *name)
{
	for (xmlNode *n = parent ? parent->children : NULL; n; n = n->next)
		if (domxml_node_is(n, name) && !n->ns)
			return n;
	return NULL;
}

bool domxml_attr_is(xmlNode *n, const char *attr, const char *value)
{
	xmlChar *v = xmlGetProp(n, (const xmlChar *)attr);
	bool is = v && streq((const char *)v, value);

	xmlFree(v);
	return is;
}

xmlNode *domxml_new_child(xmlNode *parent, const char *name)
{
	return xmlNewChild(parent, NULL, (const xmlChar *)name, NULL);
}

void domxml_set_attr(xmlNode *n, const char *name, const char *value)
{
	xmlSetProp(n, (const xmlChar *)name, (const xmlChar *)value);
}

void domxml_unlink_free(xmlNode *n)
{
	if (!n)
		return;
	xmlUnlinkNode(n);
	xmlFreeNode(n);
}

xmlNode *domxml_find_virtio_serial(xmlNode *devices)
{
	for (xmlNode *n = devices ? devices->children : NULL; n; n = n->next)
		if (domxml_node_is(n, "controller") && domxml_attr_is(n, "type", "virtio-serial"))
			return n;
	return NULL;
}

xmlNode *domxml_find_channel(xmlNode *devices)
{
	for (xmlNode *n = devices ? devices->children : NULL; n; n = n->next) {
		if (!domxml_node_is(n, "channel"))
			continue;
		xmlNode *t = domxml_child(n, "target");
		if (t && domxml_attr_is(t, "type", "virtio") &&
			domxml_attr_is(t, "name", CHANNEL_PORT_NAME))
			return n;
	}
	return NULL;
}

int domxml_channel_inspect(const char *xml, struct domxml_channel *ret)
{
	xmlDoc *doc = domxml_parse(xml);
	xmlNode *root = doc ? xmlDocGetRootElement(doc) : NULL;

	*ret = (struct domxml_channel){ 0 };
	if (!domxml_node_is(root, "domain")) {
		xmlFreeDoc(doc);
		return -EINVAL;
	}
	xmlNode *devices = domxml_child(root, "devices");
	xmlNode *ch = domxml_find_channel(devices);
	ret->has_controller = domxml_find_virtio_serial(devices) != NULL;
	ret->has_channel = ch != NULL;
	xmlNode *src = ch && domxml_attr_is(ch, "type", "unix") ? domxml_child(ch, "source") : NULL;
	/* only a socket qemu listens on: with mode='connect' qemu is the client of someone else's
	 */
	if (src && !domxml_attr_is(src, "mode", "bind"))
		src = NULL;
	xmlChar *path = src ? xmlGetProp(src, (const xmlChar *)"path") : NULL;
	if (path && path[0] == '/')
		ret->path = xstrdup((const char *)path);
	xmlFree(path);
	xmlFreeDoc(doc);
	return 0;
}

void domxml_channel_done(struct domxml_channel *c)
{
	free(c->path);
	c->path = NULL;
}
