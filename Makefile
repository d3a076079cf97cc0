# The two everyday commands; both set themselves up first.
#   make run    the whole pipeline on the embedded profile (no servers, no Docker)
#   make test   every test: unit, pipeline, real local servers, Airflow, offline deployment checks
.PHONY: run test setup bench mlflow-ui airflow services-up services-down clean

run:
	@scripts/setup.sh
	.venv/bin/mdp run

test:
	@scripts/setup.sh --test
	.venv/bin/python -m pytest

bench:
	@scripts/setup.sh --test
	.venv/bin/python -m bench

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
