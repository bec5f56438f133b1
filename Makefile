# junction: the two commands are `make run` and `make test`.

GO       ?= go
VERSION  ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo devel)
COMMIT   ?= $(shell git rev-parse --short HEAD 2>/dev/null || echo unknown)
LDFLAGS  := -X main.version=$(VERSION) -X main.commit=$(COMMIT)
FUZZTIME ?= 60s
# wrk sets the length of each end-to-end run (JUNCTION_BENCH_DURATION), so one
# iteration is enough.
BENCHTIME ?= 1x

.PHONY: all build run test vet gotest fuzz-smoke fuzz fuzz-report bench bench-e2e bench-compare soak deps clean

all: build

## build: bin/junction with version and commit stamped in
build:
	$(GO) build -ldflags '$(LDFLAGS)' -o bin/junction ./cmd/junction

## run: serve the built-in configuration (HTTP :8080, SCGI :4000) from the repo root
run: build
	./bin/junction serve

## test: the one test command: real peers, vet, unit + integration tests, fuzz smoke
test: deps vet gotest fuzz-smoke

deps:
	./.ci/deps

vet:
	$(GO) vet ./...

## gotest: unit tests and the integration suite (integration/)
gotest:
	$(GO) test -count=1 -timeout 15m ./...

fuzz-smoke:
	./.ci/fuzz-smoke 5s

## fuzz: every Fuzz target for FUZZTIME (default 60s) each
fuzz:
	./.ci/fuzz-smoke $(FUZZTIME)

## fuzz-report: per target, corpus size, coverage of its package from its
## corpus, and execs in FUZZTIME on one worker
fuzz-report:
	./.ci/fuzz-report $(FUZZTIME)

# Where the end-to-end benchmark writes its summary table.
BENCH_SUMMARY ?= bin/bench-summary.txt
# Which end-to-end benchmarks run (a go test -bench pattern), e.g.
# 'EndToEndPools$$' or 'EndToEnd$$' (SCGI → CGI) for one of them.
BENCH_E2E_RUN ?= EndToEnd
# JUNCTION_BENCH_DURATION (each path's measured time, default 10s),
# JUNCTION_BENCH_ROUNDS (interleaved rounds, default 3) and
# JUNCTION_BENCH_BASELINE (another junction binary, for a before/after
# table; see bench-compare) reach the benchmarks from the environment or
# the make command line.
BENCH_E2E = mkdir -p $(dir $(BENCH_SUMMARY)) && rm -f $(BENCH_SUMMARY) && \
	JUNCTION_BENCH=1 JUNCTION_BENCH_SUMMARY=$(abspath $(BENCH_SUMMARY)) \
	$(GO) test ./integration -run '^$$' -bench '$(BENCH_E2E_RUN)' -benchtime $(BENCHTIME) -timeout 60m -v

## bench: micro-benchmarks of every package (SCGI decoder, CGI response
## parser, ...) and the end-to-end comparison, summary table last
bench:
	$(GO) test -run '^$$' -bench . -benchmem $$($(GO) list ./... | grep -v '/integration$$')
	$(BENCH_E2E)
	@echo; echo '==== end-to-end summary ===='; cat $(BENCH_SUMMARY)

## bench-e2e: end-to-end benchmarks against real front servers (integration/)
bench-e2e:
	$(BENCH_E2E)
	@echo; echo '==== end-to-end summary ===='; cat $(BENCH_SUMMARY)

# bench-compare: "no regression" proof for a change. It builds BASE (any
# git ref; default origin/main when that exists, else HEAD) from a clean
# export of that commit (git archive into a temp dir, so this work tree is
# left alone) into bin/junction-baseline, then runs the end-to-end
# benchmarks with JUNCTION_BENCH_BASELINE=bin/junction-baseline: every
# junction path also runs on the baseline binary, same config, same front
# server, rounds interleaved (junction, baseline, junction, baseline, ...).
# Each benchmark's table ends with both binaries' median req/s, CPU µs per
# request and Go heap allocations per request, the junction/baseline
# ratios and a verdict per figure; the target fails when any says
# REGRESSION (more than 5 % slower or costlier, or more allocations).
# The code under test is this work tree, uncommitted changes included.
#
#   make bench-compare                        # work tree vs origin/main (or HEAD)
#   make bench-compare BASE=HEAD~3            # vs three commits back
#   make bench-compare BASE=main BENCH_E2E_RUN='EndToEndPools$$'
#   make bench-compare JUNCTION_BENCH_ROUNDS=5 JUNCTION_BENCH_DURATION=30s
#
# The same code on both sides (BASE=HEAD on a clean tree) shows the
# machine's noise: ratios near 1.00 and how far single rounds stray.
BASE ?= $(shell git rev-parse -q --verify origin/main >/dev/null && echo origin/main || echo HEAD)
BASELINE_BIN := bin/junction-baseline

## bench-compare: end-to-end benchmarks of this tree vs BASE (a git ref), with verdicts
bench-compare:
	@commit=$$(git rev-parse --verify -q '$(BASE)^{commit}') || { echo "bench-compare: BASE=$(BASE) is not a commit" >&2; exit 2; }; \
	tmp=$$(mktemp -d) && trap 'rm -rf "$$tmp"' EXIT && \
	echo "bench-compare: building $(BASE) ($$commit) into $(BASELINE_BIN)" && \
	git archive --format=tar "$$commit" | tar -x -C "$$tmp" && \
	mkdir -p $(dir $(BASELINE_BIN)) && \
	(cd "$$tmp" && $(GO) build -o $(abspath $(BASELINE_BIN)) ./cmd/junction)
	export JUNCTION_BENCH_BASELINE=$(abspath $(BASELINE_BIN)) && $(BENCH_E2E)
	@echo; echo '==== end-to-end summary, junction vs $(BASE) ===='; cat $(BENCH_SUMMARY)
	@! grep -q REGRESSION $(BENCH_SUMMARY) || { echo; echo 'bench-compare: REGRESSION (see the verdicts above)' >&2; exit 1; }

## soak: 100,000 mixed requests through nginx (SCGI, FastCGI) and Apache (AJP)
## to CGI and an HTTP pool; fails if junction's fds, goroutines, child
## processes or memory grow beyond noise. SOAK_REQUESTS sets the count.
SOAK_REQUESTS ?= 100000
soak:
	JUNCTION_SOAK=1 JUNCTION_SOAK_REQUESTS=$(SOAK_REQUESTS) $(GO) test ./integration -run '^TestSoak$$' -count=1 -timeout 60m -v

clean:
	rm -rf bin
