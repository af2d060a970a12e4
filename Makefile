# vault-plugin-secrets-sms
#   make dev     build everything, start the SMS stand-in and a Vault dev server with the plugin
#   make test    unit tests (with -race) and the integration suite on a real Vault server
#   make test-integration VAULT_VERSION=1.19.5   the suite on another Vault release (README, "Vault versions")
#   make bench   engine benchmarks and the end-to-end benchmark against Vault baselines
#   make release-snapshot  release archives, sums and SBOMs of this commit in dist/snapshot/

SHELL        := /usr/bin/env bash
MODULE       := github.com/sms-vault/vault-plugin-secrets-sms
# What `make build` stamps: a pre-release of the next version, never a
# released one, which Vault's plugin catalog may already hold with another
# checksum. `make build VERSION=v1.2.3` for a release's version.
VERSION      ?= v0.1.0-dev
GOFLAGS_RACE ?= -race
LDFLAGS      := -s -w -X $(MODULE).Version=$(VERSION)
FUZZTIME     ?= 10s
# Pinned tools (goreleaser, cyclonedx-gomod, golangci-lint), each from its own
# module under tools/, built into .cache/bin; the project's go.mod never
# sees them.
TOOLS_BIN    := $(CURDIR)/.cache/bin
# RELEASE_TARGETS=ci limits a snapshot to linux/amd64 and darwin/arm64.
RELEASE_TARGETS ?=
# The release tools scripts/goreleaser.sh builds into .cache/bin; the
# integration suite's release test runs only once they are there.
RELEASE_TOOLS := goreleaser cyclonedx-gomod cyclonedx-reproducible
# Empty: the pinned Vault (tools/vault), or a vault on PATH the suite is
# proven on. x.y.z: exactly that release (scripts/vault.sh).
VAULT_VERSION ?=

.PHONY: all build dev dev-check test test-unit test-integration fuzz fuzz-ci bench bench-go bench-instructions bench-e2e vault fmt fmtcheck vet clean \
	release-tools release-config release-snapshot release release-sign-check release-check lint-tools lint

all: fmtcheck vet build test

build:
	go build -trimpath -ldflags '$(LDFLAGS)' -o bin/vault-plugin-secrets-sms ./cmd/vault-plugin-secrets-sms
	go build -trimpath -o bin/sms-fake ./cmd/sms-fake

# Prints the Vault binary to use, building the pinned one on first use.
vault:
	@VAULT_VERSION='$(VAULT_VERSION)' scripts/vault.sh

dev: build
	scripts/dev.sh

# Runs make dev, pastes the lines it prints into a clean shell without vault
# on PATH, reads a passphrase and stops make dev.
dev-check:
	scripts/check-dev.sh

test: test-unit test-integration

# With the SBOM post-processor's tests (tools/release is a module of its own).
test-unit:
	go test $(GOFLAGS_RACE) -count=1 ./...
	cd tools/release && go test $(GOFLAGS_RACE) -count=1 ./cyclonedx-reproducible

# Without the release tools the release test is skipped (one line says so);
# .ci/run sets SMS_REQUIRE_RELEASE_TEST=1, which makes that a failure.
test-integration: build
	vault_bin="$$(VAULT_VERSION='$(VAULT_VERSION)' scripts/vault.sh)" && \
	  VAULT_BIN="$$vault_bin" go test -tags integration -count=1 -timeout 30m ./integration/...
	@if [ -z "$$RELEASE_DIST" ]; then for t in $(RELEASE_TOOLS); do if [ ! -x $(TOOLS_BIN)/$$t ]; then \
	  echo "Release test not run: the release tools are not built (make release-tools, then make test-integration; about 5 minutes and 2 GB once)"; break; fi; done; fi

# Short fuzzing of every target; longer runs: make fuzz FUZZTIME=10m
fuzz:
	scripts/fuzz.sh $(FUZZTIME)

fuzz-ci:
	scripts/fuzz.sh 10s

bench: bench-go bench-instructions bench-e2e

bench-go:
	go test -run '^$$' -bench . -benchmem -count 1 .

# Instructions per cached read, direct and through roles (valgrind).
bench-instructions:
	scripts/bench-instructions.sh

bench-e2e: build
	VAULT_BIN="$$(scripts/vault.sh)" scripts/bench.sh

fmt:
	gofmt -w $$(git ls-files '*.go')

fmtcheck:
	@out=$$(gofmt -l $$(git ls-files '*.go')); if [ -n "$$out" ]; then echo "gofmt needed:"; echo "$$out"; exit 1; fi

vet:
	go vet ./...
	go vet -tags integration ./integration/...

# --- releases (.goreleaser.yaml, run by scripts/goreleaser.sh, which builds
# the pinned GoReleaser, cyclonedx-gomod and cyclonedx-reproducible into
# .cache/bin first)

release-tools:
	scripts/goreleaser.sh --version >/dev/null

# Validates .goreleaser.yaml.
release-config:
	scripts/goreleaser.sh check

# Any commit: dist/snapshot/ with version v<next patch>-SNAPSHOT-<commit>
# (-dirty added if the tree has changes); dist/snapshot/release/ holds the
# files a release would publish. Never touches the rest of dist/, where a
# release may wait to be uploaded.
release-snapshot:
	RELEASE_TARGETS="$(RELEASE_TARGETS)" scripts/goreleaser.sh --dist dist/snapshot release --snapshot --clean
	scripts/release-files.sh dist/snapshot

# A tagged commit (vX.Y.Z at HEAD, clean tree): the release itself, in dist/
# (replacing all of dist/, snapshots included), to upload by hand from
# dist/release/.
release:
	scripts/goreleaser.sh release --clean
	scripts/release-files.sh dist

# make release-snapshot signed with a throwaway key, and the signature
# verified as the README tells users to (run by .ci/run).
release-sign-check:
	scripts/check-signing.sh

# Builds this commit twice (here into dist/snapshot/, and in a fresh clone
# with its own build cache, SBOM tools, time zone and locale) for linux/amd64
# and darwin/arm64 and compares the artifacts byte for byte.
release-check:
	scripts/check-reproducible.sh

# --- static analysis (.golangci.yml)

lint-tools:
	@mkdir -p $(TOOLS_BIN)
	cd tools/lint && go build -buildvcs=false -trimpath -o $(TOOLS_BIN)/ github.com/golangci/golangci-lint/v2/cmd/golangci-lint

# Both runs always, so that one list has every finding; fails if either has one.
lint: lint-tools
	@status=0; \
	$(TOOLS_BIN)/golangci-lint run ./... || status=1; \
	echo "--- with the integration build tag: ./integration/..."; \
	$(TOOLS_BIN)/golangci-lint run --build-tags integration ./integration/... || status=1; \
	exit $$status

clean:
	rm -rf bin dist
