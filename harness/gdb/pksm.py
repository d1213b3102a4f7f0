# SPDX-License-Identifier: GPL-2.0
"""gdb commands that speak PKSM (sourced by the harness's gdbinit after the
kernel's lx- scripts): pksm-stats, pksm-lists, pksm-unstable, pksm-stable,
pksm-page.

Everything is read through gdb's symbol and type information: no structure
offset is written down here (container_of() takes the member's offset from
the DWARF type).  The only numbers are UML's page-table geometry and PTE
bits (arch/um/include/asm/pgtable*.h), which the DWARF does not carry.
"""

from __future__ import annotations

from typing import Iterator

import gdb

# arch/um/include/asm/pgtable.h: the PTE bits pksm-page reads.
_PAGE_PRESENT = 0x001
_PAGE_PROTNONE = 0x010
# include/linux/page-flags.h: folio->mapping low bits of a KSM page.
PAGE_MAPPING_ANON = 1
FOLIO_MAPPING_KSM = 3
# pksm/mm/pksm/policy.h: item->visits before the first visit.
PKSM_UNSEEN = 255


def _no_pksm(what: str) -> gdb.GdbError:
    return gdb.GdbError(
        f"pksm: {what} not found: this kernel has no PKSM, or gdb has no "
        "symbols for it (use the pksm build, which carries debug info)")


def sym(name: str) -> gdb.Value:
    """A global variable of the kernel, by name, or a clear error."""
    try:
        s = gdb.lookup_global_symbol(name) or gdb.lookup_static_symbol(name)
    except gdb.error:
        s = None
    if s is None:
        raise _no_pksm(f"symbol '{name}'")
    return s.value()


def lookup_type(name: str) -> gdb.Type:
    try:
        return gdb.lookup_type(name)
    except gdb.error:
        raise _no_pksm(f"type '{name}'") from None


def require_pksm() -> None:
    """Fail early, with one clear message, on a kernel without PKSM."""
    for name in ("pksm_sc", "pksm_chunks", "pksm_heads"):
        sym(name)
    lookup_type("struct pksm_item")


def offsetof(typ: gdb.Type, member: str) -> int:
    """Byte offset of member in typ, looking into anonymous unions/structs."""
    def find(t: gdb.Type, base: int) -> int | None:
        for f in t.strip_typedefs().fields():
            if f.name == member:
                return base + f.bitpos // 8
            if f.name is None or f.is_base_class:
                off = find(f.type, base + f.bitpos // 8)
                if off is not None:
                    return off
        return None
    off = find(typ, 0)
    if off is None:
        raise gdb.GdbError(f"pksm: {typ} has no member '{member}'")
    return off


def container_of(ptr: gdb.Value, typename: str, member: str) -> gdb.Value:
    """The struct typename (a pointer to it) whose member ptr points at."""
    typ = lookup_type(typename)
    addr = int(ptr.cast(gdb.lookup_type("unsigned long"))) - offsetof(typ, member)
    return gdb.Value(addr).cast(typ.pointer())


def ulong(v: gdb.Value) -> int:
    return int(v.cast(gdb.lookup_type("unsigned long")))


def atomic(v: gdb.Value) -> int:
    return int(v["counter"])


# pksm/mm/pksm/internal.h: indices below PKSM_IDX_HEADS are page frames,
# from it up track.c's list heads (pksm_heads[]); PKSM_NIL ends a chain.
PKSM_IDX_HEADS = 0x7ff00000
PKSM_NIL = 0xFFFFFFFF


def chunk_items() -> int:
    """Items a chunk holds (struct pksm_chunk's items[] length)."""
    items = lookup_type("struct pksm_chunk")["items"].type
    return int(items.sizeof // items.target().sizeof)


def item_of(pfn: int) -> gdb.Value | None:
    """The item of frame pfn (a struct pksm_item value), None if its chunk
    was never allocated or pfn is beyond the table."""
    if pfn >= int(sym("pksm_table_len")):
        return None
    n = chunk_items()
    chunk = sym("pksm_chunks")[pfn // n]
    if not ulong(chunk):
        return None
    return chunk["items"][pfn % n]


def item_at(idx: int) -> gdb.Value:
    """The item of a linked index: a frame's, or a list head."""
    if idx >= PKSM_IDX_HEADS:
        return sym("pksm_heads")[idx - PKSM_IDX_HEADS]
    item = item_of(idx)
    if item is None:
        raise gdb.GdbError(f"pksm: index {idx} has no chunk (list being changed?)")
    return item


def item_pfn(item: gdb.Value) -> int:
    """The frame of an item of the table: its chunk's first frame plus its
    place in the chunk (chunks are aligned to their size)."""
    chunk_type = lookup_type("struct pksm_chunk")
    addr = ulong(item.address)
    base = addr & ~(chunk_type.sizeof - 1)
    chunk = gdb.Value(base).cast(chunk_type.pointer())
    return int(chunk["first"]) + (addr - ulong(chunk["items"][0].address)) // item.type.sizeof


def head_index(name: str, default: int) -> int:
    """An enumerator of track.c's list heads (PKSM_HEAD_*), from DWARF."""
    try:
        return int(gdb.parse_and_eval(name))
    except gdb.error:
        return default


def list_entries(head_idx: int, skip: frozenset[int] = frozenset()) -> Iterator[gdb.Value]:
    """The items of the list whose head is pksm_heads[head_idx], in order,
    leaving out the indices in skip (a probation cut); stops on a loop."""
    start = PKSM_IDX_HEADS + head_idx
    idx = int(sym("pksm_heads")[head_idx]["next"])
    seen = 0
    # one item per page at most: more entries than pages is a loop
    bound = 2 * int(sym("pksm_table_len")) + 1024
    while idx != start:
        if idx == PKSM_NIL:
            raise gdb.GdbError("pksm: a list ends in PKSM_NIL (list being changed?)")
        item = item_at(idx)
        if idx not in skip:
            yield item
        idx = int(item["next"])
        seen += 1
        if seen > bound:
            raise gdb.GdbError("pksm: list does not end (caught half updated?)")


def rb_inorder(root: gdb.Value, limit: int) -> Iterator[gdb.Value]:
    """rb_node pointers of a tree, in order, at most limit of them."""
    stack: list[gdb.Value] = []
    node = root["rb_node"]
    n = 0
    while (stack or ulong(node)) and n < limit:
        while ulong(node):
            stack.append(node)
            node = node["rb_left"]
        node = stack.pop()
        yield node
        n += 1
        node = node["rb_right"]


def where_name(where: int) -> str:
    """enum pksm_where's name for item->where, from the kernel's DWARF."""
    try:
        for f in gdb.lookup_type("enum pksm_where").fields():
            if f.enumval == where:
                return f.name.removeprefix("PKSM_").lower()
    except gdb.error:
        pass
    return str(where)


def fmt_item(item: gdb.Value) -> str:
    visits = int(item["visits"])
    return "pfn {:<7} hash {:#010x} visits {:<7} where {:<8} dead {} backoff {}".format(
        item_pfn(item), int(item["hash"]),
        "unseen" if visits == PKSM_UNSEEN else str(visits),
        where_name(int(item["where"])), int(item["dead"]), int(item["backoff"]))


class PksmItemPfn(gdb.Function):
    """$pksm_item_pfn(ITEM): the page frame of a struct pksm_item (a
pointer), from its place in its chunk: items carry no pfn of their own."""

    def __init__(self) -> None:
        super().__init__("pksm_item_pfn")

    def invoke(self, item: gdb.Value) -> int:
        require_pksm()
        if item.type.strip_typedefs().code == gdb.TYPE_CODE_PTR:
            item = item.dereference()
        return item_pfn(item)


def parse_count(arg: str, default: int, cmd: str) -> int:
    argv = gdb.string_to_argv(arg)
    if not argv:
        return default
    if len(argv) > 1:
        raise gdb.GdbError(f"usage: {cmd} [N]")
    try:
        n = int(gdb.parse_and_eval(argv[0]))
    except (gdb.error, ValueError):
        raise gdb.GdbError(f"usage: {cmd} [N]: N must be a number, not '{argv[0]}'") from None
    if n < 0:
        raise gdb.GdbError(f"usage: {cmd} [N]: N must not be negative")
    return n


class PksmStats(gdb.Command):
    """Every PKSM counter and knob.

Usage: pksm-stats
The (M) counters (pksm_sc, struct pksm_scan_counts), the (L) counters
(pksm_lc, struct pksm_list_counts; its nr_tracked, nr_dead_unstable and
nr_chunks are track.c's atomics), the atomics and the sysfs knobs."""

    # struct pksm_list_counts fields kept in atomics of track.c's
    FROM_ATOMICS = {"nr_tracked": "pksm_nr_tracked", "nr_dead_unstable": "pksm_dead_unstable_hint",
                    "nr_chunks": "pksm_nr_chunks"}
    ATOMICS = ("pksm_nr_cow_breaks", "pksm_nr_excluded", "pksm_nr_backoffs",
               "pksm_nr_migrated", "ksm_zero_pages")
    KNOBS = ("pksm_run", "pksm_pages_to_scan", "pksm_sleep_ms", "pksm_probation_scans",
             "pksm_probation_ms", "pksm_period_seconds", "pksm_use_zero_pages", "pksm_max_page_sharing",
             "pksm_prune_ms", "pksm_smart_scan", "pksm_table_len")

    def __init__(self) -> None:
        super().__init__("pksm-stats", gdb.COMMAND_DATA)

    def invoke(self, arg: str, from_tty: bool) -> None:
        if gdb.string_to_argv(arg):
            raise gdb.GdbError("usage: pksm-stats (no arguments)")
        require_pksm()
        for name in ("pksm_sc", "pksm_lc"):
            v = sym(name)
            gdb.write(f"{name} ({v.type.strip_typedefs()}):\n")
            for f in v.type.strip_typedefs().fields():
                x = v[f.name]
                if x.type.strip_typedefs().code == gdb.TYPE_CODE_ARRAY:
                    lo, hi = x.type.strip_typedefs().range()
                    shown = " ".join(str(int(x[i])) for i in range(lo, hi + 1))
                elif name == "pksm_lc" and f.name in self.FROM_ATOMICS:
                    # filled only in the copies sysfs reads: the atomic's value
                    shown = str(atomic(sym(self.FROM_ATOMICS[f.name])))
                else:
                    shown = str(int(x))
                gdb.write(f"  {f.name:<22} {shown}\n")
        gdb.write("atomics:\n")
        for name in self.ATOMICS:
            gdb.write(f"  {name:<22} {atomic(sym(name))}\n")
        gdb.write("knobs:\n")
        for name in self.KNOBS:
            try:
                v = sym(name)
            except gdb.GdbError:
                continue        # a knob this kernel does not have
            gdb.write(f"  {name:<22} {int(v)}\n")


class PksmLists(gdb.Command):
    """The new, rescan and probation lists and the unstable table.

Usage: pksm-lists [N]
Each list's length and its first N entries (default 5): pfn, hash,
visits, where, dead, backoff of the item.  Sets $pksm_pfn to the pfn of
the new list's first item, or if it is empty of the first item on
probation, lowest level first (for pksm-page)."""

    def __init__(self) -> None:
        super().__init__("pksm-lists", gdb.COMMAND_DATA)

    def invoke(self, arg: str, from_tty: bool) -> None:
        n = parse_count(arg, 5, "pksm-lists")
        require_pksm()
        lc = sym("pksm_lc")
        pfn_set = False
        prob = head_index("PKSM_HEAD_PROBATION", 2)
        cut = head_index("PKSM_HEAD_CUT", prob + 8)
        levels = cut - prob
        for name, head, count in (("new_list", head_index("PKSM_HEAD_NEW", 0), "nr_new"),
                                  ("rescan_list", head_index("PKSM_HEAD_RESCAN", 1),
                                   "nr_rescan")):
            entries = list(list_entries(head))
            gdb.write(f"{name}: {len(entries)} items (pksm_lc.{count} {int(lc[count])})\n")
            for i, item in enumerate(entries[:n]):
                gdb.write("  " + fmt_item(item) + "\n")
                if name == "new_list" and i == 0:
                    gdb.set_convenience_variable("pksm_pfn", item_pfn(item))
                    pfn_set = True
        # one probation list per back-off level (visited every
        # probation_millisecs << level).  During a batch pksmd's cut
        # (pksm_heads[PKSM_HEAD_CUT + level]) sits in a list: not an item.
        cuts = frozenset(PKSM_IDX_HEADS + cut + lv for lv in range(levels))
        for level in range(levels):
            entries = list(list_entries(prob + level, cuts))
            gdb.write(f"probation_list[{level}]: {len(entries)} items "
                      f"(pksm_lc.nr_probation[{level}] {int(lc['nr_probation'][level])})\n")
            for item in entries[:n]:
                gdb.write("  " + fmt_item(item) + "\n")
                if not pfn_set:
                    gdb.set_convenience_variable("pksm_pfn", item_pfn(item))
                    pfn_set = True
        items = [item for _, item in unstable_items()]
        gdb.write(f"pksm_unstable_table: {len(items)} items "
                  f"(pksm_sc.nr_unstable {int(sym('pksm_sc')['nr_unstable'])})\n")
        for item in items[:n]:
            gdb.write("  " + fmt_item(item) + "\n")


def unstable_items(limit: int = -1) -> Iterator[tuple[int, gdb.Value]]:
    """(bucket, item) of the unstable table, bucket by bucket; at most
    limit items (-1: all)."""
    table = sym("pksm_unstable_table")
    if not ulong(table):
        return
    buckets = 1 << int(sym("pksm_unstable_bits"))
    bound = int(sym("pksm_sc")["nr_unstable"]) + 1024
    # the bucket heads in one read (a u32 index each: the first item's)
    raw = bytes(gdb.selected_inferior().read_memory(ulong(table), 4 * buckets))
    count = 0
    for b in range(buckets):
        idx = int.from_bytes(raw[4 * b:4 * b + 4], "little")
        while idx != PKSM_NIL:
            if count == limit:
                return
            count += 1
            if count > bound:
                raise gdb.GdbError("pksm_unstable_table: more items than nr_unstable "
                                   "(a loop, or the table is changing)")
            item = item_at(idx)
            yield b, item
            idx = int(item["next"])


class PksmUnstable(gdb.Command):
    """Walk of the unstable table.

Usage: pksm-unstable [N]
The first N items (default 20) of pksm_unstable_table, bucket by bucket:
each item's bucket and fields (its hash is the checksum of the whole page
it was filed under, the table's key)."""

    def __init__(self) -> None:
        super().__init__("pksm-unstable", gdb.COMMAND_DATA)

    def invoke(self, arg: str, from_tty: bool) -> None:
        n = parse_count(arg, 20, "pksm-unstable")
        require_pksm()
        buckets = 1 << int(sym("pksm_unstable_bits"))
        gdb.write(f"pksm_unstable_table: {int(sym('pksm_sc')['nr_unstable'])} items "
                  f"(pksm_sc.nr_unstable) in {buckets} buckets, first {n}:\n")
        for i, (b, item) in enumerate(unstable_items(n)):
            gdb.write(f"  [{i}] bucket {b} item {ulong(item.address):#x} {fmt_item(item)}\n")


def write_stable_node(node: gdb.Value, indent: str) -> int:
    """A stable node and every mapping record; returns its kpfn."""
    kpfn = int(node["kpfn"])
    gdb.write(f"{indent}stable node {ulong(node):#x}: kpfn {kpfn} hash {int(node['hash']):#010x} "
              f"nr_mappings {int(node['nr_mappings'])} "
              f"merged_at {int(node['merged_at'])}\n")
    pos = node["mappings"]["first"]
    i = 0
    bound = 2 * int(node["nr_mappings"]) + 1024
    while ulong(pos):
        m = container_of(pos, "struct pksm_mapping", "link")
        gdb.write(f"{indent}  mapping[{i}] anon_vma {ulong(m['anon_vma']):#x} "
                  f"pgoff {int(m['pgoff']):#x}\n")
        pos = pos["next"]
        i += 1
        if i > bound:
            raise gdb.GdbError("pksm: mapping list does not end")
    return kpfn


class PksmStable(gdb.Command):
    """In-order walk of the stable tree.

Usage: pksm-stable [N]
The first N stable nodes (default 20) of pksm_stable_tree: kpfn, hash,
nr_mappings, merged_at and every mapping record (anon_vma,
pgoff).  Sets $pksm_kpfn to the first node's kpfn (for pksm-page) and
$pksm_pgoff to its first record's pgoff (the linear page index: in an
anonymous mmap() never moved, the user address >> PAGE_SHIFT; in a
private file mapping, the file offset)."""

    def __init__(self) -> None:
        super().__init__("pksm-stable", gdb.COMMAND_DATA)

    def invoke(self, arg: str, from_tty: bool) -> None:
        n = parse_count(arg, 20, "pksm-stable")
        require_pksm()
        gdb.write(f"pksm_stable_tree: {int(sym('pksm_sc')['nr_stable_nodes'])} nodes "
                  f"(pksm_sc.nr_stable_nodes), first {n} in order:\n")
        first = True
        for i, rb in enumerate(rb_inorder(sym("pksm_stable_tree"), n)):
            node = container_of(rb, "struct pksm_stable_node", "rb")
            kpfn = write_stable_node(node, f"  [{i}] ")
            if first:
                gdb.set_convenience_variable("pksm_kpfn", kpfn)
                pos = node["mappings"]["first"]
                if ulong(pos):
                    m = container_of(pos, "struct pksm_mapping", "link")
                    gdb.set_convenience_variable("pksm_pgoff", int(m["pgoff"]))
                first = False


# ---- pksm-page ------------------------------------------------------------

# UML on x86_64, 512 entries a table: 4 levels on 7.x
# (arch/um/include/asm/pgtable-4level.h: pgd (PGDIR_SHIFT 39) -> pud (30) ->
# pmd (21) -> pte (12), p4d folded into the pgd); 3 on older kernels
# (pgtable-3level.h: pgd (30) -> pmd (21) -> pte (12), pud folded too).
PAGE_SHIFT = 12
LEVELS_4 = (("pgd_t", 39), ("pud_t", 30), ("pmd_t", 21), ("pte_t", 12))
LEVELS_3 = (("pgd_t", 30), ("pmd_t", 21), ("pte_t", 12))
PTRS_PER_TABLE = 512


def page_table_levels() -> tuple[tuple[str, int], ...]:
    """The kernel's levels: pud_t wraps a p4d_t when the pud is folded."""
    pud = lookup_type("pud_t").strip_typedefs()
    first = pud.fields()[0].type.strip_typedefs()
    return LEVELS_3 if first.code == gdb.TYPE_CODE_STRUCT else LEVELS_4


def entry_val(e: gdb.Value) -> int:
    """pgd_val()/pmd_val()/pte_val(): the struct's one field."""
    t = e.type.strip_typedefs()
    while t.code == gdb.TYPE_CODE_STRUCT:
        e = e[t.fields()[0].name]
        t = e.type.strip_typedefs()
    return int(e)


def user_pfn(pid: int, addr: int) -> int:
    """The pfn mapped at user address addr of process pid (page-table walk)."""
    try:
        from linux import tasks  # the kernel's lx- helpers
        task = tasks.get_task_by_pid(pid)
    except ImportError:
        raise gdb.GdbError("pksm: the kernel's lx- scripts (vmlinux-gdb.py) are not loaded") from None
    if task is None:
        raise gdb.GdbError(f"pksm-page: no task of PID {pid}")
    mm = task["mm"]
    if not ulong(mm):
        raise gdb.GdbError(f"pksm-page: PID {pid} ({task['comm'].string()}) has no mm")
    physmem = ulong(sym("uml_physmem"))
    table = mm["pgd"]
    page_mask = ~((1 << PAGE_SHIFT) - 1)
    levels = page_table_levels()
    for i, (typename, shift) in enumerate(levels):
        idx = (addr >> shift) & (PTRS_PER_TABLE - 1)
        val = entry_val(table.cast(lookup_type(typename).pointer())[idx])
        last = i == len(levels) - 1
        present = val & (_PAGE_PRESENT | (_PAGE_PROTNONE if last else 0))
        if not present:
            what = "not present (swapped out?)" if last and val else "not mapped"
            raise gdb.GdbError(f"pksm-page: {addr:#x} {what} in PID {pid} "
                               f"({typename[:-2]} entry {val:#x})")
        if last:
            return (val & ((1 << 64) - 1)) >> PAGE_SHIFT
        # __va(entry & PAGE_MASK): the next table, in UML's physical memory
        table = gdb.Value(physmem + (val & page_mask)).cast(
            lookup_type(levels[i + 1][0]).pointer())
    raise AssertionError("unreachable")


def pfn_to_page(pfn: int) -> gdb.Value:
    """FLATMEM (UML): mem_map + pfn (ARCH_PFN_OFFSET is 0)."""
    max_pfn = int(sym("max_pfn"))
    if pfn >= max_pfn:
        raise gdb.GdbError(f"pksm-page: pfn {pfn} beyond max_pfn {max_pfn}")
    return sym("mem_map") + pfn


class PksmPage(gdb.Command):
    """What PKSM knows of a page.

Usage: pksm-page PFN
       pksm-page ADDR PID
A pfn (a number below max_pfn, or a kernel address in UML's physical
memory), or a user virtual address in process PID (its page tables are
walked).  Prints the page's item (its chunk's, in pksm_chunks), whether it is a KSM
page (and then its stable node with every mapping record) or the zero
page."""

    def __init__(self) -> None:
        super().__init__("pksm-page", gdb.COMMAND_DATA)

    def invoke(self, arg: str, from_tty: bool) -> None:
        argv = gdb.string_to_argv(arg)
        if not 1 <= len(argv) <= 2:
            raise gdb.GdbError("usage: pksm-page PFN | pksm-page ADDR PID")
        try:
            vals = [int(gdb.parse_and_eval(a).cast(gdb.lookup_type("unsigned long")))
                    for a in argv]
        except gdb.error as e:
            raise gdb.GdbError(f"usage: pksm-page PFN | pksm-page ADDR PID: {e}") from None
        require_pksm()
        if len(vals) == 2:
            pfn = user_pfn(vals[1], vals[0])
            gdb.write(f"PID {vals[1]} address {vals[0]:#x} -> pfn {pfn}\n")
        elif vals[0] < int(sym("max_pfn")):
            pfn = vals[0]
        else:
            physmem = ulong(sym("uml_physmem"))
            if vals[0] < physmem:
                raise gdb.GdbError(f"pksm-page: {vals[0]:#x} is neither a pfn nor a kernel "
                                   "address; for a user address give the PID")
            pfn = (vals[0] - physmem) >> PAGE_SHIFT
            gdb.write(f"kernel address {vals[0]:#x} -> pfn {pfn}\n")
        self.show(pfn)

    def show(self, pfn: int) -> None:
        page = pfn_to_page(pfn)
        gdb.write(f"pfn {pfn}: struct page {ulong(page):#x}\n")
        item = item_of(pfn)
        if item is not None and where_name(int(item["where"])) != "nowhere":
            gdb.write(f"  item {ulong(item.address):#x}: {fmt_item(item)}\n")
            if where_name(int(item["where"])) == "unstable":
                gdb.write(f"  in the unstable table under checksum {int(item['hash']):#010x}\n")
        else:
            gdb.write("  no item (not tracked: not anonymous, untracked, or already merged)\n")
        if pfn == int(sym("zero_page_pfn")):
            gdb.write("  the zero page\n")
            return
        # _compound_head(): bit 0 of page->compound_info marks a tail page
        # (7.x; UML has no head-page mask encoding: FLATMEM)
        head = ulong(page["compound_info"])
        folio_addr = head - 1 if head & 1 else ulong(page)
        folio = gdb.Value(folio_addr).cast(lookup_type("struct folio").pointer())
        mapping = ulong(folio["mapping"])
        if mapping & FOLIO_MAPPING_KSM == FOLIO_MAPPING_KSM:
            gdb.write(f"  KSM page (folio {folio_addr:#x}, mapping {mapping:#x})\n")
            node = gdb.Value(mapping & ~FOLIO_MAPPING_KSM).cast(
                lookup_type("struct pksm_stable_node").pointer())
            write_stable_node(node, "  ")
            if int(node["kpfn"]) != pfn:
                gdb.write(f"  warning: the node's kpfn is not {pfn} (stale keyhole)\n")
        elif mapping & PAGE_MAPPING_ANON:
            gdb.write(f"  anonymous page, not KSM (anon_vma {mapping & ~3:#x})\n")
        elif mapping:
            gdb.write(f"  file page (address_space {mapping:#x})\n")
        else:
            gdb.write("  no mapping (free, or a kernel page)\n")


PksmStats()
PksmLists()
PksmUnstable()
PksmStable()
PksmPage()
PksmItemPfn()
