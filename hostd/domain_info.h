/* A domain's info labels: what an operator knows the domain as (its UUID, the instance's name,
 * project, user, flavor, image), for the series powerd_domain_info{domain,uuid,...} 1. Read from
 * OpenStack Nova's metadata in a libvirt domain's XML, or filled label by label by another domain
 * manager (Proxmox: uuid, instance_name). Values are bounded and sanitised when set, so whatever
 * wrote the metadata, a label is valid UTF-8 of at most DOMAIN_INFO_VALUE_MAX bytes without control
 * characters. Pure: no I/O. */
#pragma once

#include <stdbool.h>

#include "common/strbuf.h"

/* The namespace of Nova's <metadata> element (nova/virt/libvirt/config.py), matched by URI: the
 * prefix is whatever the writer chose. */
#define DOMAIN_INFO_NOVA_NS "http://openstack.org/xmlns/libvirt/nova/1.1"
/* Bytes of a label value at most (cut at a character boundary). */
#define DOMAIN_INFO_VALUE_MAX 256

/* In the series' label order. */
enum domain_info_label {
	DOMAIN_INFO_UUID,	   /* libvirt <uuid> (Nova: the instance's UUID) */
	DOMAIN_INFO_INSTANCE_NAME, /* Nova: nova:name, the instance's display name */
	DOMAIN_INFO_PROJECT_ID,	   /* nova:owner/nova:project uuid= */
	DOMAIN_INFO_PROJECT_NAME,  /* nova:owner/nova:project text */
	DOMAIN_INFO_USER_ID,	   /* nova:owner/nova:user uuid= */
	DOMAIN_INFO_USER_NAME,	   /* nova:owner/nova:user text */
	DOMAIN_INFO_FLAVOR,	   /* nova:flavor name= */
	DOMAIN_INFO_IMAGE_ID,	   /* nova:root type='image' uuid=, else nova:image uuid= */
	DOMAIN_INFO_N_LABELS,
};

struct domain_info {
	char *v[DOMAIN_INFO_N_LABELS]; /* never NULL: "" where unknown (heap) */
	bool is_nova;		       /* the XML carries a Nova metadata element */
};

/* Every label "". */
struct domain_info *domain_info_new(void);
void domain_info_free(struct domain_info *info);
/* A sanitised copy of value (NULL: ""): cut to DOMAIN_INFO_VALUE_MAX bytes, invalid UTF-8 and
 * control characters each replaced by U+FFFD. */
void domain_info_set(struct domain_info *info, enum domain_info_label l, const char *value);
const char *domain_info_get(const struct domain_info *info, enum domain_info_label l);
const char *domain_info_label_name(enum domain_info_label l);
bool domain_info_equal(const struct domain_info *a, const struct domain_info *b);

/* From a libvirt domain's XML (<domain>: its <uuid> and the Nova element among <metadata>), or
 * from the Nova element alone (what virDomainGetMetadata returns for DOMAIN_INFO_NOVA_NS; the
 * uuid is then the caller's to set). A label whose element or attribute is missing, repeated or
 * not plain text stays ""; so do all of Nova's when there are two Nova elements. -EINVAL if the
 * XML does not parse or is neither (*ret is then NULL). */
int domain_info_parse_xml(const char *xml, struct domain_info **ret);

/* "# HELP/# TYPE powerd_domain_info". */
void domain_info_render_family(struct strbuf *out);
/* powerd_domain_info{domain="...",uuid="...",...} 1; info NULL: every label but domain "". */
void domain_info_render(struct strbuf *out, const char *domain, const struct domain_info *info);
