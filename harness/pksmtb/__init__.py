"""PKSM testbed harness: build, boot and drive a User-Mode Linux kernel.

One module per job, in the spirit of the kernel's tools/testing/kunit:

  paths     where things live in the checkout
  config    scenario files (TOML) -> validated Scenario objects; the default
            variant; PKSM's trace event names
  kernel    finding a built kernel and what identifies it (hashes, version)
  buildinfo what a kernel was built from: the build record beside the binary
  overlay   a kernel tree of the checkout's PKSM files but a few (mutants, labs)
  guest     the guest's run.sh
  boot      the UML command line (memory, root, swap, time travel, extra
            arguments) and the UML process: time-out, SIGINT/SIGTERM/SIGHUP,
            parent-death signal, clean-up
  console   the PKSMTB-* console protocol and kernel trouble -> events.json
  verdict   ExitCode (IntEnum) and the problems of a run
  runner    run(RunRequest) -> RunResult, callable in process
  gdb       booting a scenario under gdb
  progress  the live progress line
  sampling  timeseries.csv -> savings and timing figures
  ktap      KTAP (KUnit, kselftest) parsing; KUnit summary
  ksft      kselftest results judged against the scenario
  trace     PKSM tracepoints -> per-page timelines and lifetimes
  plot      every PNG
  results   run directories, meta.json, summary.json: storage
  report    tables of runs for people
  labs      the classroom labs: skeletons, a student's kernel, the autograder
  labregion a lab file's marked regions: split, filled, a copy's spliced
            into the current file, the difference outside them said
  labanswers  an answers file: read, its form checked, formulas evaluated
  labdraw   the sizes a prediction lab is graded with, drawn at grading
  labreport what a lab grade shows, to a student or to the instructor
  handin    hand-in archives: what a student submits and the batch grader takes
  edition   the student edition (make dist-student): what grading keeps private left out
  sandbox   bubblewrap, prlimit and timeout around a submission's build and boots
  hostprog  real programs of the host's Debian root as guest workloads
  knobs     each variant's writable knobs and the values its kernel takes
  sweepspec sweep specs (TOML) -> validated Spec, its cells and jobs
  sweep     running a sweep: process pool or Dask, live lines, resuming
  stats     mean, stddev, Welch's t-test, LKP's ranges rule; paired ratios
            with their intervals, Holm and Benjamini-Hochberg, the smallest
            detectable change, targets judged on intervals
  sweepreport  a sweep's report: text, CSV, JSON, plots
  metrics   named metric functions of a run directory (metrics/swap.py:
            the zswap bench's), for sweep specs and benches
  benchstats   the benches' runs paired by repeat and their targets judged;
               their tables' column layout
  benchsweep   a bench run by the sweep engine: its runs as figures.json keeps them
  benchswap    the zswap bench's figures, targets and table
  benchbuilds  the kernels a bench boots, pinned as it starts
  frontier  the saving/cost frontier of merge engines, from their sweeps' reports
  sidechannel  the side-channel scenario's figures: accuracy per merge_domain mode
  mutants   mutation testing of the engine: does the test suite bite?
  junit     JUnit XML, for CI and course platforms
  flakes    make flake-hunt's rounds (pytest JUnit XML): the tests that did not
            pass in every round
  cli       the command line: argument parsing and dispatch only
"""
