# barrage — the verbs a user types. `make help` lists them.
GO      ?= go
BIN     ?= bin/barrage
PKGS    := ./...
# Packages the race detector runs on. The engine's hot loop is included:
# its tests are short and -race checks the hand-offs between goroutines.
RACE_PKGS := ./proto/... ./engine/... ./report/... ./coord/... ./server/... ./schedule/... ./internal/... ./fleet/... ./pipeline/... ./agent/... ./local/... ./live/... ./dashboard/... ./metrics/... ./web/...
# make fuzz runs every fuzz target for FUZZTIME; make test runs each for
# FUZZTIME_SHORT after the tests (the seeds alone run in go test).
FUZZTIME ?= 60s
FUZZTIME_SHORT ?= 3s

.PHONY: help build dist image validate-packaging test race fuzz chaos bench bench-peers bench-rate bench-overhead bench-conns bench-syscalls bench-profile bench-allocs bench-fleet check deps demo clean

help:
	@echo "make build        build $(BIN)"
	@echo "make test         install ZooKeeper, nginx, Chromium and podman if missing, then unit, fuzz-seed, allocation and end-to-end tests, and each fuzz target for FUZZTIME_SHORT ($(FUZZTIME_SHORT))"
	@echo "make race         tests under the race detector"
	@echo "make fuzz         run every fuzz target for FUZZTIME ($(FUZZTIME)) each"
	@echo "make chaos        the fault matrix against real ZooKeeper; writes RELIABILITY.md (CHAOS_ROWS=a,b for some rows)"
	@echo "make bench        Go micro-benchmarks (parser vs net/http, encoder, pacer, histogram)"
	@echo "make bench-peers  barrage vs wrk against nginx, pinned cores (installs wrk, nginx)"
	@echo "make bench-allocs heap allocations per response and GC cycles, 10 s runs (goal 2)"
	@echo "make bench-rate   open-model rate accuracy vs barrage target and nginx (goal 3)"
	@echo "make bench-overhead  latency measured against --delay and --stall targets (goal 4)"
	@echo "make bench-conns  10000 connections and a 3-minute RSS soak (goal 5)"
	@echo "make bench-syscalls  syscalls per request, barrage and wrk (goal 6)"
	@echo "make bench-profile   where the generator's CPU goes, barrage and wrk (perf, by bucket)"
	@echo "make bench-fleet  the coordinator against 100 and 1000 simulated agents; its memory over a short and a long test"
	@echo "make demo         ZooKeeper + target + 2 agents + coordinator: a short stepped test"
	@echo "make check        gofmt, go vet, a clean tree after formatting, and the packaging (Kubernetes manifests, systemd unit)"
	@echo "make dist         static binary (CGO_ENABLED=0, version and commit) in dist/, with CA certificates and SHA256SUMS"
	@echo "make image        the container image FROM scratch from dist/ (podman)"

# The commit for `barrage --version` when the go command records none (a
# git worktree, GOFLAGS=-buildvcs=false): see buildCommit in cmd/barrage.
VCS_COMMIT := $(shell git rev-parse HEAD 2>/dev/null)$(shell git diff --quiet HEAD 2>/dev/null || echo +modified)

build:
	$(GO) build -ldflags "-X main.buildCommit=$(VCS_COMMIT)" -o $(BIN) ./cmd/barrage

# The release build: static (no cgo), version from git describe, commit.
VERSION ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo devel)
DIST    ?= dist
dist:
	rm -rf $(DIST) && mkdir -p $(DIST)
	CGO_ENABLED=0 $(GO) build -trimpath -ldflags "-s -w -X main.buildCommit=$(VCS_COMMIT) -X main.buildVersion=$(VERSION)" -o $(DIST)/barrage ./cmd/barrage
	@$(GO) version -m $(DIST)/barrage | grep -q 'CGO_ENABLED=0' || { echo "dist: the binary is not static"; exit 1; }
	@if [ -f /etc/ssl/certs/ca-certificates.crt ]; then cp /etc/ssl/certs/ca-certificates.crt $(DIST)/; else echo "dist: no CA bundle on this host: the image will not verify https targets" >&2; : > $(DIST)/ca-certificates.crt; fi
	echo $(VERSION) > $(DIST)/VERSION
	cd $(DIST) && sha256sum barrage > SHA256SUMS
	@$(DIST)/barrage version

image: dist
	podman build -f packaging/Containerfile -t barrage:$(VERSION) .

deps:
	bash scripts/install-deps.sh zookeeper chromium nginx podman

test: deps
	$(GO) vet $(PKGS)
	$(GO) test -count=1 -p 1 -timeout 12m $(PKGS)
	GO=$(GO) bash scripts/fuzz.sh $(FUZZTIME_SHORT)

race: deps
	$(GO) test -count=1 -race -timeout 15m $(RACE_PKGS)

fuzz:
	GO=$(GO) bash scripts/fuzz.sh $(FUZZTIME)

# The fault matrix (chaos/): every row, one after another, < 10 minutes.
# Plain `go test ./chaos/` (and so `make test`) runs only the fast rows.
CHAOS_ROWS ?= all
chaos: deps
	bash scripts/chaos.sh $(CHAOS_ROWS)

bench:
	$(GO) test -run '^$$' -bench . -benchmem ./proto/... ./engine/...

bench-peers: build
	bash bench/peers.sh

bench-allocs: build
	bash bench/allocs.sh

bench-rate: build
	bash bench/rate.sh

bench-overhead: build
	bash bench/overhead.sh

bench-conns: build
	bash bench/conns.sh

bench-syscalls: build
	bash bench/syscalls.sh

bench-profile: build
	bash bench/profile.sh

bench-fleet: build deps
	bash bench/fleet.sh

demo: build deps
	bash scripts/demo.sh

check: validate-packaging
	@test -z "$$(gofmt -l .)" || { echo "gofmt needed:"; gofmt -l .; exit 1; }
	$(GO) vet $(PKGS)
	gofmt -w .
	git diff --exit-code

# The Kubernetes manifests, decoded strictly into k8s.io/api's types and
# cross-checked, offline (packaging/k8s/validate is its own module, so
# the binary does not carry k8s.io); the systemd unit, when
# systemd-analyze is there.
validate-packaging: build
	cd packaging/k8s/validate && $(GO) vet . && $(GO) test -count=1 . && $(GO) run . ../*.yaml
	@if command -v systemd-analyze >/dev/null 2>&1; then \
		tmp=$$(mktemp -d) && sed 's#/usr/local/bin/barrage#$(abspath $(BIN))#' packaging/systemd/barrage-agent.service > $$tmp/barrage-agent.service && \
		systemd-analyze verify $$tmp/barrage-agent.service && echo "systemd unit: ok"; st=$$?; rm -rf $$tmp; exit $$st; \
	else echo "systemd-analyze not found: the unit is not checked"; fi

clean:
	rm -rf bin
