// SPDX-License-Identifier: GPL-2.0-only
/*
 * PKSM: /sys/kernel/mm/ksm/ and /sys/kernel/mm/pksm/ and the knobs (see
 * internal.h for the overview).  The swap files are swap.c's.
 */

#include <linux/mm.h>
#include <linux/ksm.h>
#include <linux/pksm.h>
#include <linux/sysfs.h>
#include <linux/kobject.h>
#include <linux/jump_label.h>
#include <linux/memcontrol.h>
#include "internal.h"

/* ---- tunables ---------------------------------------------------------- */

/* Knobs: written under pksm_mutex, read by pksmd under it or with READ_ONCE. */
unsigned int pksm_run = PKSM_RUN_MERGE;
unsigned int pksm_pages_to_scan = 4000;
unsigned int pksm_sleep_ms = 10;
unsigned int pksm_probation_scans = 3;
unsigned int pksm_probation_ms = 500;
unsigned int pksm_period_seconds = 10;
bool pksm_use_zero_pages = true;
bool pksm_fake_merge;
unsigned int pksm_max_page_sharing = 256;
/* Upstream knobs PKSM accepts but has no use for (see the README). */
static unsigned int pksm_prune_ms = 2000;
static bool pksm_smart_scan = true;
static bool pksm_advisor_scan_time;
static unsigned int pksm_advisor_max_cpu = 70;
static unsigned long pksm_advisor_min_pages = 500;
static unsigned long pksm_advisor_max_pages = 30000;
static unsigned int pksm_advisor_target_scan_time = 200;

#define PKSM_MAX_PAGES_TO_SCAN		BIT(24)
#define PKSM_MAX_PERIOD_SECONDS		3600

/* ---- sysfs ------------------------------------------------------------- */

/*
 * pages_shared and pages_sharing are kept as counts (pksm_node_account()),
 * not recounted here: a read costs two atomic loads whatever the size of
 * the stable tree.
 */
static void pksm_count_sharing(unsigned long *shared, unsigned long *sharing)
{
	*shared = max(atomic_long_read(&pksm_nr_shared), 0L);
	*sharing = max(atomic_long_read(&pksm_nr_sharing), 0L);
}

static unsigned long pksm_stat_read(unsigned long *counter);

static unsigned long pksm_metadata_bytes(void)
{
	unsigned long bytes;

	bytes = pksm_unstable_table_bytes() +
		pksm_stat_read(&pksm_sc.nr_stable_nodes) *
		sizeof(struct pksm_stable_node) +
		pksm_stat_read(&pksm_sc.nr_mappings) *
		sizeof(struct pksm_mapping);
	/* The chunks of items and their directory, the place table (track.c). */
	return bytes + pksm_track_bytes();
}

/*
 * A statistic pksmd (or run=2) adds to under pksm_mutex, read without it:
 * a monitor must not wait for a whole batch, or a whole run=2, to read a
 * counter.  A read during a batch may see some of its counts updated and
 * others not yet.
 */
static unsigned long pksm_stat_read(unsigned long *counter)
{
	return READ_ONCE(*counter);
}

#define PKSM_ATTR_RO(_name) \
	static struct kobj_attribute _name##_attr = __ATTR_RO(_name)
#define PKSM_ATTR(_name) \
	static struct kobj_attribute _name##_attr = __ATTR_RW(_name)

/* A read-only file showing a counter under pksm_mutex (M). */
#define PKSM_COUNTER(_name, _var, _reader)				\
static ssize_t _name##_show(struct kobject *kobj,			\
			    struct kobj_attribute *attr, char *buf)	\
{									\
	return sysfs_emit(buf, "%lu\n", _reader(&(_var)));		\
}									\
PKSM_ATTR_RO(_name)

/* A read-only file showing a counter under pksm_lock (L), read under it. */
#define PKSM_LIST_COUNTER(_name, _field)				\
static ssize_t _name##_show(struct kobject *kobj,			\
			    struct kobj_attribute *attr, char *buf)	\
{									\
	struct pksm_list_counts lc;					\
									\
	pksm_list_counts_read(&lc);					\
	return sysfs_emit(buf, "%lu\n", lc._field);			\
}									\
PKSM_ATTR_RO(_name)

/* A read-only file showing an atomic_long_t counter. */
#define PKSM_ATOMIC_COUNTER(_name, _var)				\
static ssize_t _name##_show(struct kobject *kobj,			\
			    struct kobj_attribute *attr, char *buf)	\
{									\
	return sysfs_emit(buf, "%ld\n", atomic_long_read(&(_var)));	\
}									\
PKSM_ATTR_RO(_name)

/*
 * Parse an unsigned value in [min, max]; anything else is -EINVAL and
 * changes nothing.
 */
static int pksm_parse_uint(const char *buf, unsigned int min, unsigned int max,
			   unsigned int *out)
{
	unsigned int v;

	if (kstrtouint(buf, 10, &v) || v < min || v > max)
		return -EINVAL;
	*out = v;
	return 0;
}

/*
 * A strict boolean: "0"/"1", "n"/"y", "off"/"on" (any case), with an
 * optional trailing newline.  kstrtobool() would take "1x" or "0x10".
 */
static int pksm_parse_bool(const char *buf, bool *out)
{
	static const char * const yes[] = { "1", "y", "Y", "on", "ON", "On" };
	static const char * const no[] = { "0", "n", "N", "off", "OFF", "Off" };
	unsigned int i;

	for (i = 0; i < ARRAY_SIZE(yes); i++) {
		if (sysfs_streq(buf, yes[i])) {
			*out = true;
			return 0;
		}
		if (sysfs_streq(buf, no[i])) {
			*out = false;
			return 0;
		}
	}
	return -EINVAL;
}

/* A read-write unsigned knob, set under pksm_mutex, pksmd woken. */
#define PKSM_UINT_KNOB(_name, _var, _min, _max)			\
static unsigned int *const _name##_knob = &(_var);			\
static ssize_t _name##_show(struct kobject *kobj,			\
			    struct kobj_attribute *attr, char *buf)	\
{									\
	return sysfs_emit(buf, "%u\n", READ_ONCE(*_name##_knob));	\
}									\
static ssize_t _name##_store(struct kobject *kobj,			\
			     struct kobj_attribute *attr,		\
			     const char *buf, size_t count)		\
{									\
	unsigned int v;							\
									\
	if (pksm_parse_uint(buf, _min, _max, &v))			\
		return -EINVAL;						\
	mutex_lock(&pksm_mutex);					\
	WRITE_ONCE(*_name##_knob, v);					\
	mutex_unlock(&pksm_mutex);					\
	wake_up_interruptible(&pksm_daemon_wait);				\
	return count;							\
}									\
PKSM_ATTR(_name)

/* A read-write boolean knob ("0"/"1", "y"/"n", ...). */
#define PKSM_BOOL_KNOB(_name, _var)					\
static bool *const _name##_knob = &(_var);				\
static ssize_t _name##_show(struct kobject *kobj,			\
			    struct kobj_attribute *attr, char *buf)	\
{									\
	return sysfs_emit(buf, "%u\n", READ_ONCE(*_name##_knob));	\
}									\
static ssize_t _name##_store(struct kobject *kobj,			\
			     struct kobj_attribute *attr,		\
			     const char *buf, size_t count)		\
{									\
	bool v;								\
									\
	if (pksm_parse_bool(buf, &v))					\
		return -EINVAL;						\
	WRITE_ONCE(*_name##_knob, v);					\
	return count;							\
}									\
PKSM_ATTR(_name)

/* /sys/kernel/mm/ksm/: upstream's files */

static ssize_t run_show(struct kobject *kobj, struct kobj_attribute *attr,
			char *buf)
{
	return sysfs_emit(buf, "%u\n", READ_ONCE(pksm_run));
}

static ssize_t run_store(struct kobject *kobj, struct kobj_attribute *attr,
			 const char *buf, size_t count)
{
	ssize_t ret = count;
	unsigned int v;
	int err;

	if (pksm_parse_uint(buf, PKSM_RUN_STOP, PKSM_RUN_UNMERGE, &v))
		return -EINVAL;
	mutex_lock(&pksm_mutex);
	WRITE_ONCE(pksm_run, v);
	if (v == PKSM_RUN_UNMERGE) {
		/* Every KSM page, of any domain mode. */
		err = pksm_unmerge_until(true, PKSM_DOMAIN_MODES);
		if (err) {
			/* As upstream: stop, and say why the unmerge stopped. */
			WRITE_ONCE(pksm_run, PKSM_RUN_STOP);
			ret = err;
		}
	}
	mutex_unlock(&pksm_mutex);
	wake_up_interruptible(&pksm_daemon_wait);
	return ret;
}
PKSM_ATTR(run);

PKSM_UINT_KNOB(pages_to_scan, pksm_pages_to_scan, 0, PKSM_MAX_PAGES_TO_SCAN);
PKSM_UINT_KNOB(sleep_millisecs, pksm_sleep_ms, 0, 600000);
PKSM_UINT_KNOB(max_page_sharing, pksm_max_page_sharing, 2, INT_MAX);
PKSM_UINT_KNOB(stable_node_chains_prune_millisecs, pksm_prune_ms, 0,
	       UINT_MAX);
PKSM_BOOL_KNOB(use_zero_pages, pksm_use_zero_pages);
PKSM_BOOL_KNOB(smart_scan, pksm_smart_scan);
PKSM_UINT_KNOB(advisor_max_cpu, pksm_advisor_max_cpu, 1, 100);
PKSM_UINT_KNOB(advisor_target_scan_time, pksm_advisor_target_scan_time, 1,
	       UINT_MAX);

/* A read-write unsigned long knob, at least 1 (upstream's advisor limits). */
#define PKSM_ULONG_KNOB(_name, _var)					\
static unsigned long *const _name##_knob = &(_var);			\
static ssize_t _name##_show(struct kobject *kobj,			\
			    struct kobj_attribute *attr, char *buf)	\
{									\
	return sysfs_emit(buf, "%lu\n", READ_ONCE(*_name##_knob));	\
}									\
static ssize_t _name##_store(struct kobject *kobj,			\
			     struct kobj_attribute *attr,		\
			     const char *buf, size_t count)		\
{									\
	unsigned long v;						\
									\
	if (kstrtoul(buf, 10, &v) || !v)				\
		return -EINVAL;						\
	WRITE_ONCE(*_name##_knob, v);					\
	return count;							\
}									\
PKSM_ATTR(_name)

PKSM_ULONG_KNOB(advisor_min_pages_to_scan, pksm_advisor_min_pages);
PKSM_ULONG_KNOB(advisor_max_pages_to_scan, pksm_advisor_max_pages);

static ssize_t advisor_mode_show(struct kobject *kobj,
				 struct kobj_attribute *attr, char *buf)
{
	return sysfs_emit(buf, READ_ONCE(pksm_advisor_scan_time) ?
			  "none [scan-time]\n" : "[none] scan-time\n");
}

static ssize_t advisor_mode_store(struct kobject *kobj,
				  struct kobj_attribute *attr,
				  const char *buf, size_t count)
{
	if (sysfs_streq(buf, "none"))
		WRITE_ONCE(pksm_advisor_scan_time, false);
	else if (sysfs_streq(buf, "scan-time"))
		WRITE_ONCE(pksm_advisor_scan_time, true);
	else
		return -EINVAL;
	return count;
}
PKSM_ATTR(advisor_mode);

static ssize_t pages_shared_show(struct kobject *kobj,
				 struct kobj_attribute *attr, char *buf)
{
	unsigned long shared, sharing;

	pksm_count_sharing(&shared, &sharing);
	return sysfs_emit(buf, "%lu\n", shared);
}
PKSM_ATTR_RO(pages_shared);

static ssize_t pages_sharing_show(struct kobject *kobj,
				  struct kobj_attribute *attr, char *buf)
{
	unsigned long shared, sharing;

	pksm_count_sharing(&shared, &sharing);
	return sysfs_emit(buf, "%lu\n", sharing);
}
PKSM_ATTR_RO(pages_sharing);

/* Items on the probation lists of @lc, all levels. */
static unsigned long pksm_probation_total(const struct pksm_list_counts *lc)
{
	unsigned long v = 0;
	unsigned int level;

	for (level = 0; level < PKSM_LEVELS; level++)
		v += lc->nr_probation[level];
	return v;
}

static ssize_t pages_volatile_show(struct kobject *kobj,
				   struct kobj_attribute *attr, char *buf)
{
	struct pksm_list_counts lc;

	pksm_list_counts_read(&lc);
	return sysfs_emit(buf, "%lu\n",
			  lc.nr_new + lc.nr_rescan + pksm_probation_total(&lc));
}
PKSM_ATTR_RO(pages_volatile);

static ssize_t general_profit_show(struct kobject *kobj,
				   struct kobj_attribute *attr, char *buf)
{
	unsigned long shared, sharing;
	long profit;

	pksm_count_sharing(&shared, &sharing);
	profit = (sharing + atomic_long_read(&ksm_zero_pages)) * PAGE_SIZE -
		 pksm_metadata_bytes();
	return sysfs_emit(buf, "%ld\n", profit);
}
PKSM_ATTR_RO(general_profit);

PKSM_ATOMIC_COUNTER(ksm_zero_pages, ksm_zero_pages);

static unsigned long pksm_no_chains;

PKSM_COUNTER(pages_unshared, pksm_sc.nr_unstable, pksm_stat_read);
PKSM_COUNTER(pages_scanned, pksm_sc.pages_scanned, pksm_stat_read);
PKSM_COUNTER(full_scans, pksm_sc.full_scans, pksm_stat_read);
PKSM_COUNTER(pages_skipped, pksm_sc.nr_deferred, pksm_stat_read);
PKSM_COUNTER(stable_node_chains, pksm_no_chains, pksm_stat_read);
PKSM_COUNTER(stable_node_dups, pksm_sc.nr_dups, pksm_stat_read);

static struct attribute *ksm_attrs[] = {
	&run_attr.attr,
	&pages_to_scan_attr.attr,
	&sleep_millisecs_attr.attr,
	&pages_shared_attr.attr,
	&pages_sharing_attr.attr,
	&pages_unshared_attr.attr,
	&pages_volatile_attr.attr,
	&pages_scanned_attr.attr,
	&pages_skipped_attr.attr,
	&full_scans_attr.attr,
	&use_zero_pages_attr.attr,
	&ksm_zero_pages_attr.attr,
	&general_profit_attr.attr,
	&max_page_sharing_attr.attr,
	&stable_node_chains_attr.attr,
	&stable_node_dups_attr.attr,
	&stable_node_chains_prune_millisecs_attr.attr,
	&smart_scan_attr.attr,
	&advisor_mode_attr.attr,
	&advisor_max_cpu_attr.attr,
	&advisor_min_pages_to_scan_attr.attr,
	&advisor_max_pages_to_scan_attr.attr,
	&advisor_target_scan_time_attr.attr,
	NULL,
};

static const struct attribute_group ksm_attr_group = {
	.attrs = ksm_attrs,
	.name = "ksm",
};

/* /sys/kernel/mm/pksm/: what only PKSM has */

PKSM_UINT_KNOB(probation_scans, pksm_probation_scans, 0, PKSM_MAX_PROBATION);
PKSM_UINT_KNOB(period_seconds, pksm_period_seconds, 1,
	       PKSM_MAX_PERIOD_SECONDS);
PKSM_LIST_COUNTER(new_list, nr_new);
PKSM_LIST_COUNTER(rescan_list, nr_rescan);
PKSM_UINT_KNOB(probation_millisecs, pksm_probation_ms, 1,
	       PKSM_MAX_PROBATION_MS);
PKSM_COUNTER(level_raises, pksm_sc.nr_level_raises, pksm_stat_read);
PKSM_COUNTER(lru_drains, pksm_sc.nr_lru_drains, pksm_stat_read);
PKSM_COUNTER(domain_refused, pksm_sc.nr_domain_refused, pksm_stat_read);

/*
 * merge_domain: whose pages may share a frame (domain.c): all, uid,
 * cgroup or session; read as the modes with the current one in brackets,
 * as the kernel's other choice files are.  A change unmerges every page
 * merged into a KSM page (as run=2 does, and with its errors: -EINTR for
 * a signal, -ENOMEM, -EAGAIN); anything else written is -EINVAL, as is any
 * mode but all without the memory controller.
 */
static ssize_t merge_domain_show(struct kobject *kobj,
				 struct kobj_attribute *attr, char *buf)
{
	unsigned int cur = READ_ONCE(pksm_merge_domain), mode;
	int len = 0;

	for (mode = 0; mode < PKSM_DOMAIN_MODES; mode++)
		len += sysfs_emit_at(buf, len, mode == cur ? "%s[%s]" : "%s%s",
				     mode ? " " : "", pksm_domain_names[mode]);
	return len + sysfs_emit_at(buf, len, "\n");
}

static ssize_t merge_domain_store(struct kobject *kobj,
				  struct kobj_attribute *attr,
				  const char *buf, size_t count)
{
	int mode = sysfs_match_string(pksm_domain_names, buf);
	int err;

	/*
	 * Domains are read through mm->owner, the memory controller's; cgroup
	 * mode needs the controller on (else every task is in the root).
	 */
	if (mode < 0 || (!IS_ENABLED(CONFIG_MEMCG) && mode != PKSM_DOMAIN_ALL) ||
	    (mode == PKSM_DOMAIN_CGROUP && mem_cgroup_disabled()))
		return -EINVAL;
	mutex_lock(&pksm_mutex);
	err = pksm_set_merge_domain(mode);
	mutex_unlock(&pksm_mutex);
	wake_up_interruptible(&pksm_daemon_wait);
	return err ? err : count;
}
PKSM_ATTR(merge_domain);

/*
 * fake_merge: 1 makes every candidate that finds no page to merge with in
 * its merge domain a KSM page of its own (merge.c, pksm_merge_lone()), so
 * that a write to a page pksmd has passed copies it, as a write to a
 * merged page does, and a fault leaves the free of the KSM page it copied
 * to a work item (tree.c, pksm_hold()).  Turned on, every page waiting
 * in the unstable table leaves for the rescan list, whose visits make it
 * one.  Turned off, the KSM pages made alone stay KSM pages (equal pages
 * merge into them; a write copies) until written or unmerged, and held
 * references are still dropped.  Written under pksm_mutex, so
 * no batch runs between the switch and the flush.
 */
static ssize_t fake_merge_show(struct kobject *kobj,
			       struct kobj_attribute *attr, char *buf)
{
	return sysfs_emit(buf, "%u\n", READ_ONCE(pksm_fake_merge));
}

static ssize_t fake_merge_store(struct kobject *kobj,
				struct kobj_attribute *attr,
				const char *buf, size_t count)
{
	bool v;

	if (pksm_parse_bool(buf, &v))
		return -EINVAL;
	mutex_lock(&pksm_mutex);
	if (v && !pksm_fake_merge)
		pksm_unstable_flush();
	WRITE_ONCE(pksm_fake_merge, v);
	mutex_unlock(&pksm_mutex);
	wake_up_interruptible(&pksm_daemon_wait);
	return count;
}
PKSM_ATTR(fake_merge);

static ssize_t probation_list_show(struct kobject *kobj,
				   struct kobj_attribute *attr, char *buf)
{
	struct pksm_list_counts lc;

	pksm_list_counts_read(&lc);
	return sysfs_emit(buf, "%lu\n", pksm_probation_total(&lc));
}
PKSM_ATTR_RO(probation_list);

/* probation_levels: the probation list of each back-off level, 0 first */
static ssize_t probation_levels_show(struct kobject *kobj,
				     struct kobj_attribute *attr, char *buf)
{
	struct pksm_list_counts lc;
	unsigned int level;
	int len = 0;

	pksm_list_counts_read(&lc);
	for (level = 0; level < PKSM_LEVELS; level++)
		len += sysfs_emit_at(buf, len, "%s%lu", level ? " " : "",
				     lc.nr_probation[level]);
	return len + sysfs_emit_at(buf, len, "\n");
}
PKSM_ATTR_RO(probation_levels);
PKSM_LIST_COUNTER(tracked_pages, nr_tracked);
PKSM_LIST_COUNTER(untracked_pages, nr_untracked);
PKSM_LIST_COUNTER(adopted_pages, nr_adopted);
PKSM_LIST_COUNTER(items, nr_items);
PKSM_LIST_COUNTER(chunks, nr_chunks);
PKSM_COUNTER(unstable_pages, pksm_sc.nr_unstable, pksm_stat_read);
PKSM_COUNTER(stable_nodes, pksm_sc.nr_stable_nodes, pksm_stat_read);
PKSM_COUNTER(mappings, pksm_sc.nr_mappings, pksm_stat_read);
PKSM_COUNTER(zero_merges, pksm_sc.nr_zero_merges, pksm_stat_read);
PKSM_COUNTER(stable_merges, pksm_sc.nr_stable_merges, pksm_stat_read);
PKSM_COUNTER(unstable_merges, pksm_sc.nr_unstable_merges, pksm_stat_read);
PKSM_COUNTER(fake_merges, pksm_sc.nr_fake_merges, pksm_stat_read);
PKSM_COUNTER(hash_false_positives, pksm_sc.nr_false_positives, pksm_stat_read);
PKSM_COUNTER(changed_in_tree, pksm_sc.nr_changed_in_tree, pksm_stat_read);
PKSM_COUNTER(page_compares, pksm_sc.nr_compares, pksm_stat_read);
PKSM_COUNTER(merge_failures, pksm_sc.nr_merge_failures, pksm_stat_read);
PKSM_COUNTER(merge_races, pksm_sc.nr_merge_races, pksm_stat_read);
PKSM_COUNTER(reverified, pksm_sc.nr_reverified, pksm_stat_read);
PKSM_COUNTER(reverify_changed, pksm_sc.nr_reverify_changed, pksm_stat_read);
PKSM_COUNTER(reverify_twins, pksm_sc.nr_reverify_twins, pksm_stat_read);
PKSM_COUNTER(unstable_kicks, pksm_sc.nr_unstable_kicks, pksm_stat_read);

PKSM_ATOMIC_COUNTER(cow_breaks, pksm_nr_cow_breaks);
PKSM_ATOMIC_COUNTER(cow_backoffs, pksm_nr_backoffs);
PKSM_ATOMIC_COUNTER(migrated_pages, pksm_nr_migrated);
PKSM_ATOMIC_COUNTER(excluded_pages, pksm_nr_excluded);
PKSM_ATOMIC_COUNTER(held_pages, pksm_nr_held);

static ssize_t metadata_bytes_show(struct kobject *kobj,
				   struct kobj_attribute *attr, char *buf)
{
	return sysfs_emit(buf, "%lu\n", pksm_metadata_bytes());
}
PKSM_ATTR_RO(metadata_bytes);

static ssize_t busy_ns_show(struct kobject *kobj, struct kobj_attribute *attr,
			    char *buf)
{
	/* A 64-bit load, as pksm_stat_read(). */
	return sysfs_emit(buf, "%llu\n", READ_ONCE(pksm_sc.busy_ns));
}
PKSM_ATTR_RO(busy_ns);

static ssize_t cpu_ns_show(struct kobject *kobj, struct kobj_attribute *attr,
			   char *buf)
{
	/* pksmd adds to it under pksm_mutex; no need to wait for a batch. */
	return sysfs_emit(buf, "%llu\n", READ_ONCE(pksm_sc.cpu_ns));
}
PKSM_ATTR_RO(cpu_ns);

static ssize_t enabled_show(struct kobject *kobj, struct kobj_attribute *attr,
			    char *buf)
{
	return sysfs_emit(buf, "%d\n", static_key_enabled(&pksm_hooks_key));
}
PKSM_ATTR_RO(enabled);

static ssize_t opted_in_only_show(struct kobject *kobj,
				  struct kobj_attribute *attr, char *buf)
{
	return sysfs_emit(buf, "%d\n", pksm_opted_in_only);
}
PKSM_ATTR_RO(opted_in_only);

static struct attribute *pksm_attrs[] = {
	&enabled_attr.attr,
	&opted_in_only_attr.attr,
	&probation_scans_attr.attr,
	&probation_millisecs_attr.attr,
	&period_seconds_attr.attr,
	&new_list_attr.attr,
	&rescan_list_attr.attr,
	&probation_list_attr.attr,
	&probation_levels_attr.attr,
	&level_raises_attr.attr,
	&lru_drains_attr.attr,
	&merge_domain_attr.attr,
	&domain_refused_attr.attr,
	&fake_merge_attr.attr,
	&chunks_attr.attr,
	&tracked_pages_attr.attr,
	&untracked_pages_attr.attr,
	&adopted_pages_attr.attr,
	&items_attr.attr,
	&unstable_pages_attr.attr,
	&stable_nodes_attr.attr,
	&mappings_attr.attr,
	&zero_merges_attr.attr,
	&stable_merges_attr.attr,
	&unstable_merges_attr.attr,
	&fake_merges_attr.attr,
	&hash_false_positives_attr.attr,
	&changed_in_tree_attr.attr,
	&page_compares_attr.attr,
	&merge_failures_attr.attr,
	&merge_races_attr.attr,
	&reverified_attr.attr,
	&reverify_changed_attr.attr,
	&reverify_twins_attr.attr,
	&unstable_kicks_attr.attr,
	&cow_breaks_attr.attr,
	&cow_backoffs_attr.attr,
	&migrated_pages_attr.attr,
	&excluded_pages_attr.attr,
	&held_pages_attr.attr,
	&metadata_bytes_attr.attr,
	&busy_ns_attr.attr,
	&cpu_ns_attr.attr,
	NULL,
};

static const struct attribute_group pksm_attr_group = {
	.attrs = pksm_attrs,
	.name = "pksm",
};

/* ---- start-up ---------------------------------------------------------- */

/* Register /sys/kernel/mm/ksm/ and /sys/kernel/mm/pksm/ (pksm_init()). */
void __init pksm_sysfs_init(void)
{
#ifdef CONFIG_SYSFS
	int err;

	err = sysfs_create_group(mm_kobj, &ksm_attr_group);
	if (!err)
		err = sysfs_create_group(mm_kobj, &pksm_attr_group);
	if (err)
		pr_err("pksm: registering sysfs failed\n");
#endif
}
