/* `powerd-host attach|detach`: edit a domain's persistent XML so that the guest sees its powercap
 * tree as the "scaphandre" share (9p or virtiofs), through libvirt and libxml2.
 *
 * The edit is idempotent: the share is recognised by <target dir='scaphandre'/>, and nothing is
 * redefined when nothing changed. For virtiofs, qemu needs guest memory shared with virtiofsd:
 * attach adds <memoryBacking><source type='memfd'/><access mode='shared'/></memoryBacking>, or
 * only <access mode='shared'/> to an existing <memoryBacking>, and records what it added in the
 * domain's <metadata> (powerd's own namespace). detach removes exactly what that record names,
 * so a memory backing the administrator wrote stays as it was.
 *
 * attach --channel adds the energy channel (DESIGN.md §4) and, where there is none, a
 * virtio-serial controller, recorded the same way: detach removes the channel, and the controller
 * only if attach added it. */
#include "hostd/attach.h"

#include <getopt.h>
#include <libvirt/libvirt.h>
#include <libvirt/virterror.h>
#include <libxml/parser.h>
#include <libxml/tree.h>

#include "common/log.h"
#include "common/util.h"
#include "hostd/domxml.h"
#include "hostd/host_config.h"
#include "hostd/mounts.h"

#define SHARE_TARGET "scaphandre"
#define POWERD_XMLNS "https://github.com/powerd/powerd/xmlns/attach/1"
#define POWERD_XMLNS_PREFIX "powerd"
/* Values of the record's memory-backing attribute. */
#define MB_ADDED_ELEMENT "element"
#define MB_ADDED_ACCESS "access"
/* The record's channel attribute: the channel, or the channel and its virtio-serial controller. */
#define CH_ADDED_CHANNEL "channel"
#define CH_ADDED_CONTROLLER "channel+controller"

enum share_kind { SHARE_9P, SHARE_VIRTIOFS };

struct attach_args {
	bool is_attach;
	bool is_virtiofs;
	bool is_channel;
	const char *config_path;
	const char *domain;
};

static void usage(FILE *f)
{
	fprintf(f, "usage: powerd-host attach DOMAIN [--virtiofs | --channel] [-c FILE]\n"
		   "       powerd-host detach DOMAIN [-c FILE]\n");
}

/* libvirt prints every error to stderr by default; we report them once, with the domain. */
static void virt_error_quiet(void *data, virErrorPtr err)
{
}

static const char *virt_last_error(void)
{
	const char *m = virGetLastErrorMessage();

	return m ? m : "unknown libvirt error";
}

/* The <filesystem> whose <target dir='scaphandre'/> is ours, if any. */
static xmlNode *find_share(xmlNode *devices)
{
	for (xmlNode *n = devices ? devices->children : NULL; n; n = n->next) {
		if (!domxml_node_is(n, "filesystem"))
			continue;
		xmlNode *t = domxml_child(n, "target");
		if (t && domxml_attr_is(t, "dir", SHARE_TARGET))
			return n;
	}
	return NULL;
}

static enum share_kind share_kind_of(xmlNode *fs)
{
	xmlNode *d = domxml_child(fs, "driver");

	return d && domxml_attr_is(d, "type", "virtiofs") ? SHARE_VIRTIOFS : SHARE_9P;
}

static const char *share_kind_name(enum share_kind k)
{
	return k == SHARE_VIRTIOFS ? "virtiofs" : "9p";
}

static xmlNode *build_share(const char *source_dir, bool is_virtiofs)
{
	xmlNode *fs = xmlNewNode(NULL, (const xmlChar *)"filesystem");

	domxml_set_attr(fs, "type", "mount");
	if (is_virtiofs) {
		domxml_set_attr(domxml_new_child(fs, "driver"), "type", "virtiofs");
	} else {
		domxml_set_attr(fs, "accessmode", "passthrough");
	}
	domxml_set_attr(domxml_new_child(fs, "source"), "dir", source_dir);
	domxml_set_attr(domxml_new_child(fs, "target"), "dir", SHARE_TARGET);
	/* libvirt 9.0 rejects <readonly/> on virtiofs: there the export itself is a read-only mount
	 */
	if (!is_virtiofs)
		domxml_new_child(fs, "readonly");
	return fs;
}

/* powerd's record in <metadata>: <powerd:attach xmlns:powerd=... memory-backing="..."/>. */
static xmlNode *find_record(xmlNode *root)
{
	xmlNode *md = domxml_child(root, "metadata");

	for (xmlNode *n = md ? md->children : NULL; n; n = n->next)
		if (domxml_node_is(n, "attach") && n->ns && n->ns->href &&
			streq((const char *)n->ns->href, POWERD_XMLNS))
			return n;
	return NULL;
}

/* Note in the record (made if missing) that attach added what attr names. */
static void write_record(xmlNode *root, const char *attr, const char *value)
{
	xmlNode *rec = find_record(root);

	if (!rec) {
		xmlNode *md = domxml_child(root, "metadata");
		if (!md)
			md = domxml_new_child(root, "metadata");
		rec = xmlNewChild(md, NULL, (const xmlChar *)"attach", NULL);
		xmlNs *ns = xmlNewNs(
			rec, (const xmlChar *)POWERD_XMLNS, (const xmlChar *)POWERD_XMLNS_PREFIX);
		xmlSetNs(rec, ns);
	}
	domxml_set_attr(rec, attr, value);
}

/* The record without attr; the record itself (and an emptied <metadata>) goes with its last. */
static void drop_record_attr(xmlNode *root, const char *attr)
{
	xmlNode *rec = find_record(root);

	if (!rec)
		return;
	xmlUnsetProp(rec, (const xmlChar *)attr);
	if (rec->properties)
		return;
	xmlNode *md = rec->parent;
	domxml_unlink_free(rec);
	if (md && !xmlFirstElementChild(md))
		domxml_unlink_free(md);
}

/* Make guest memory shareable with virtiofsd; returns what was added (NULL: nothing). */
static const char *ensure_shared_memory(xmlNode *root)
{
	xmlNode *mb = domxml_child(root, "memoryBacking");

	if (!mb) {
		mb = domxml_new_child(root, "memoryBacking");
		domxml_set_attr(domxml_new_child(mb, "source"), "type", "memfd");
		domxml_set_attr(domxml_new_child(mb, "access"), "mode", "shared");
		return MB_ADDED_ELEMENT;
	}
	xmlNode *access = domxml_child(mb, "access");
	if (access) {
		if (domxml_attr_is(access, "mode", "shared"))
			return NULL;
		domxml_set_attr(access, "mode", "shared");
	} else {
		domxml_set_attr(domxml_new_child(mb, "access"), "mode", "shared");
	}
	/* a private access mode we overwrote is not restored: the record only says "access" */
	return MB_ADDED_ACCESS;
}

static void undo_shared_memory(xmlNode *root)
{
	xmlNode *rec = find_record(root);
	xmlNode *mb = domxml_child(root, "memoryBacking");

	if (!rec)
		return;
	if (mb && domxml_attr_is(rec, "memory-backing", MB_ADDED_ELEMENT))
		domxml_unlink_free(mb);
	else if (mb && domxml_attr_is(rec, "memory-backing", MB_ADDED_ACCESS))
		domxml_unlink_free(domxml_child(mb, "access"));
	drop_record_attr(root, "memory-backing");
}

/* The energy channel, and a virtio-serial controller if there is none (libvirt cannot hot-plug
 * one); false when the channel was there already. */
static bool add_channel(xmlNode *root, xmlNode *devices)
{
	if (domxml_find_channel(devices))
		return false;
	bool has_controller = domxml_find_virtio_serial(devices) != NULL;
	if (!has_controller) {
		xmlNode *c = domxml_new_child(devices, "controller");
		domxml_set_attr(c, "type", "virtio-serial");
		domxml_set_attr(c, "index", "0");
	}
	/* the same device powerd-host hot-plugs (DOMXML_CHANNEL_DEVICE) */
	xmlNode *ch = domxml_new_child(devices, "channel");
	domxml_set_attr(ch, "type", "unix");
	domxml_set_attr(domxml_new_child(ch, "source"), "mode", "bind");
	xmlNode *t = domxml_new_child(ch, "target");
	domxml_set_attr(t, "type", "virtio");
	domxml_set_attr(t, "name", CHANNEL_PORT_NAME);
	write_record(root, "channel", has_controller ? CH_ADDED_CHANNEL : CH_ADDED_CONTROLLER);
	return true;
}

/* What add_channel recorded, and only that; false if it recorded nothing. */
static bool remove_channel(xmlNode *root, xmlNode *devices)
{
	xmlNode *rec = find_record(root);

	if (!rec || !xmlHasProp(rec, (const xmlChar *)"channel"))
		return false;
	if (domxml_attr_is(rec, "channel", CH_ADDED_CONTROLLER))
		domxml_unlink_free(domxml_find_virtio_serial(devices));
	domxml_unlink_free(domxml_find_channel(devices));
	drop_record_attr(root, "channel");
	return true;
}

/* Apply the edit to doc; *ret_changed says whether anything changed. 0, or -errno with msg. */
static int edit_domain(xmlDoc *doc, const struct attach_args *a, const char *source_dir,
	bool *ret_changed, char *msg, size_t msg_size)
{
	xmlNode *root = xmlDocGetRootElement(doc);

	*ret_changed = false;
	if (!domxml_node_is(root, "domain")) {
		snprintf(msg, msg_size, "libvirt returned XML without a <domain> root");
		return -EINVAL;
	}
	xmlNode *devices = domxml_child(root, "devices");
	xmlNode *share = find_share(devices);

	if (!a->is_attach) {
		*ret_changed = remove_channel(root, devices);
		if (!share && !find_record(root))
			return 0;
		domxml_unlink_free(share);
		undo_shared_memory(root);
		*ret_changed = true;
		return 0;
	}
	if (!devices)
		devices = domxml_new_child(root, "devices");
	if (a->is_channel) {
		*ret_changed = add_channel(root, devices);
		return 0;
	}

	enum share_kind want = a->is_virtiofs ? SHARE_VIRTIOFS : SHARE_9P;
	if (share) {
		enum share_kind have = share_kind_of(share);
		if (have != want) {
			snprintf(msg, msg_size,
				"already has a %s share with target '%s'; detach it first",
				share_kind_name(have), SHARE_TARGET);
			return -EEXIST;
		}
		/* a source left from an older name or share_dir: qemu would not start once that
		 * directory is gone (a renamed domain's old share is removed) */
		xmlNode *src = domxml_child(share, "source");
		if (src && domxml_attr_is(src, "dir", source_dir))
			return 0;
		if (!src)
			src = domxml_new_child(share, "source");
		domxml_set_attr(src, "dir", source_dir);
		*ret_changed = true;
		return 0;
	}
	xmlAddChild(devices, build_share(source_dir, a->is_virtiofs));
	if (a->is_virtiofs) {
		const char *added = ensure_shared_memory(root);
		if (added)
			write_record(root, "memory-backing", added);
	}
	*ret_changed = true;
	return 0;
}

static int parse_args(int argc, char **argv, const char *config_path, struct attach_args *a)
{
	static const struct option opts[] = {
		{ "virtiofs", no_argument, NULL, 'V' },
		{ "channel", no_argument, NULL, 'C' },
		{ "config", required_argument, NULL, 'c' },
		{ "help", no_argument, NULL, 'h' },
		{ 0 },
	};
	int c;

	*a = (struct attach_args){ .is_attach = streq(argv[0], "attach"),
		.config_path = config_path };
	optind = 0; /* 0: glibc re-initialises its state (main may have run getopt) */
	opterr = 0;
	while ((c = getopt_long(argc, argv, "+c:h", opts, NULL)) != -1 ||
		(optind < argc && !a->domain)) {
		if (c == -1) {
			/* a positional argument: the domain; options may follow it */
			a->domain = argv[optind++];
			continue;
		}
		switch (c) {
		case 'V':
			if (!a->is_attach) {
				log_err("%s: --virtiofs is an option of attach only", argv[0]);
				return -EINVAL;
			}
			a->is_virtiofs = true;
			break;
		case 'C':
			if (!a->is_attach) {
				log_err("%s: --channel is an option of attach only (detach removes "
					"everything attach added)",
					argv[0]);
				return -EINVAL;
			}
			a->is_channel = true;
			break;
		case 'c':
			a->config_path = optarg;
			break;
		case 'h':
			usage(stdout);
			return 1;
		default:
			log_err("%s: unknown option %s", argv[0], argv[optind - 1]);
			return -EINVAL;
		}
	}
	if (a->is_channel && a->is_virtiofs) {
		log_err("%s: --channel and --virtiofs are separate attachments: run attach twice",
			argv[0]);
		return -EINVAL;
	}
	if (!a->domain || optind != argc) {
		log_err("%s: expected exactly one DOMAIN", argv[0]);
		return -EINVAL;
	}
	/* the name becomes a path component under share_dir: the same rule as powerd-host's */
	if (!mounts_name_is_safe(a->domain)) {
		log_err("%s: '%s' cannot be a domain name powerd-host shares", argv[0], a->domain);
		return -EINVAL;
	}
	return 0;
}

static int run(const struct attach_args *a, const struct host_config *cfg)
{
	const char *verb = a->is_attach ? "attach" : "detach";
	char msg[512] = "";
	int status = 1;
	virConnectPtr conn;
	virDomainPtr dom = NULL;
	char *xml = NULL;
	xmlDoc *doc = NULL;
	xmlChar *out = NULL;
	int out_len = 0;
	bool is_changed;
	_cleanup_free_ char *source_dir = xasprintf("%s/%s", cfg->share_dir, a->domain);

	conn = virConnectOpen(cfg->libvirt_uri);
	if (!conn) {
		log_err("domain %s: cannot connect to %s: %s", a->domain, cfg->libvirt_uri,
			virt_last_error());
		return 1;
	}
	dom = virDomainLookupByName(conn, a->domain);
	if (!dom) {
		log_err("domain %s: not found at %s: %s", a->domain, cfg->libvirt_uri,
			virt_last_error());
		goto out;
	}
	if (!virDomainIsPersistent(dom)) {
		log_err("domain %s: is transient; %s works on a persistent definition (virsh "
			"define)",
			a->domain, verb);
		goto out;
	}
	/* SECURE: redefining without it would drop passwords (VNC, SPICE) from the definition */
	xml = virDomainGetXMLDesc(dom, VIR_DOMAIN_XML_INACTIVE | VIR_DOMAIN_XML_SECURE);
	if (!xml) {
		log_err("domain %s: cannot read its XML: %s", a->domain, virt_last_error());
		goto out;
	}
	doc = domxml_parse(xml);
	if (!doc) {
		log_err("domain %s: cannot parse the XML libvirt returned", a->domain);
		goto out;
	}

	int r = edit_domain(doc, a, source_dir, &is_changed, msg, sizeof(msg));
	if (r < 0) {
		log_err("domain %s: %s", a->domain, msg);
		goto out;
	}
	if (!is_changed) {
		printf("domain %s: %s\n", a->domain,
			!a->is_attach	? "nothing attached, nothing to do"
			: a->is_channel ? "energy channel already there, nothing to do"
					: "share already attached, nothing to do");
		status = 0;
		goto out;
	}

	xmlDocDumpMemory(doc, &out, &out_len);
	virDomainPtr redefined = out ? virDomainDefineXML(conn, (const char *)out) : NULL;
	if (!redefined) {
		log_err("domain %s: libvirt refused the edited definition: %s", a->domain,
			virt_last_error());
		goto out;
	}
	virDomainFree(redefined);
	if (a->is_channel)
		printf("domain %s: energy channel '%s' attached (with a virtio-serial controller "
		       "if "
		       "it had none)\n",
			a->domain, CHANNEL_PORT_NAME);
	else if (a->is_attach)
		printf("domain %s: %s share of %s attached as '%s'\n", a->domain,
			a->is_virtiofs ? "virtiofs" : "9p", source_dir, SHARE_TARGET);
	else
		printf("domain %s: what powerd-host attach added is detached\n", a->domain);
	if (virDomainIsActive(dom) == 1)
		printf("domain %s: running; the change takes effect at its next start\n",
			a->domain);
	status = 0;
out:
	xmlFree(out);
	xmlFreeDoc(doc);
	free(xml);
	if (dom)
		virDomainFree(dom);
	virConnectClose(conn);
	return status;
}

int attach_main(int argc, char **argv, const char *config_path)
{
	struct attach_args a;
	struct host_config cfg;
	char err[512] = "";
	int r, status;

	if (argc < 1 || (!streq(argv[0], "attach") && !streq(argv[0], "detach"))) {
		usage(stderr);
		return 2;
	}
	r = parse_args(argc, argv, config_path, &a);
	if (r > 0)
		return 0;
	if (r < 0) {
		usage(stderr);
		return 2;
	}

	host_config_init(&cfg);
	bool is_default = !a.config_path || streq(a.config_path, HOST_CONFIG_DEFAULT_PATH);
	r = host_config_load(a.config_path ? a.config_path : HOST_CONFIG_DEFAULT_PATH, is_default,
		&cfg, err, sizeof(err));
	if (r < 0) {
		log_err("domain %s: %s", a.domain, err);
		host_config_free(&cfg);
		return 1;
	}
	/* powerd-host prepares the exported directory only for domains it tracks; without it the
	 * domain would fail to start (qemu cannot initialise the fsdev) */
	if (a.is_attach && !host_config_tracks(&cfg, a.domain)) {
		log_err("domain %s: not tracked by powerd-host (domains.include/exclude in %s); "
			"its share would never be prepared",
			a.domain, a.config_path ? a.config_path : HOST_CONFIG_DEFAULT_PATH);
		host_config_free(&cfg);
		return 1;
	}
	virSetErrorFunc(NULL, virt_error_quiet);
	status = run(&a, &cfg);
	host_config_free(&cfg);
	return status;
}
