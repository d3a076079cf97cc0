# The two everyday commands; both set themselves up first.
#   make run    the whole pipeline on the embedded profile (no servers, no Docker)
#   make test   every test: unit, pipeline, real local servers, Airflow, offline deployment checks
.PHONY: run lint test test-fast fuzz setup bench mutation mlflow-ui airflow services-up services-down clean \
        base-images compose-up compose-e2e compose-down

run:
	@scripts/setup.sh
	.venv/bin/mdp run

# Two workers: the Docker tests in one, beside the rest (groups and scheduler: tests/conftest.py). `-n 0` for one process.
PYTEST_WORKERS ?= -n 2 --dist loadscope --no-loadscope-reorder

# Lint, format and types ([tool.ruff], [tool.mypy] in pyproject.toml): a failure stops `make test` first.
lint:
	@scripts/setup.sh --test
	.venv/bin/ruff check .
	.venv/bin/ruff format --check .
	.venv/bin/mypy

test: lint
	.venv/bin/python -m pytest $(PYTEST_WORKERS)

# The inner loop: the unit tests (`-m unit`: pure functions, the contract, transforms) and one
# embedded run end to end, then the quiet rerun. Minutes, not the hour of `make test`; CI still
# runs `make test`.
test-fast:
	@scripts/setup.sh
	.venv/bin/python -m pytest $(PYTEST_WORKERS) -m unit tests
	.venv/bin/python -m pytest $(PYTEST_WORKERS) tests/pipeline/test_embedded_e2e.py tests/pipeline/test_quiet_and_all.py

# Random histories through the pipeline for as long as asked (tests/properties): EXAMPLES histories of
# up to STEPS steps, random seeds; Hypothesis's example database in .cache/hypothesis replays a failure first.
fuzz:
	@scripts/setup.sh --test
	FUZZ_EXAMPLES=$(or $(EXAMPLES),50) FUZZ_STEPS=$(or $(STEPS),12) .venv/bin/python -m pytest -n 0 tests/properties/test_histories.py

bench:
	@scripts/setup.sh --test
	.venv/bin/python -m bench

# Mutation testing by hand, not in CI: [tool.mutmut] in pyproject.toml says which modules and tests;
# bench/HISTORY.md has the scores. Fresh each time (mutmut caches results across test changes).
mutation:
	@scripts/setup.sh --test
	rm -rf mutants
	.venv/bin/mutmut run --max-children 2; .venv/bin/mutmut results

mlflow-ui:
	.venv/bin/mdp mlflow-ui

airflow:
	.venv/bin/mdp airflow standalone

services-up:
	.venv/bin/mdp services up

services-down:
	.venv/bin/mdp services down

clean:
	rm -rf .mdp

# ---- docker compose (README "Deploying"; docs/DEPLOYMENT.md) ---------------------------------------
# Every upstream image that the Dockerfiles and docker-compose.yml name: pulled, or, where no
# registry answers, a local stand-in with the same name (tests/containers/standins).
base-images:
	@scripts/setup.sh --test
	.venv/bin/python tests/containers/standins/base_images.py

# OFFLINE=1 builds from .cache/build-inputs (wheels, S3A jars, CA bundle) instead of PyPI and Maven,
# the wheels and jars served over HTTP on the Docker bridge while each command runs.
OFFLINE_BUILD = $(if $(filter 1,$(OFFLINE)),.venv/bin/python tests/containers/standins/base_images.py --build-inputs --)
# mdp-spark is built before `up` builds mdp-jobs: the classic builder then takes their shared deps stage
# from its layer cache (built side by side, each would install it).
compose-up: base-images
	@test -f .env || cp .env.example .env
	$(OFFLINE_BUILD) docker compose build airflow-init airflow-webserver airflow-scheduler
	$(OFFLINE_BUILD) docker compose build spark-master
	$(OFFLINE_BUILD) docker compose up -d
	.venv/bin/python scripts/compose_wait.py

# Events into the topic (the producer step), then one customers_end_to_end run through the REST API v2.
compose-e2e:
	docker compose run --rm producer --events $(or $(EVENTS),20000)
	set -a && . ./.env && set +a && AIRFLOW_USERNAME="$$AIRFLOW_ADMIN_USER" AIRFLOW_PASSWORD="$$AIRFLOW_ADMIN_PASSWORD" \
	  .venv/bin/python scripts/e2e_trigger.py --url http://localhost:8088 --dag customers_end_to_end

compose-down:
	docker compose down -v

-include mk/deploy.mk
