# The two set-up commands: `make run` (the main job) and `make test` (the test suite).
SWIFT ?= swift

.PHONY: run test deps build lint bench screenshot install

deps:
	scripts/install-deps.sh

build: deps
	$(SWIFT) build -c release --product conflictscope

# The default sweep (config.toml): offline, on simulated models.
run: build
	.build/release/conflictscope run --config config.toml

lint:
	$(SWIFT) format lint --strict --recursive Sources Tests Package.swift

# Checks the deployment files (scripts/validate-deploy: Dockerfile, k8s/; tools from PyPI) first.
# Starts RabbitMQ and Redis on loopback when they are not running, and the local model
# (scripts/local-llm: SmolLM2-135M behind an OpenAI-compatible server; its first set-up builds
# llama-cpp-python, ~8 minutes). The cluster tests run one at a time (some restart the servers), and
# so do the sim-server's, whose rate-limit checks need requests that are not slowed by other suites
# running beside them, and the local model's sweep, which has the model's two CPUs to itself. The
# roles-in-process promise tests get a test process of their own: after the other cluster suites in
# the same process they have stalled (cause not found yet; docs/operations.md, "The cluster's promises").
test: deps lint
	scripts/validate-deploy
	$(SWIFT) build --build-tests
	cluster/servers start
	scripts/local-llm start
	$(SWIFT) test --skip ConflictScopeClusterTests --skip ConflictScopeSimServerTests --skip LocalModelTests
	$(SWIFT) test --filter ClusterPromisesTests --no-parallel
	$(SWIFT) test --filter "ConflictScopeClusterTests|ConflictScopeSimServerTests|LocalModelTests" \
		--skip ClusterPromisesTests --no-parallel

bench:
	bench/ranking

# docs/report.png, the README's picture of the HTML report (headless Chromium).
screenshot: deps
	scripts/report-screenshot

# Installs the release build: the binary in $(PREFIX)/lib/conflictscope beside SwiftPM's resource
# bundles (the prompts and value sets; Bundle.module looks for them next to the real executable, so
# a binary copied without them stops at its first prompt), and $(PREFIX)/bin/conflictscope as a
# symlink to it. Without root: `make install PREFIX=$HOME/.local`. DESTDIR stages a package.
PREFIX ?= /usr/local
install: build
	install -d "$(DESTDIR)$(PREFIX)/bin" "$(DESTDIR)$(PREFIX)/lib/conflictscope"
	rm -rf "$(DESTDIR)$(PREFIX)/lib/conflictscope/"*.resources
	install -m 755 .build/release/conflictscope "$(DESTDIR)$(PREFIX)/lib/conflictscope/conflictscope"
	cp -R .build/release/*.resources "$(DESTDIR)$(PREFIX)/lib/conflictscope/"
	ln -sfn ../lib/conflictscope/conflictscope "$(DESTDIR)$(PREFIX)/bin/conflictscope"
