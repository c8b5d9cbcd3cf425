# Tandem's build, test and lint entry points. `make help` lists them.
#
# make test starts a private PostgreSQL cluster and a 3-node ZooKeeper
# ensemble (scripts/test-services; installs the Debian packages when they are
# missing, logging apt's output to .scratch/services/install.log), runs the
# whole suite against them and stops them, even on failure. It prints go
# test's usual output, then the skipped tests with their reasons and a line
# "tests: N passed, N failed, N skipped". Tests run with TMPDIR set to a
# directory of the run's own, removed at the end (kept when a test failed
# and TANDEM_KEEP_FAILED is set).

GO ?= go
SERVICES := scripts/test-services

# Packages whose tests start processes, take leases or use PostgreSQL or
# ZooKeeper: they run one package at a time (-p 1) with a long timeout.
# Every other package of `go list ./...` runs in parallel.
SERIAL_PKGS ?= ./jdbcstore/... ./ha/... ./broker/... ./internal/... ./cmd/... ./server/... ./client/... ./lockfile/... ./replication/... ./stomp/... ./amqp/...
SERIAL_TIMEOUT ?= 20m
PARALLEL_TIMEOUT ?= 10m
# -count=1: make test proves the code against these services now, not
# against a cached result of an earlier run.
TESTFLAGS ?= -count=1

# Packages with a -long flag (long explorations, minutes of CPU each): make
# test-long runs them with it.
LONG_PKGS = $(sort $(dir $(shell grep -rl --include='*_test.go' 'flag.Bool."long"' . 2>/dev/null)))
LONG_TIMEOUT ?= 120m

BENCH_PKGS ?= ./journal/... ./aio/... ./wire/... ./jdbcstore/... ./bench/...
BENCHTIME ?= 2s
FUZZTIME ?= 20s

STATICCHECK_VERSION ?= v0.8.2
# Keyed by Go version too: a staticcheck built by an older Go cannot load newer code.
TOOLS = $(CURDIR)/bin/tools/staticcheck-$(STATICCHECK_VERSION)-$(shell $(GO) env GOVERSION)
STATICCHECK = $(TOOLS)/staticcheck

RUN_ARGS ?=

# Evaluated only in recipes that use them (recursive '=').
# Patterns whose directory does not exist (yet) are dropped: go list -e
# would echo them back as packages that fail to set up.
existing = $(foreach p,$(1),$(if $(wildcard $(patsubst %/...,%,$(p))),$(p)))
golist = $(if $(strip $(1)),$(filter-out ./% _/%,$(shell $(GO) list -e $(1) 2>/dev/null)))
serial_list = $(call golist,$(call existing,$(SERIAL_PKGS)))
all_list = $(call golist,./...)
parallel_list = $(filter-out $(serial_list),$(all_list))
bench_list = $(call golist,$(call existing,$(BENCH_PKGS)))

.PHONY: help run build test test-short test-long test-with-services bench fuzz lint fmt vet staticcheck services services-stop services-status clean

help:
	@echo 'make run            build and run the broker (tandem run $$RUN_ARGS)'
	@echo 'make build          bin/tandem'
	@echo 'make test           the whole suite with PostgreSQL and ZooKeeper (started and stopped here)'
	@echo 'make test-short     go test -short ./..., no services'
	@echo 'make test-long      the long explorations (-long) of $(LONG_PKGS) (nightly-style)'
	@echo 'make bench          benchmarks of $(BENCH_PKGS) (BENCHTIME=$(BENCHTIME))'
	@echo 'make fuzz           every Fuzz target for FUZZTIME=$(FUZZTIME)'
	@echo 'make lint           gofmt, go vet, staticcheck $(STATICCHECK_VERSION), go mod tidy -diff'
	@echo 'make services       start the test services; then: . .scratch/services/env'
	@echo 'make services-stop  stop them'

# The commit for `tandem version` when go's own VCS stamp is off.
COMMIT = $(shell git rev-parse --short=12 HEAD 2>/dev/null)$(shell git diff --quiet HEAD 2>/dev/null || echo +dirty)

build:
	$(GO) build -ldflags "-X main.buildCommit=$(COMMIT)" -o bin/tandem ./cmd/tandem

run: build
	./bin/tandem run $(RUN_ARGS)

test:
	@$(SERVICES) run -- $(MAKE) --no-print-directory test-with-services

# Runs the suite against services already in the environment (make test sets
# them up; after `make services && . .scratch/services/env` it works alone).
test-with-services:
	@rc=0; \
	tmp=$$(mktemp -d /tmp/tandem-test.XXXXXX); state=$$tmp.state; \
	par="$(parallel_list)"; ser="$(serial_list)"; \
	if [ -n "$$par" ]; then \
		echo "== go test (parallel): $$(echo $$par | wc -w) packages"; \
		{ TMPDIR=$$tmp $(GO) test -json $(TESTFLAGS) -timeout $(PARALLEL_TIMEOUT) $$par; echo $$? >$$tmp.rc; } \
			| $(GO) run ./internal/testsummary -state $$state || rc=1; \
		[ "$$(cat $$tmp.rc)" = 0 ] || rc=1; \
	fi; \
	if [ -n "$$ser" ]; then \
		echo "== go test -p 1 (processes, leases, services): $$(echo $$ser | wc -w) packages"; \
		{ TMPDIR=$$tmp $(GO) test -json $(TESTFLAGS) -p 1 -timeout $(SERIAL_TIMEOUT) $$ser; echo $$? >$$tmp.rc; } \
			| $(GO) run ./internal/testsummary -state $$state || rc=1; \
		[ "$$(cat $$tmp.rc)" = 0 ] || rc=1; \
	fi; \
	$(GO) run ./internal/testsummary -state $$state -summary || rc=1; \
	if [ $$rc -ne 0 ] && [ -n "$$TANDEM_KEEP_FAILED" ]; then echo "== kept $$tmp (TANDEM_KEEP_FAILED)"; else rm -rf $$tmp; fi; \
	rm -f $$state $$tmp.rc; \
	if [ $$rc -ne 0 ]; then echo "== make test: FAILED (see FAIL lines above)"; fi; \
	exit $$rc

# The long explorations (nightly-style; not part of make test or CI's run).
test-long:
	@pkgs="$(LONG_PKGS)"; [ -n "$$pkgs" ] || { echo "no package has a -long flag"; exit 0; }; \
	rc=0; for p in $$pkgs; do \
		echo "== go test $$p -long"; \
		$(GO) test -count=1 -timeout $(LONG_TIMEOUT) $$p -long || rc=1; \
	done; exit $$rc

test-short:
	$(GO) test -short ./...

bench:
	@pkgs="$(bench_list)"; [ -n "$$pkgs" ] || { echo "no benchmark packages yet"; exit 0; }; \
	$(SERVICES) run -- $(GO) test -run '^$$' -bench . -benchmem -benchtime $(BENCHTIME) -timeout 30m $$pkgs

fuzz:
	@rc=0; for pkg in $(all_list); do \
		for f in $$($(GO) test -list '^Fuzz' $$pkg 2>/dev/null | grep '^Fuzz'); do \
			echo "== $$pkg $$f ($(FUZZTIME))"; \
			$(GO) test -run '^$$' -fuzz "^$$f$$" -fuzztime $(FUZZTIME) $$pkg || rc=1; \
		done; \
	done; exit $$rc

lint:
	@rc=0; \
	echo "== gofmt -l"; \
	out=$$(find . -name '*.go' -not -path './.git/*' -not -path './.scratch/*' -not -path './bin/*' -not -path '*/testdata/*' -print0 | xargs -0 -r gofmt -l); \
	if [ -n "$$out" ]; then echo "not gofmt'ed (run gofmt -w):"; echo "$$out"; rc=1; fi; \
	echo "== go vet ./..."; $(GO) vet ./... || rc=1; \
	echo "== go mod tidy -diff"; $(GO) mod tidy -diff || { echo "go.mod/go.sum are not tidy: run go mod tidy"; rc=1; }; \
	echo "== staticcheck $(STATICCHECK_VERSION)"; $(MAKE) --no-print-directory staticcheck || rc=1; \
	if [ $$rc -ne 0 ]; then echo "== make lint: FAILED"; else echo "== make lint: ok"; fi; \
	exit $$rc

fmt:
	gofmt -w $$(find . -name '*.go' -not -path './.git/*' -not -path './.scratch/*' -not -path './bin/*')

vet:
	$(GO) vet ./...

staticcheck: $(STATICCHECK)
	$(STATICCHECK) ./...

# Built from the Go module proxy once per version into bin/tools/.
$(STATICCHECK):
	GOBIN=$(TOOLS) GOFLAGS= $(GO) install honnef.co/go/tools/cmd/staticcheck@$(STATICCHECK_VERSION)

services:
	@$(SERVICES) start

services-stop:
	@$(SERVICES) stop

services-status:
	@$(SERVICES) status

clean:
	rm -rf bin
