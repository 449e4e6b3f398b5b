# Entry points. Each target installs what it needs into .venv first.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: install demo dev test test-unit test-integration test-faults test-e2e fuzz lint format bench bench-scale bench-pause bench-pacing bench-window bench-costs bench-ingest bench-actions bench-voice bench-receipts bench-webhooks package docs clean

$(STAMP): requirements.txt requirements-dev.txt
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -r requirements-dev.txt
	touch $(STAMP)

install: $(STAMP)

demo: $(STAMP) ## run a 2,000-recipient SMS campaign on the local stack, with live progress
	$(PY) -m infra.local.demo

dev: $(STAMP) ## start the local stack and keep it up for trying the API by hand (PROVIDER_URL=... for a provider run elsewhere)
	$(PY) -m infra.local.stack $(if $(PROVIDER_URL),--provider-url $(PROVIDER_URL))

test: $(STAMP) ## unit, integration and end-to-end tests
	$(PY) -m pytest tests

test-unit: $(STAMP)
	$(PY) -m pytest tests/unit

test-integration: $(STAMP)
	$(PY) -m pytest tests/integration

test-faults: $(STAMP) ## faults injected into the real handlers: every campaign completes, nothing sent twice
	$(PY) -m pytest tests/faults

test-e2e: $(STAMP)
	$(PY) -m pytest tests/e2e

fuzz: $(STAMP) ## the API contract fuzzed on the local stack, longer than in `make test` (FUZZ_EXAMPLES, FUZZ_STEPS, FUZZ_SEED)
	FUZZ_EXAMPLES=$${FUZZ_EXAMPLES:-1000} FUZZ_STEPS=$${FUZZ_STEPS:-20} $(PY) -m pytest tests/fuzz -s

lint: $(STAMP)
	$(PY) -m ruff check .
	$(PY) -m ruff format --check .
	$(PY) -m mypy app.py chalicelib infra bench tests

format: $(STAMP)
	$(PY) -m ruff format .
	$(PY) -m ruff check --fix .

bench: $(STAMP) ## 10,000 recipients: three campaigns on the local stack, each between two floors of local AWS (about 12 min); writes docs/benchmarks.md
	$(PY) -m bench.campaign_bench --recipients 10000 --repeats 3

bench-scale: $(STAMP) ## 10,000 and 100,000 recipients, each on fresh local AWS (about an hour); writes docs/benchmarks.md
	$(PY) -m bench.campaign_bench --recipients 10000,100000

bench-ingest: $(STAMP) ## a 1,000,000-row CSV through the S3 upload path, against BatchWriteItem on the same moto; updates docs/benchmarks.md
	$(PY) -m bench.ingest_bench --rows 1000000

bench-pause: $(STAMP) ## how long after pause sends stop, the rate after resume, a 10 s provider; updates docs/benchmarks.md
	$(PY) -m bench.pause_bench

bench-costs: $(STAMP) ## DynamoDB write units and requests per recipient: plain, retry, failover, cap (moto in-process); updates docs/benchmarks.md
	$(PY) -m bench.feature_costs

bench-window: $(STAMP) ## what the release reads for 1,000,000 recipients over four US zones, three outside their window (moto in-process); updates docs/benchmarks.md
	$(PY) -m bench.window_bench --recipients 1000000

bench-pacing: $(STAMP) ## sends in any second and the rate achieved at 1,000/s (simulated pacer), 1/s and 50/s (local stack); updates docs/benchmarks.md
	$(PY) -m bench.pacing_bench

bench-actions: $(STAMP) ## HTTP actions through the local stack against a local sink, as a ratio to plain httpx; updates docs/benchmarks.md
	$(PY) -m bench.actions_bench

bench-voice: $(STAMP) ## a voice campaign with 10% busy and 20% unanswered calls: retries and final counts checked exact; updates docs/benchmarks.md
	$(PY) -m bench.voice_bench

bench-receipts: $(STAMP) ## delivery receipts/s through the signed status webhook on the local stack, as a ratio to moto's floor; updates docs/benchmarks.md
	$(PY) -m bench.receipts_bench

bench-webhooks: $(STAMP) ## webhook deliveries/s to a local sink through the worker, as a ratio to plain async httpx; updates docs/benchmarks.md
	$(PY) -m bench.webhooks_bench

docs: $(STAMP) ## regenerate docs/api.md from the models
	$(PY) -m infra.api_reference

package: $(STAMP) ## CloudFormation/SAM template with infra/ merged in, checked with cfn-lint
	rm -rf build/package
	AWS_DEFAULT_REGION=$${AWS_DEFAULT_REGION:-us-east-1} $(VENV)/bin/chalice package --stage dev --merge-template infra/template.json build/package
	$(VENV)/bin/cfn-lint build/package/sam.json

clean:
	rm -rf $(VENV) build .pytest_cache .mypy_cache .ruff_cache
