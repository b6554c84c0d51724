# Two commands on a fresh machine: `make demo` and `make test`.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: install demo test lint audit eval bench faults locales clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

install: $(STAMP)

## Local chat on SQLite with the bundled knowledge base; no token needed.
## `make demo ROLE=mentor` starts as the mentor (and admin); /mentor_mod switches in the chat.
## `make demo SEED=1` first writes last month's sample activity (the console's report shows it).
ROLE ?= clerk
SEED ?=
demo: install
	$(if $(SEED),$(PY) -m bot seed-demo,)
	$(PY) -m bot playground --role $(ROLE)

## The whole suite; PostgreSQL tests run when TEST_POSTGRES_URL is set (CI sets it).
test: install
	$(PY) -m knowledge_base check
	$(PY) -m bot.i18n_build --check
	$(PY) -m pytest -q
	$(PY) -m knowledge_base eval knowledge_base/eval/test.jsonl --ratchet knowledge_base/eval/ratchet.json
	$(PY) -m knowledge_base eval knowledge_base/eval/blind.jsonl --ratchet knowledge_base/eval/ratchet.json
	$(PY) -m knowledge_base eval knowledge_base/eval/blind2.jsonl --ratchet knowledge_base/eval/ratchet.json
	$(PY) -m knowledge_base eval knowledge_base/eval/check7.jsonl --ratchet knowledge_base/eval/ratchet.json

lint: install audit
	$(PY) -m ruff check .
	$(PY) -m mypy bot handlers knowledge_base storage

## Known vulnerabilities in the locked dependencies (PyPI's advisory data). Fails on a finding;
## says so and goes on when the advisory service cannot be reached (an offline machine).
audit: install
	$(PY) bench/audit.py requirements.lock

DEV_SETS := knowledge_base/eval/dev.jsonl knowledge_base/eval/dev2.jsonl \
	knowledge_base/eval/dev4.jsonl knowledge_base/eval/dev5.jsonl
eval: install
	$(PY) -m knowledge_base eval knowledge_base/eval/dev.jsonl
	$(PY) -m knowledge_base eval knowledge_base/eval/dev2.jsonl
	$(PY) -m knowledge_base eval knowledge_base/eval/test.jsonl
	$(PY) -m knowledge_base eval knowledge_base/eval/blind.jsonl
	$(PY) -m knowledge_base eval knowledge_base/eval/blind2.jsonl
	$(PY) -m knowledge_base eval knowledge_base/eval/dev3.jsonl
	$(PY) -m knowledge_base eval knowledge_base/eval/dev4.jsonl
	$(PY) -m knowledge_base eval knowledge_base/eval/dev5.jsonl
	$(PY) -m knowledge_base eval knowledge_base/eval/dev6.jsonl
	$(PY) -m knowledge_base eval knowledge_base/eval/check4.jsonl
	$(PY) -m knowledge_base eval knowledge_base/eval/check7.jsonl
	$(PY) -m knowledge_base eval knowledge_base/eval/dev7.jsonl
	$(PY) -m knowledge_base crossval $(DEV_SETS)

## With TEST_POSTGRES_URL set, also two webhook instances on PostgreSQL + Redis (BENCH_REDIS),
## as behind a load balancer; that run empties the database's public schema first.
BENCH_REDIS ?= redis://127.0.0.1:6379/9
bench: install
	$(PY) bench/bench_matcher.py
	$(PY) bench/bench_telegram.py
	if [ -n "$$TEST_POSTGRES_URL" ]; then \
	  $(PY) bench/bench_telegram.py --database-url "$$TEST_POSTGRES_URL" --reset --instances 2 \
	    --redis-url $(BENCH_REDIS) --modes webhook --rate 150; \
	fi
	$(PY) bench/bench_broadcast.py

## Fault injection (slow, not in CI's budget): kill -9 during a burst of 500 questions with
## Telegram 429/502s, on SQLite; on PostgreSQL with two instances when TEST_POSTGRES_URL is set;
## and the 3,000-message broadcast killed halfway.
FAULTS_REDIS ?= redis://127.0.0.1:6379/9
faults: install
	$(PY) bench/faults.py
	if [ -n "$$TEST_POSTGRES_URL" ]; then \
	  $(PY) bench/faults.py --database-url "$$TEST_POSTGRES_URL" --instances 2 --redis-url $(FAULTS_REDIS); \
	  REDIS_URL=$(FAULTS_REDIS) BENCH_BROADCAST_COUNT=3000 $(PY) bench/bench_broadcast.py --database-url "$$TEST_POSTGRES_URL" --instances 2 --reset; \
	fi

## Re-extract UI strings, regenerate Cyrillic, compile catalogues.
locales: install
	$(PY) -m bot.i18n_build

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache
