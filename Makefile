# PKSM testbed: build a patched Linux 7.3 User-Mode Linux kernel (SMP), boot it
# with a busybox root and drive scripted workloads.
#
#   make run    build what is missing, run the default scenario, print a summary
#   make test   make check, build what the tests need, run the test suite
#   make check  fast checks, no boot: mypy --strict, checkpatch, kernel-doc, unit tests
#   make lab LAB=n / make lab-check LAB=n [SOLUTION=1]   the classroom labs (labs/)
#   make lab-run LAB=7                               lab 7's measuring run, to read
#   make handin LAB=n STUDENT=id / make dist-student      hand-in archive; the student edition
#   make soak DURATION=600 / make stress RUNS=3   longer torture; stress-ng beside pksmd (debug build)
#   make mutants  break the engine on purpose: every mutant must be caught by its tests
#   make flake-hunt N=5 [K=expr] [TESTS=paths]   the boot tests N times: which vary?
#
#   SCENARIO=harness/scenarios/NAME.toml  VARIANT=pksm|ksm  FLAVOUR=g|debug
#   (no VARIANT: the scenario's own)      ARGS="--set ksm.run=1 ..."
#
# See README.md for everything else.

PYTHON   ?= /usr/bin/python3
# Empty: the scenario's own variant ('pksmtb.py variant' says which; a
# scenario naming none gets config.DEFAULT_VARIANT, the one default).
VARIANT  ?=
FLAVOUR  ?=
SCENARIO ?= harness/scenarios/default.toml
ARGS     ?=
JOBS     ?= $(shell nproc)

TOP      := $(CURDIR)
# The kernel source: Debian's package pinned in linux/source.conf, fetched
# by linux/fetch-source.sh (make deps) into linux/dl/ (kept by make clean).
KSRC_PACKAGE := $(shell sed -n 's/^KSRC_PACKAGE=//p' linux/source.conf)
TARBALL  ?= $(CURDIR)/linux/dl/$(KSRC_PACKAGE).tar.xz
KSRC     := $(TOP)/linux/src
KBUILD   := $(TOP)/build/kernel
ROOTFS   := $(TOP)/build/rootfs
HARNESS  := $(PYTHON) $(TOP)/harness/pksmtb.py
# The harness and pytest stop (SIGTERM, as for Ctrl-C) when make is killed.
export PKSMTB_STOP_WITH_PARENT := 1
# The variant a run boots, as a shell command for recipes (python3 may only
# exist after 'deps'): VARIANT if given, else the scenario's; a bad scenario
# or variant stops make with the harness's message.
RUN_VARIANT = $(HARNESS) variant $(SCENARIO) $(if $(VARIANT),--variant $(VARIANT))

# Debian packages the project needs on a fresh Debian 12 machine.
PACKAGES := debian-archive-keyring busybox-static python3 python3-pytest \
	python3-matplotlib ccache gcc make libc6-dev flex bison bc patch \
	xz-utils gdb perl libnuma-dev mypy procps python3-scipy python3-distributed stress-ng \
	bubblewrap

# Relative paths in the cache key: a fresh clone elsewhere still hits.
# Whether ccache is there is asked when a kernel is built (after 'deps'
# installed it), so the very first build already goes through it.
export CCACHE_BASEDIR := $(TOP)
KCC_SH   := $$(command -v ccache > /dev/null && echo 'ccache gcc' || echo gcc)

.PHONY: all deps kernel kernels rootfs selftests run test test-unit check mypy kerneldoc \
	gdb bench-testbed bench-pksm bench-frontier checkpatch clean distclean help

all: kernel rootfs

help:
	@sed -n '1,/^$$/p' Makefile | sed 's/^# \{0,1\}//'

## ---- dependencies --------------------------------------------------------

# Installs only what is missing; apt-get update first, as on a fresh machine.
deps:
	@missing=$$(for p in $(PACKAGES); do \
		dpkg-query -W -f='$${Status}\n' $$p 2>/dev/null | grep -q '^install ok installed' || echo $$p; \
	done); \
	if [ -n "$$missing" ]; then \
		echo "deps: installing" $$missing; \
		if [ "$$(id -u)" = 0 ]; then SUDO=; else SUDO=sudo; fi; \
		$$SUDO apt-get update -q && \
		DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -q --no-install-recommends $$missing; \
	fi
	@sh linux/fetch-source.sh $(TARBALL)

## ---- kernel --------------------------------------------------------------

# The tree is re-created when the tarball or any patch changes (stamp);
# otherwise this only refreshes the links to PKSM's own files.
$(KSRC)/Makefile linux/src/.prepared: FORCE | deps
	@sh linux/prepare.sh $(TARBALL) $(KSRC)

# kernel-NAME builds build/kernel/NAME/linux, NAME = VARIANT[-FLAVOUR]:
# fragments base + VARIANT (+ FLAVOUR), config regenerated when they change.
# Its build id (a hash of every source, harness/pksmtb/buildinfo.py) is the
# banner's '#<id>' and NAME/pksmtb-build.json records what it was built from.
kernel: deps
	@v=$$($(RUN_VARIANT)) && $(MAKE) -s kernel-$$v$(if $(FLAVOUR),-$(FLAVOUR))
kernels: kernel-ksm kernel-pksm kernel-pksm-debug kernel-pksm-up kernel-pksm-debug-up

kernel-%: $(KSRC)/Makefile
	@name=$*; variant=$${name%%-*}; flavour=$${name#$$variant}; flavour=$${flavour#-}; \
	frags="linux/config/base.config linux/config/$$variant.config"; \
	[ -f linux/config/$$variant.config ] || { echo "kernel: unknown variant '$$variant' (see linux/config/)" >&2; exit 2; }; \
	for f in $$(echo "$$flavour" | tr '-' ' '); do \
		[ -f linux/config/$$f.config ] || { echo "kernel: unknown flavour '$$flavour' (g, debug, up, g-up or debug-up)" >&2; exit 2; }; \
		frags="$$frags linux/config/$$f.config"; done; \
	out=$(KBUILD)/$$name; mkdir -p $$out; \
	sum=$$(cat $$frags $(KSRC)/.pksmtb-stamp | sha256sum); \
	if [ ! -f $$out/.config ] || [ "$$(cat $$out/.frags-sum 2>/dev/null)" != "$$sum" ]; then \
		echo "kernel: configuring $$name from $$frags"; \
		sh linux/kconfig.sh $(KSRC) $$out $$frags && echo "$$sum" > $$out/.frags-sum; \
	fi; \
	cc="$(KCC_SH)"; id=$$($(HARNESS) build-info begin $$name $$out $$frags) || exit 1; \
	echo "kernel: building $$name, build $$id (make -j$(JOBS), CC=$$cc)"; \
	$(MAKE) -s -C $(KSRC) ARCH=um O=$$out CC="$$cc" KBUILD_BUILD_VERSION=$$id -j$(JOBS) linux scripts_gdb && \
	$(HARNESS) build-info end $$out && echo "kernel: $$out/linux"

## ---- upstream KSM selftests ----------------------------------------------

# ksm_tests and ksm_functional_tests from the kernel tree's
# tools/testing/selftests/mm, static, against the tree's x86 uapi headers,
# with rootfs/selftests/*.patch applied to a copy in build/selftests/src
# (rootfs/selftests/Makefile; the tree is only read).  The sub-make runs
# every time and rebuilds only what changed; the tree is prepared first
# only if there is none yet.
KSFT_OUT  := $(TOP)/build/selftests
KSFT_BINS := $(addprefix $(KSFT_OUT)/bin/,ksm_tests ksm_functional_tests ksm-selftests)

selftests: $(KSFT_BINS)
$(KSFT_BINS) &: FORCE | deps $(if $(wildcard $(KSRC)/.pksmtb-stamp),,$(KSRC)/Makefile)
	@$(MAKE) -s -C rootfs/selftests KSRC=$(KSRC) OUT=$(KSFT_OUT)

## ---- guest root ----------------------------------------------------------

ROOTFS_SRC := rootfs/init $(wildcard rootfs/src/*.c rootfs/src/*.h rootfs/src/*.sh) rootfs/Makefile rootfs/mkroot.sh

rootfs: $(ROOTFS)/.stamp
$(ROOTFS)/.stamp: $(ROOTFS_SRC) $(KSFT_BINS) | deps
	@$(MAKE) -s -C rootfs OUT=$(TOP)/build/rootfs-bin
	@sh rootfs/mkroot.sh $(ROOTFS) $(TOP)/build/rootfs-bin $(KSFT_OUT)/bin
	@touch $@

## ---- the two commands ----------------------------------------------------

# The kernel of the variant the run boots: VARIANT if given, else the scenario's.
run: deps
	@v=$$($(RUN_VARIANT)) && $(MAKE) -s kernel rootfs VARIANT=$$v
	$(HARNESS) run $(SCENARIO) $(if $(VARIANT),--variant $(VARIANT)) \
		$(if $(FLAVOUR),--flavour $(FLAVOUR)) $(ARGS)

# make check first; the boot tests use the builds named in kernels.
# pytest's results also go to $(JUNIT_DIR)/make-test.xml (make check's to
# make-check.xml) as JUnit XML for CI; pytest's exit status is make's.
JUNIT_DIR := $(TOP)/results/junit
test: deps
	@$(MAKE) -s check ARGS=
	@$(MAKE) -s kernels rootfs
	$(PYTHON) -m pytest -c harness/pytest.ini harness/tests \
		--junitxml=$(JUNIT_DIR)/make-test.xml -o junit_suite_name=make-test $(ARGS)

## ---- checks (fast: no kernel is built or booted) ------------------------

check: deps
	@$(MAKE) -s mypy checkpatch kerneldoc
	$(PYTHON) -m pytest -c harness/pytest.ini harness/tests -m "not boot" -q \
		--junitxml=$(JUNIT_DIR)/make-check.xml -o junit_suite_name=make-check $(ARGS)

test-unit: deps
	$(PYTHON) -m pytest -c harness/pytest.ini harness/tests -m "not boot" $(ARGS)

mypy: deps
	@echo "check: mypy --strict (harness/mypy.ini)"
	@$(PYTHON) -m mypy --config-file harness/mypy.ini harness/pksmtb harness/tests \
		harness/bench_pksm.py harness/bench_testbed.py harness/bench_engine.py harness/bench_swap.py \
		harness/lab.py \
		harness/hostprogs/*.py harness/probation_model.py

# pksm carries debug info in its plain build; ksm needs its -g flavour.
gdb: deps
	@v=$$($(RUN_VARIANT)) && f=$$([ "$$v" = pksm ] || echo g) && \
	$(MAKE) -s kernel rootfs VARIANT=$$v FLAVOUR=$$f && \
	echo "$(HARNESS) gdb $(SCENARIO) --variant $$v $${f:+--flavour $$f} $(ARGS)" && \
	$(HARNESS) gdb $(SCENARIO) --variant $$v $${f:+--flavour $$f} $(ARGS)

## ---- soak -------------------------------------------------------------

# make soak DURATION=600 [VARIANT=pksm FLAVOUR=debug ARGS=...]: the torture
# scenario (harness/scenarios/pksm-torture.toml) for DURATION seconds of
# torture: a copy of it with the duration line replaced, in build/soak/.
DURATION ?= 600
SOAK_TOML := harness/scenarios/pksm-torture.toml

.PHONY: soak
soak: export SOAK_DURATION := $(DURATION)
soak:
	@case "$$SOAK_DURATION" in ''|*[!0-9]*|0*) \
		echo "soak: DURATION must be a whole number of seconds, 1..6000 (got '$$SOAK_DURATION')" >&2; exit 2;; esac; \
	if [ "$$SOAK_DURATION" -gt 6000 ]; then \
		echo "soak: DURATION must be at most 6000 seconds (the harness waits at most 7200)" >&2; exit 2; fi
	@$(MAKE) -s deps
	@$(MAKE) -s kernel rootfs SCENARIO=$(SOAK_TOML)
	@mkdir -p build/soak; out=build/soak/pksm-soak.toml; \
	sed -E "s/^duration = [0-9]+( +#.*soak.*)$$/duration = $$SOAK_DURATION\1/" $(SOAK_TOML) > $$out; \
	if [ "$$(grep -cE "^duration = $$SOAK_DURATION +#.*soak" $$out)" != 1 ]; then \
		echo "soak: no 'duration = N  # soak...' line to replace in $(SOAK_TOML)" >&2; exit 2; fi; \
	echo "soak: $$SOAK_DURATION s of torture ($$out)"; \
	$(HARNESS) run $$out $(if $(VARIANT),--variant $(VARIANT)) $(if $(FLAVOUR),--flavour $(FLAVOUR)) \
		--timeout $$((SOAK_DURATION + 600)) $(ARGS)

## ---- a peer's suite -------------------------------------------------------

# make stress [RUNS=3] [VARIANT=pksm FLAVOUR=debug]: stress-ng's memory
# stressors with --verify beside pksmd (harness/scenarios/peer-stress-ng.toml),
# RUNS boots one after another; the first failed run stops it.
RUNS ?= 3
STRESS_TOML := harness/scenarios/peer-stress-ng.toml

.PHONY: stress
stress: export STRESS_RUNS := $(RUNS)
stress:
	@case "$$STRESS_RUNS" in ''|*[!0-9]*|0*) \
		echo "stress: RUNS must be a whole number, 1..100 (got '$$STRESS_RUNS')" >&2; exit 2;; esac; \
	if [ "$$STRESS_RUNS" -gt 100 ]; then echo "stress: RUNS must be at most 100" >&2; exit 2; fi
	@$(MAKE) -s deps
	@f=$(if $(FLAVOUR),$(FLAVOUR),debug); v=$(if $(VARIANT),$(VARIANT),pksm); \
	$(MAKE) -s kernel rootfs SCENARIO=$(STRESS_TOML) VARIANT=$$v FLAVOUR=$$f && \
	for i in $$(seq 1 $$STRESS_RUNS); do \
		echo "stress: run $$i of $$STRESS_RUNS ($$v-$$f)"; \
		$(HARNESS) run $(STRESS_TOML) --variant $$v --flavour $$f $(ARGS) || exit 1; \
	done

## ---- flaky tests -------------------------------------------------------

# make flake-hunt [N=5] [K="pytest -k expression"] [TESTS="paths or node ids"]:
# the boot tests (-m boot; default every one under harness/tests) N times,
# one pytest session a round, each round's JUnit XML in
# results/flake/<UTC>/roundK.xml; then 'pksmtb.py flakes' tables every test
# that did not pass in every round and fails if any varied or failed.  It
# boots the builds there are (make kernels rootfs builds them).  ARGS: more
# pytest options.
N ?= 5

.PHONY: flake-hunt
flake-hunt: export FLAKE_N := $(N)
flake-hunt: export FLAKE_K := $(K)
flake-hunt: export FLAKE_TESTS := $(if $(TESTS),$(TESTS),harness/tests)
flake-hunt:
	@case "$$FLAKE_N" in ''|*[!0-9]*|0*) \
		echo "flake-hunt: N must be a whole number of rounds, 1..100 (got '$$FLAKE_N')" >&2; exit 2;; esac; \
	if [ "$$FLAKE_N" -gt 100 ]; then echo "flake-hunt: N must be at most 100" >&2; exit 2; fi; \
	for t in $$FLAKE_TESTS; do [ -e "$${t%%::*}" ] || { \
		echo "flake-hunt: TESTS: no such file or directory: $${t%%::*}" >&2; exit 2; }; done; \
	out=results/flake/$$(date -u +%Y%m%dT%H%M%SZ); mkdir -p $$out; \
	echo "flake-hunt: $$FLAKE_N round(s) of -m boot $${FLAKE_K:+-k '$$FLAKE_K' }$$FLAKE_TESTS -> $$out"; \
	for i in $$(seq 1 $$FLAKE_N); do \
		echo "flake-hunt: round $$i of $$FLAKE_N"; \
		$(PYTHON) -m pytest -c harness/pytest.ini -m boot $${FLAKE_K:+-k "$$FLAKE_K"} $$FLAKE_TESTS \
			--junitxml=$$out/round$$i.xml -o junit_suite_name=round$$i $(ARGS); rc=$$?; \
		case $$rc in 0|1) ;; \
		5) echo "flake-hunt: round $$i: no boot test selected (K, TESTS)" >&2; exit 2;; \
		*) echo "flake-hunt: round $$i: pytest exited $$rc (interrupted or a usage error); no table" >&2; exit $$rc;; esac; \
	done; \
	$(HARNESS) flakes $$out

## ---- does the suite bite? ----------------------------------------------

# make mutants [ARGS="--only NAME --no-control --list"]: each deliberate
# breakage of harness/mutants.toml built incrementally in build/mutants/
# and run against the tests named as its killers; fails unless every
# mutant is killed (results/mutants/<UTC>/: results.json, junit.xml).
.PHONY: mutants
mutants: deps kernel-pksm rootfs
	$(HARNESS) mutants $(ARGS)

## ---- benchmarks (figures, never pass/fail) -------------------------------

bench-testbed: deps
	$(PYTHON) harness/bench_testbed.py $(if $(VARIANT),--variant $(VARIANT))

# PKSM against upstream KSM, side by side, as ratios (ARGS=--quick: smaller).
bench-pksm: deps kernel-pksm kernel-ksm rootfs
	$(PYTHON) harness/bench_pksm.py $(ARGS)
	$(PYTHON) harness/bench_engine.py $(ARGS)

# The engine figures (structured content, at rest, a real program's
# slowdown, metadata), PKSM against upstream KSM, each repeated (--repeat N,
# default 3) as median [min-max] with the PKSM/KSM ratio (ARGS=--quick: smaller).
.PHONY: bench-engine
bench-engine: deps kernel-pksm kernel-ksm rootfs
	$(PYTHON) harness/bench_engine.py $(ARGS)

# PKSM in front of zswap against zswap alone, the same workloads
# with and without duplicates, as ratios (ARGS=--repeat N, default 3; --quick).
.PHONY: bench-swap
bench-swap: deps kernel-pksm rootfs
	$(PYTHON) harness/bench_swap.py $(ARGS)

# Each engine along its main knob on the prefork Python server (KSM's scan
# rate with and without smart_scan, PKSM's probation over all memory and
# over opted-in memory only), one boot at a time (two two-vCPU guests on a
# two-core host inflate every slowdown; 72 boots, about 40 minutes), then
# their frontier in results/sweeps/frontier (docs/research.md, "Frontiers").
# ARGS go to each sweep (--dry-run: the cells, no frontier; --report: the
# reports of what is done). A sweep with a failed boot does not stop the
# others; the target then fails after them, and run again it boots only
# what is missing.
FRONTIER_SWEEPS := frontier-ksm frontier-ksm-nosmart frontier-pksm frontier-pksm-opted
.PHONY: bench-frontier
bench-frontier: deps kernel-pksm kernel-ksm rootfs
	@rc=0; for s in $(FRONTIER_SWEEPS); do \
		$(HARNESS) sweep $(TOP)/harness/sweeps/$$s.toml -j 1 $(ARGS) || rc=$$?; \
		case $$rc in 130|143) exit $$rc;; esac; done; \
	$(if $(findstring --dry-run,$(ARGS)),exit $$rc,$(HARNESS) frontier \
		$(addprefix $(TOP)/results/sweeps/,$(FRONTIER_SWEEPS)) --out $(TOP)/results/sweeps/frontier \
		&& exit $$rc)

## ---- classroom labs (labs/README.md) ------------------------------------

# make lab LAB=n [FORCE=1 | REFRESH=1]: the student's copy labs/work/n from
# the lab's skeleton (a kernel lab also gets its own tree and build in
# build/lab/n); FORCE=1 starts again, REFRESH=1 makes each file whose marked
# regions alone are the student's the current file with those regions;
# make lab-check LAB=n [SOLUTION=1] [INSTRUCTOR=1]: build and grade it (or the
# reference); answers are sealed unless INSTRUCTOR=1 (labs/README.md).
LAB    ?=
LAB_PY := $(PYTHON) $(TOP)/harness/lab.py
LAB_BASE = [ -n "$(LAB)" ] || { echo "lab: which lab? e.g. make $@ LAB=3 (labs: $$($(LAB_PY) list | cut -d' ' -f1 | tr '\n' ' '))" >&2; exit 2; }; \
	b=$$($(LAB_PY) base "$(LAB)") && $(MAKE) -s rootfs && \
	if [ -n "$(SOLUTION)" ] || [ ! -f $(KBUILD)/$$b/linux ]; then $(MAKE) -s kernel-$$b; fi

.PHONY: lab lab-check lab-run lab-edition-guard handin dist-student
lab: deps
	@$(LAB_BASE)
	@$(LAB_PY) prepare "$(LAB)" $(if $(FORCE),--force) $(if $(REFRESH),--refresh)

# The student edition (labs/EDITION) has no references or keys: refused
# before anything is built.
lab-edition-guard:
	@if [ -n "$(SOLUTION)$(INSTRUCTOR)" ] && [ -f labs/EDITION ]; then \
		echo "lab-check: the student edition has no reference solutions or answer keys: SOLUTION=1 and INSTRUCTOR=1 are the instructor's" >&2; exit 2; fi

lab-check: lab-edition-guard deps
	@$(LAB_BASE)
	@$(LAB_PY) check "$(LAB)" $(if $(SOLUTION),--solution) $(if $(INSTRUCTOR),--instructor) $(ARGS)

# make lab-run LAB=7: the lab's measuring run, booted for the student to
# read (the counts drawn afresh, nothing graded); labs with none say so.
lab-run: deps
	@$(LAB_BASE)
	@$(LAB_PY) run "$(LAB)" $(ARGS)

# make handin LAB=n STUDENT=id (or PKSMTB_STUDENT=id): build/handin/labN-ID.tar.gz,
# the lab's work files and a manifest, as lab.py batch takes them.
handin:
	@[ -n "$(LAB)" ] || { echo "handin: which lab? e.g. make handin LAB=3 STUDENT=jdoe" >&2; exit 2; }
	@$(LAB_PY) handin "$(LAB)" $(if $(STUDENT),--student "$(STUDENT)")

# make dist-student: build/dist-student/pksm-testbed-student/ and its .tar.gz,
# the tree without reference solutions, keys or instructor pages
# (labs/INSTRUCTOR.md); no kernel is built.
dist-student:
	@$(LAB_PY) dist-student

## ---- housekeeping --------------------------------------------------------

# PKSM's sources wherever they are under pksm/ (git ls-files): the kernel
# tree's checkpatch --strict and kernel-doc.  The tree is prepared only if
# there is none yet.
PKSM_SOURCES = git ls-files 'pksm/*.c' 'pksm/*.h'
KTREE_ONCE  := $(if $(wildcard $(KSRC)/.pksmtb-stamp),,$(KSRC)/Makefile)

checkpatch: | $(KTREE_ONCE)
	@echo "check: checkpatch --strict (PKSM sources)"
	@files=$$($(PKSM_SOURCES)); \
	if [ -n "$$files" ]; then perl $(KSRC)/scripts/checkpatch.pl --no-tree --strict -q -f $$files; \
	else echo "checkpatch: no PKSM sources yet"; fi

kerneldoc: | $(KTREE_ONCE)
	@echo "check: kernel-doc -none -Wall (PKSM sources)"
	@files=$$($(PKSM_SOURCES)); \
	if [ -n "$$files" ]; then out=$$(perl $(KSRC)/scripts/kernel-doc -none -Wall $$files 2>&1); \
		if [ -n "$$out" ]; then echo "$$out" >&2; exit 1; fi; \
	else echo "kernel-doc: no PKSM sources yet"; fi

clean:
	rm -rf build

distclean: clean
	rm -rf linux/src linux/src.tmp linux/dl

FORCE:
