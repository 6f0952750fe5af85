.PHONY: bench bench-quick bench-per-process

# The benchmark against the peers (about 9 minutes on 2 cores): installs what it needs, starts a lab,
# writes benchmarks/results/latest.{json,md,png}, stops the lab.
bench:
	bash scripts/bench.sh

# The same in a few repetitions (about 1.5 minutes; results in a temp dir).
bench-quick:
	bash scripts/bench.sh --quick

# Only the per-new-task-process warm and cold figures of airflow-ecr and the credential helper, with a
# profile of airflow-ecr's step in a new task process (well under a minute once installed; temp dir).
bench-per-process:
	bash scripts/bench.sh --only per-process --profile
