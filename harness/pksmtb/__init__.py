"""PKSM testbed harness: build, boot and drive a User-Mode Linux kernel.

One module per job, in the spirit of tools/testing/kunit:

  paths     where things live in the checkout
  config    scenario files (TOML) -> validated Scenario objects
  kernel    finding a built kernel and what identifies it (hashes, version)
  guest     the guest side: run.sh generation, console protocol parsing
  boot      the UML command line and the UML process (time-outs, clean-up)
  sampling  timeseries.csv -> savings and timing figures
  results   run directories, meta.json, summary.json, list/show/compare
  plot      PNG of savings over time
  ktap      KTAP (KUnit) output parsing
  cli       the command line on top of all of it
"""
