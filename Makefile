.PHONY: bench bench-quick

# The benchmark against the peers (about 4 minutes on 2 cores): installs what it needs, starts a lab,
# writes benchmarks/results/latest.{json,md,png}, stops the lab.
bench:
	bash scripts/bench.sh

# The same in a few repetitions (about a minute; results in a temp dir).
bench-quick:
	bash scripts/bench.sh --quick
