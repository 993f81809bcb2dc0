# The two set-up commands: `make run` (the main job) and `make test` (the test suite).
SWIFT ?= swift

.PHONY: run test deps build lint bench

deps:
	scripts/install-deps.sh

build: deps
	$(SWIFT) build -c release --product conflictscope

# Rankings and metrics of the bundled example judgments.
run: build
	.build/release/conflictscope rank --judgments examples/judgments.jsonl --metrics

lint:
	$(SWIFT) format lint --strict --recursive Sources Tests Package.swift

test: deps lint
	$(SWIFT) build --build-tests
	$(SWIFT) test

bench:
	bench/ranking
