// SPDX-License-Identifier: GPL-2.0-only
/*
 * PKSM: /sys/kernel/mm/ksm/ and /sys/kernel/mm/pksm/, the knobs, the
 * pksm.enabled= parameter and start-up (see internal.h for the overview).
 */

#include <linux/mm.h>
#include <linux/ksm.h>
#include <linux/pksm.h>
#include <linux/kthread.h>
#include <linux/slab.h>
#include <linux/sysfs.h>
#include <linux/kobject.h>
#include <linux/jump_label.h>
#include <linux/moduleparam.h>
#include <linux/debugfs.h>
#include <linux/seq_file.h>
#include <linux/delay.h>
#include <linux/migrate.h>
#include <linux/swap.h>
#include "internal.h"

/* The parameter keeps its name pksm.enabled= (this object is sysfs.o). */
#undef MODULE_PARAM_PREFIX
#define MODULE_PARAM_PREFIX "pksm."

/* ---- tunables ---------------------------------------------------------- */

/* Knobs: written under pksm_mutex, read by pksmd under it or with READ_ONCE. */
unsigned int pksm_run = PKSM_RUN_MERGE;
unsigned int pksm_pages_to_scan = 4000;
unsigned int pksm_sleep_ms = 10;
unsigned int pksm_probation_scans = 3;
unsigned int pksm_probation_ms = 500;
unsigned int pksm_period_seconds = 10;
bool pksm_use_zero_pages = true;
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

/*
 * pksm.enabled=0 on the command line: no hooks and no daemon at all, the
 * baseline for PKSM's overhead.  Read once by pksm_init().
 */
static bool pksm_boot_enabled = true;
module_param_named(enabled, pksm_boot_enabled, bool, 0444);

/*
 * pksm.opted_in_only=1 on the command line: merge only what opted in, as
 * upstream KSM does (VM_MERGEABLE ranges, PR_SET_MEMORY_MERGE processes),
 * with PKSM's engine: for comparisons at equal coverage and for upstream's
 * selftests, which assert exact system-wide counts.  Fixed after boot.
 */
bool pksm_opted_in_only __ro_after_init;
module_param_named(opted_in_only, pksm_opted_in_only, bool, 0444);

static struct task_struct *pksmd_task;

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

	bytes = pksm_stat_read(&pksm_sc.nr_unstable) * sizeof(struct pksm_unode) +
		pksm_stat_read(&pksm_sc.nr_stable_nodes) *
		sizeof(struct pksm_stable_node) +
		pksm_stat_read(&pksm_sc.nr_mappings) *
		sizeof(struct pksm_mapping);
	/* The items, the pfn table and the place table (track.c). */
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
		err = pksm_unmerge_all();
		pksm_account_all();
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
PKSM_LIST_COUNTER(del_list, nr_del);
PKSM_LIST_COUNTER(tracked_pages, nr_tracked);
PKSM_LIST_COUNTER(untracked_pages, nr_untracked);
PKSM_LIST_COUNTER(items, nr_items);
PKSM_COUNTER(unstable_pages, pksm_sc.nr_unstable, pksm_stat_read);
PKSM_COUNTER(stable_nodes, pksm_sc.nr_stable_nodes, pksm_stat_read);
PKSM_COUNTER(mappings, pksm_sc.nr_mappings, pksm_stat_read);
PKSM_COUNTER(zero_merges, pksm_sc.nr_zero_merges, pksm_stat_read);
PKSM_COUNTER(stable_merges, pksm_sc.nr_stable_merges, pksm_stat_read);
PKSM_COUNTER(unstable_merges, pksm_sc.nr_unstable_merges, pksm_stat_read);
PKSM_COUNTER(hash_false_positives, pksm_sc.nr_false_positives, pksm_stat_read);
PKSM_COUNTER(changed_in_tree, pksm_sc.nr_changed_in_tree, pksm_stat_read);
PKSM_COUNTER(page_compares, pksm_sc.nr_compares, pksm_stat_read);
PKSM_COUNTER(merge_failures, pksm_sc.nr_merge_failures, pksm_stat_read);
PKSM_COUNTER(merge_races, pksm_sc.nr_merge_races, pksm_stat_read);
PKSM_COUNTER(reverified, pksm_sc.nr_reverified, pksm_stat_read);
PKSM_COUNTER(reverify_changed, pksm_sc.nr_reverify_changed, pksm_stat_read);
PKSM_COUNTER(reverify_twins, pksm_sc.nr_reverify_twins, pksm_stat_read);

PKSM_ATOMIC_COUNTER(cow_breaks, pksm_nr_cow_breaks);
PKSM_ATOMIC_COUNTER(cow_backoffs, pksm_nr_backoffs);
PKSM_ATOMIC_COUNTER(migrated_pages, pksm_nr_migrated);
PKSM_ATOMIC_COUNTER(excluded_pages, pksm_nr_excluded);

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
	&del_list_attr.attr,
	&tracked_pages_attr.attr,
	&untracked_pages_attr.attr,
	&items_attr.attr,
	&unstable_pages_attr.attr,
	&stable_nodes_attr.attr,
	&mappings_attr.attr,
	&zero_merges_attr.attr,
	&stable_merges_attr.attr,
	&unstable_merges_attr.attr,
	&hash_false_positives_attr.attr,
	&changed_in_tree_attr.attr,
	&page_compares_attr.attr,
	&merge_failures_attr.attr,
	&merge_races_attr.attr,
	&reverified_attr.attr,
	&reverify_changed_attr.attr,
	&reverify_twins_attr.attr,
	&cow_breaks_attr.attr,
	&cow_backoffs_attr.attr,
	&migrated_pages_attr.attr,
	&excluded_pages_attr.attr,
	&metadata_bytes_attr.attr,
	&busy_ns_attr.attr,
	&cpu_ns_attr.attr,
	NULL,
};

static const struct attribute_group pksm_attr_group = {
	.attrs = pksm_attrs,
	.name = "pksm",
};

/* ---- debugfs: delays that widen race windows (tests only) ------------- */

#ifdef CONFIG_DEBUG_FS
/*
 * /sys/kernel/debug/pksm/delay_points (a mask of enum pksm_delay_point)
 * and delay_ms: pksmd sleeps delay_ms at each chosen point, so that a test
 * can make a process exit, fork, opt out or unmap while pksmd is in the
 * middle of a merge.  Off (0) by default.
 */
static u32 pksm_delay_points;
static u32 pksm_delay_ms;

void pksm_debug_delay(enum pksm_delay_point point)
{
	unsigned int ms = READ_ONCE(pksm_delay_ms);

	if ((READ_ONCE(pksm_delay_points) & point) && ms)
		msleep(min(ms, 10000U));
}

/* alloc_failures: "site count" a line, enum pksm_alloc_site order */
static int pksm_alloc_failures_show(struct seq_file *m, void *unused)
{
	static const char * const names[PKSM_NR_ALLOC_SITES] = {
		[PKSM_ALLOC_ITEM] = "item",
		[PKSM_ALLOC_UNODE] = "unode",
		[PKSM_ALLOC_NODE] = "node",
		[PKSM_ALLOC_MAPPING] = "mapping",
		[PKSM_ALLOC_CLAIM] = "claim",
	};
	unsigned int i;

	for (i = 0; i < PKSM_NR_ALLOC_SITES; i++)
		seq_printf(m, "%s %ld\n", names[i],
			   atomic_long_read(&pksm_alloc_failures[i]));
	return 0;
}
DEFINE_SHOW_ATTRIBUTE(pksm_alloc_failures);

/* A census rmap_one: count the PTEs of @vma at @addr that map @folio. */
static bool pksm_census_one(struct folio *folio, struct vm_area_struct *vma,
			    unsigned long addr, void *arg)
{
	DEFINE_FOLIO_VMA_WALK(pvmw, folio, vma, addr, 0);
	unsigned long *ptes = arg;

	while (page_vma_mapped_walk(&pvmw))
		(*ptes)++;
	return true;
}

/**
 * struct pksm_census - what a walk of the stable tree finds, against what
 *	PKSM keeps (/sys/kernel/debug/pksm/census)
 * @shared: KSM pages mapped at least once, recounted from their map counts
 * @sharing: their further mappings, recounted
 * @walked: KSM pages whose reverse map was walked (the folio trylock
 *	succeeded)
 * @ptes: PTEs mapping those pages, as rmap_walk_ksm() reached them
 * @mapcount: the sum of those pages' map counts
 * @skipped: KSM pages not walked (locked by someone else, or no longer
 *	the node's)
 */
struct pksm_census {
	unsigned long shared;
	unsigned long sharing;
	unsigned long walked;
	unsigned long ptes;
	unsigned long mapcount;
	unsigned long skipped;
};

/*
 * census: the kept pages_shared and pages_sharing beside a recount, and
 * the PTEs rmap_walk_ksm() reaches beside the map counts.  On a quiet
 * system the kept counts equal the recount within period_seconds, and the
 * reverse map reaches every PTE exactly once (ptes == mapcount).  Walks
 * the whole stable tree under pksm_mutex: for tests and debugging only.
 */
static int pksm_census_show(struct seq_file *m, void *unused)
{
	struct pksm_census c = { };
	struct rb_node *n;

	mutex_lock(&pksm_mutex);
	for (n = rb_first(&pksm_stable_tree); n; n = rb_next(n)) {
		struct pksm_stable_node *node =
			rb_entry(n, struct pksm_stable_node, rb);
		struct folio *kfolio = pksm_node_folio(node);
		unsigned long ptes = 0;
		struct rmap_walk_control rwc = {
			.rmap_one = pksm_census_one,
			.arg = &ptes,
		};
		int mapped;

		if (!kfolio)
			continue;
		mapped = folio_mapcount(kfolio);
		if (mapped > 0) {
			c.shared++;
			c.sharing += mapped - 1;
		}
		/* Only a real KSM page of this node (lab 4 breaks the check). */
		if (pksm_folio_node(kfolio) != node) {
			c.skipped++;
		} else if (folio_trylock(kfolio)) {
			rmap_walk(kfolio, &rwc);
			c.walked++;
			c.ptes += ptes;
			c.mapcount += max(folio_mapcount(kfolio), 0);
			folio_unlock(kfolio);
		} else {
			c.skipped++;
		}
		folio_put(kfolio);
		cond_resched();
	}
	mutex_unlock(&pksm_mutex);
	seq_printf(m, "kept_shared %ld\nkept_sharing %ld\n",
		   atomic_long_read(&pksm_nr_shared),
		   atomic_long_read(&pksm_nr_sharing));
	seq_printf(m, "shared %lu\nsharing %lu\n", c.shared, c.sharing);
	seq_printf(m, "walked %lu\nptes %lu\nmapcount %lu\nskipped %lu\n",
		   c.walked, c.ptes, c.mapcount, c.skipped);
	return 0;
}
DEFINE_SHOW_ATTRIBUTE(pksm_census);

/*
 * migrate (write-only): the pfn of a KSM page, which is moved to another
 * frame as compaction would move it, so that a test can show its stable
 * node and records follow (compaction alone rarely picks one).  -EINVAL:
 * not a pfn of a KSM page of PKSM's; -EBUSY: it could not be isolated or
 * moved now (pinned, locked, in a per-CPU batch after a drain).
 */
static ssize_t pksm_migrate_write(struct file *file, const char __user *buf,
				  size_t count, loff_t *ppos)
{
	struct migration_target_control mtc = {
		.nid = NUMA_NO_NODE,
		.gfp_mask = GFP_HIGHUSER_MOVABLE,
		.reason = MR_SYSCALL,
	};
	struct folio *folio;
	unsigned long pfn;
	LIST_HEAD(list);
	bool isolated;
	int err;

	err = kstrtoul_from_user(buf, count, 0, &pfn);
	if (err)
		return err;
	if (!pfn_valid(pfn))
		return -EINVAL;
	folio = page_folio(pfn_to_page(pfn));
	if (!folio_try_get(folio))
		return -EINVAL;
	/* Still the same folio, and a KSM page of one of our nodes? */
	if (page_folio(pfn_to_page(pfn)) != folio || !folio_test_ksm(folio) ||
	    !pksm_folio_node(folio)) {
		folio_put(folio);
		return -EINVAL;
	}
	isolated = isolate_folio_to_list(folio, &list);
	if (!isolated) {
		lru_add_drain_all();
		isolated = isolate_folio_to_list(folio, &list);
	}
	folio_put(folio);	/* isolation holds its own reference */
	if (!isolated)
		return -EBUSY;
	err = migrate_pages(&list, alloc_migration_target, NULL,
			    (unsigned long)&mtc, MIGRATE_SYNC, MR_SYSCALL, NULL);
	if (err) {
		putback_movable_pages(&list);
		return err > 0 ? -EBUSY : err;
	}
	return count;
}

static const struct file_operations pksm_migrate_fops = {
	.owner = THIS_MODULE,
	.open = simple_open,
	.write = pksm_migrate_write,
	.llseek = noop_llseek,
};

static void __init pksm_debugfs_init(void)
{
	struct dentry *dir = debugfs_create_dir("pksm", NULL);

	debugfs_create_u32("delay_points", 0600, dir, &pksm_delay_points);
	debugfs_create_u32("delay_ms", 0600, dir, &pksm_delay_ms);
	debugfs_create_file("alloc_failures", 0400, dir, NULL,
			    &pksm_alloc_failures_fops);
	debugfs_create_file("census", 0400, dir, NULL, &pksm_census_fops);
	debugfs_create_file("migrate", 0200, dir, NULL, &pksm_migrate_fops);
}
#else
static inline void pksm_debugfs_init(void)
{
}
#endif

/* ---- start-up ---------------------------------------------------------- */

static int __init pksm_init(void)
{
	unsigned long table_len = 0;
	int err = -ENOMEM;
	bool track_ok;

	/* The probation lists and the item cache. */
	track_ok = pksm_track_init();
	/*
	 * Caches of their own (SLAB_NO_MERGE): their object counts in
	 * /sys/kernel/slab/ are PKSM's alone, and fault injection
	 * (failslab) can target them.
	 */
	pksm_unode_cache = KMEM_CACHE(pksm_unode, SLAB_NO_MERGE);
	pksm_node_cache = KMEM_CACHE(pksm_stable_node, SLAB_NO_MERGE);
	pksm_mapping_cache = KMEM_CACHE(pksm_mapping, SLAB_NO_MERGE);
	pksm_claim_cache = kmem_cache_create("pksm_claim",
					     PKSM_CLAIM_BATCH *
					     sizeof(struct mm_struct *),
					     0, SLAB_NO_MERGE, NULL);
	if (!track_ok || !pksm_unode_cache || !pksm_node_cache ||
	    !pksm_mapping_cache || !pksm_claim_cache)
		goto out_caches;

	pksm_choose_sample();
	if (pksm_boot_enabled) {
		table_len = pksm_track_table_init();
		if (!table_len)
			goto out_caches;
		pksmd_task = pksm_start_pksmd();
		if (IS_ERR(pksmd_task)) {
			err = PTR_ERR(pksmd_task);
			pr_err("pksm: creating pksmd failed\n");
			goto out_table;
		}
		static_branch_enable(&pksm_hooks_key);
	} else {
		pksm_run = PKSM_RUN_STOP;
	}

#ifdef CONFIG_SYSFS
	err = sysfs_create_group(mm_kobj, &ksm_attr_group);
	if (!err)
		err = sysfs_create_group(mm_kobj, &pksm_attr_group);
	if (err)
		pr_err("pksm: registering sysfs failed\n");
#endif
	pksm_debugfs_init();
	pr_info("pksm: %s, %u sampled words, table of %lu pages\n",
		pksm_boot_enabled ? "tracking anonymous pages" :
				    "off (pksm.enabled=0)",
		PKSM_SAMPLE_WORDS, table_len);
	return 0;

out_table:
	pksm_track_table_free();
out_caches:
	kmem_cache_destroy(pksm_claim_cache);
	kmem_cache_destroy(pksm_mapping_cache);
	kmem_cache_destroy(pksm_node_cache);
	kmem_cache_destroy(pksm_unode_cache);
	pksm_track_cache_destroy();
	return err;
}
subsys_initcall(pksm_init);
