/* A domain's info labels and Nova's metadata (see domain_info.h). Nova's element, as its libvirt
 * driver writes it (nova/virt/libvirt/config.py, LibvirtConfigGuestMetaNova*):
 *
 *   <nova:instance xmlns:nova="http://openstack.org/xmlns/libvirt/nova/1.1">
 *     <nova:name>web-1</nova:name>
 *     <nova:flavor name="m1.small" id="...">...</nova:flavor>
 *     <nova:image uuid="...">...</nova:image>             (newer releases; uuid="" from a volume)
 *     <nova:owner>
 *       <nova:user uuid="...">alice</nova:user>
 *       <nova:project uuid="...">demo</nova:project>
 *     </nova:owner>
 *     <nova:root type="image" uuid="..."/>                (type="volume": no image)
 *   </nova:instance>
 *
 * Only operators' tools write metadata (a guest cannot), but what they write is still checked:
 * anything not of that shape leaves the label empty. */
#include "hostd/domain_info.h"

#include <errno.h>

#include <libxml/tree.h>

#include "common/prom.h"
#include "common/util.h"
#include "hostd/domxml.h"

#define DOMAIN_INFO_METRIC "powerd_domain_info"

static const char *const label_names[DOMAIN_INFO_N_LABELS] = {
	[DOMAIN_INFO_UUID] = "uuid",
	[DOMAIN_INFO_INSTANCE_NAME] = "instance_name",
	[DOMAIN_INFO_PROJECT_ID] = "project_id",
	[DOMAIN_INFO_PROJECT_NAME] = "project_name",
	[DOMAIN_INFO_USER_ID] = "user_id",
	[DOMAIN_INFO_USER_NAME] = "user_name",
	[DOMAIN_INFO_FLAVOR] = "flavor",
	[DOMAIN_INFO_IMAGE_ID] = "image_id",
};

struct domain_info *domain_info_new(void)
{
	struct domain_info *info = xcalloc(1, sizeof(*info));

	for (size_t i = 0; i < DOMAIN_INFO_N_LABELS; i++)
		info->v[i] = xstrdup("");
	return info;
}

void domain_info_free(struct domain_info *info)
{
	if (!info)
		return;
	for (size_t i = 0; i < DOMAIN_INFO_N_LABELS; i++)
		free(info->v[i]);
	free(info);
}

/* U+FFFD, for a byte that is not UTF-8 or a control character (a newline in a name). */
#define REPLACEMENT "\xef\xbf\xbd"

/* Built on the stack, kept at its own size: a domain's labels are mostly short. */
static char *sanitise(const char *value)
{
	char out[DOMAIN_INFO_VALUE_MAX + 1];
	size_t len = 0;

	for (const char *p = value; p && *p;) {
		size_t n = utf8_valid_len(p);
		unsigned char c = (unsigned char)*p;
		const char *src = p;

		if (n == 0 || (n == 1 && (c < 0x20 || c == 0x7f))) {
			src = REPLACEMENT;
			n = sizeof(REPLACEMENT) - 1;
			p++;
		} else {
			p += n;
		}
		if (len + n > DOMAIN_INFO_VALUE_MAX)
			break;
		memcpy(out + len, src, n);
		len += n;
	}
	return xstrndup(out, len);
}

void domain_info_set(struct domain_info *info, enum domain_info_label l, const char *value)
{
	if ((unsigned)l >= DOMAIN_INFO_N_LABELS)
		return;
	free(info->v[l]);
	info->v[l] = sanitise(value);
}

const char *domain_info_get(const struct domain_info *info, enum domain_info_label l)
{
	return (unsigned)l < DOMAIN_INFO_N_LABELS ? info->v[l] : "";
}

const char *domain_info_label_name(enum domain_info_label l)
{
	return (unsigned)l < DOMAIN_INFO_N_LABELS ? label_names[l] : "";
}

bool domain_info_equal(const struct domain_info *a, const struct domain_info *b)
{
	if (!a || !b)
		return a == b;
	if (a->is_nova != b->is_nova)
		return false;
	for (size_t i = 0; i < DOMAIN_INFO_N_LABELS; i++)
		if (!streq(a->v[i], b->v[i]))
			return false;
	return true;
}

static bool is_nova_node(const xmlNode *n, const char *name)
{
	return domxml_node_is(n, name) && n->ns && n->ns->href &&
	       streq((const char *)n->ns->href, DOMAIN_INFO_NOVA_NS);
}

static bool is_plain_node(const xmlNode *n, const char *name)
{
	return domxml_node_is(n, name) && !n->ns;
}

/* The one child matching is(n, name): NULL if there is none, or more than one (ambiguous). */
static xmlNode *only_child(
	xmlNode *parent, bool (*is)(const xmlNode *n, const char *name), const char *name)
{
	xmlNode *found = NULL;

	for (xmlNode *n = parent ? parent->children : NULL; n; n = n->next) {
		if (!is(n, name))
			continue;
		if (found)
			return NULL;
		found = n;
	}
	return found;
}

/* The element's text when it holds nothing but text; NULL otherwise (caller frees). */
static xmlChar *plain_text(xmlNode *n)
{
	if (!n)
		return NULL;
	for (xmlNode *c = n->children; c; c = c->next)
		if (c->type != XML_TEXT_NODE && c->type != XML_CDATA_SECTION_NODE)
			return NULL;
	xmlChar *text = xmlNodeGetContent(n);
	return text ? text : xmlStrdup((const xmlChar *)"");
}

static void set_text(struct domain_info *info, enum domain_info_label l, xmlNode *n)
{
	xmlChar *text = plain_text(n);

	if (text)
		domain_info_set(info, l, (const char *)text);
	xmlFree(text);
}

static void set_attr(
	struct domain_info *info, enum domain_info_label l, xmlNode *n, const char *attr)
{
	xmlChar *v = n ? xmlGetNoNsProp(n, (const xmlChar *)attr) : NULL;

	if (v)
		domain_info_set(info, l, (const char *)v);
	xmlFree(v);
}

static void parse_nova(struct domain_info *info, xmlNode *instance)
{
	xmlNode *owner = only_child(instance, is_nova_node, "owner");
	xmlNode *user = only_child(owner, is_nova_node, "user");
	xmlNode *project = only_child(owner, is_nova_node, "project");
	xmlNode *root = only_child(instance, is_nova_node, "root");

	info->is_nova = true;
	set_text(info, DOMAIN_INFO_INSTANCE_NAME, only_child(instance, is_nova_node, "name"));
	set_attr(info, DOMAIN_INFO_FLAVOR, only_child(instance, is_nova_node, "flavor"), "name");
	set_attr(info, DOMAIN_INFO_USER_ID, user, "uuid");
	set_text(info, DOMAIN_INFO_USER_NAME, user);
	set_attr(info, DOMAIN_INFO_PROJECT_ID, project, "uuid");
	set_text(info, DOMAIN_INFO_PROJECT_NAME, project);
	/* nova:root says what the instance booted from; nova:image (newer releases) carries the
	 * root's id even when that is a volume, so it counts only where there is no nova:root. */
	if (root) {
		if (domxml_attr_is(root, "type", "image"))
			set_attr(info, DOMAIN_INFO_IMAGE_ID, root, "uuid");
	} else {
		set_attr(info, DOMAIN_INFO_IMAGE_ID, only_child(instance, is_nova_node, "image"),
			"uuid");
	}
}

/* Nova's element among <metadata>'s children; *is_nova also when it is there twice (then NULL:
 * which one libvirt would answer for is not ours to guess). */
static xmlNode *find_nova(xmlNode *metadata, bool *is_nova)
{
	xmlNode *found = NULL;

	for (xmlNode *n = metadata ? metadata->children : NULL; n; n = n->next) {
		if (!is_nova_node(n, "instance"))
			continue;
		*is_nova = true;
		if (found)
			return NULL;
		found = n;
	}
	return found;
}

int domain_info_parse_xml(const char *xml, struct domain_info **ret)
{
	xmlDoc *doc = xml ? domxml_parse(xml) : NULL;
	xmlNode *root = doc ? xmlDocGetRootElement(doc) : NULL;
	struct domain_info *info;

	*ret = NULL;
	if (!is_plain_node(root, "domain") && !is_nova_node(root, "instance")) {
		xmlFreeDoc(doc);
		return -EINVAL;
	}
	info = domain_info_new();
	if (is_nova_node(root, "instance")) {
		parse_nova(info, root);
	} else {
		bool is_nova = false;
		xmlNode *metadata = only_child(root, is_plain_node, "metadata");
		xmlNode *instance = find_nova(metadata, &is_nova);

		set_text(info, DOMAIN_INFO_UUID, only_child(root, is_plain_node, "uuid"));
		if (instance)
			parse_nova(info, instance);
		info->is_nova = is_nova;
	}
	xmlFreeDoc(doc);
	*ret = info;
	return 0;
}

void domain_info_render_family(struct strbuf *out)
{
	prom_family(out, DOMAIN_INFO_METRIC, PROM_GAUGE,
		"Constant 1 per tracked domain, labelled with what an operator knows it as: its "
		"UUID and, from OpenStack Nova's metadata, the instance's name, project, user, "
		"flavor and image (empty where unknown).");
}

void domain_info_render(struct strbuf *out, const char *domain, const struct domain_info *info)
{
	const char *labels[2 * (DOMAIN_INFO_N_LABELS + 1) + 1];
	size_t k = 0;

	labels[k++] = "domain";
	labels[k++] = domain;
	for (size_t i = 0; i < DOMAIN_INFO_N_LABELS; i++) {
		labels[k++] = label_names[i];
		labels[k++] = info ? info->v[i] : "";
	}
	labels[k] = NULL;
	prom_sample(out, DOMAIN_INFO_METRIC, labels, 1);
}
