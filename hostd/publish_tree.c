/* The tree publisher: a domain's powercap tree in its share (common/tree.c does the writing). */
#include "hostd/publish.h"

#include "common/tree.h"
#include "common/util.h"

struct tree_publisher {
	struct publisher pub;
	struct tree *tree;
};

static int tree_publish(
	struct publisher *p, const struct publish_tick *tick, const uint64_t *total_uj)
{
	struct tree_publisher *tp = (struct tree_publisher *)p;

	return tree_write(tp->tree, total_uj, tick->hb);
}

static void tree_publisher_free(struct publisher *p)
{
	struct tree_publisher *tp = (struct tree_publisher *)p;

	tree_free(tp->tree);
	free(tp);
}

static const struct publisher_ops tree_ops = {
	.kind = "tree",
	.publish = tree_publish,
	.free = tree_publisher_free,
};

struct publisher *publish_tree_new(struct tree *t)
{
	struct tree_publisher *tp = xcalloc(1, sizeof(*tp));

	tp->pub.ops = &tree_ops;
	tp->tree = t;
	return &tp->pub;
}
