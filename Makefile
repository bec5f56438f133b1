# junction: the two commands are `make run` and `make test`.

GO       ?= go
VERSION  ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo devel)
COMMIT   ?= $(shell git rev-parse --short HEAD 2>/dev/null || echo unknown)
LDFLAGS  := -X main.version=$(VERSION) -X main.commit=$(COMMIT)
FUZZTIME ?= 60s
# wrk sets the length of each end-to-end run (JUNCTION_BENCH_DURATION), so one
# iteration is enough.
BENCHTIME ?= 1x

.PHONY: all build run test vet gotest fuzz-smoke fuzz bench bench-e2e deps clean

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

# Where the end-to-end benchmark writes its summary table.
BENCH_SUMMARY ?= bin/bench-summary.txt
# JUNCTION_BENCH_BASELINE=/path/to/older/junction adds a before/after column.
BENCH_E2E = mkdir -p $(dir $(BENCH_SUMMARY)) && rm -f $(BENCH_SUMMARY) && \
	JUNCTION_BENCH=1 JUNCTION_BENCH_SUMMARY=$(abspath $(BENCH_SUMMARY)) \
	$(GO) test ./integration -run '^$$' -bench EndToEnd -benchtime $(BENCHTIME) -timeout 30m -v

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

clean:
	rm -rf bin
