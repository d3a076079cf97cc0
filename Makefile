# The two everyday commands; both set themselves up first.
#   make run    the whole pipeline on the embedded profile (no servers, no Docker)
#   make test   every test: unit, pipeline, real local servers, Airflow, offline deployment checks
.PHONY: run test setup bench mutation mlflow-ui airflow services-up services-down clean

run:
	@scripts/setup.sh
	.venv/bin/mdp run

test:
	@scripts/setup.sh --test
	.venv/bin/python -m pytest

bench:
	@scripts/setup.sh --test
	.venv/bin/python -m bench

# Mutation testing by hand, not in CI: [tool.mutmut] in pyproject.toml says which modules and tests;
# docs/TESTING.md has the last score. Fresh each time (mutmut caches results across test changes).
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

-include mk/deploy.mk
