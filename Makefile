.PHONY: bench bench-quick bench-per-process bench-fleet bench-kubernetes bench-credential-helper

# The benchmark against the peers (about 9 minutes on 2 cores), then the cold fleet against ECR's
# rate limit (about 3 minutes), Kubernetes pods, and the Docker credential helpers side by side:
# installs what it needs, starts a lab, writes benchmarks/results/latest.{json,md,png},
# fleet.{json,md}, kubernetes.{json,md} and credential_helper.{json,md}, stops the lab.
bench:
	bash scripts/bench.sh
	bash scripts/bench.sh --only fleet
	bash scripts/bench.sh --only kubernetes
	bash scripts/bench.sh --only credential-helper

# The same in a few repetitions (about 1.5 minutes; results in a temp dir).
bench-quick:
	bash scripts/bench.sh --quick

# Only the per-new-task-process warm and cold figures of airflow-ecr and the credential helper, with a
# profile of airflow-ecr's step in a new task process (well under a minute once installed; temp dir).
bench-per-process:
	bash scripts/bench.sh --only per-process --profile

# Only the cold fleet: 50 hosts x 8 task processes against ECR's bucket (200, refilled at 20/s),
# for airflow-ecr and the credential helper (benchmarks/results/fleet.{json,md}).
bench-fleet:
	bash scripts/bench.sh --only fleet

# Only Kubernetes pods' pull secrets: ECR and Kubernetes API calls per task and Secrets left behind,
# for 50 task processes on one worker and 50 that each start with an empty cache (KubernetesExecutor),
# against the tests' real kube-apiserver (benchmarks/results/kubernetes.{json,md}; about a minute once
# the Kubernetes servers are built).
bench-kubernetes:
	bash scripts/bench.sh --only kubernetes

# Only docker-credential-airflow-ecr against docker-credential-ecr-login: warm get per process (with
# the Python interpreter's own start as the floor) and 32 cold gets at once
# (benchmarks/results/credential_helper.{json,md}; about 2 minutes).
bench-credential-helper:
	bash scripts/bench.sh --only credential-helper
