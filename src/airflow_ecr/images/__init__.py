"""
Which image a task ran: image names and digests (:mod:`~airflow_ecr.images.reference`), the
registry's manifest API (:mod:`~airflow_ecr.images.manifests`), the record every ECR task pushes
to XCom (:mod:`~airflow_ecr.images.record`), the pins a DAG run shares
(:mod:`~airflow_ecr.images.pins`), and the names images of other registries have in an ECR
pull-through cache (:mod:`~airflow_ecr.images.pull_through`).
"""
