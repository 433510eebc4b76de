# oms: the two commands a new user needs are `make run` and `make test`.
GO      ?= go
BIN     ?= bin/oms
DATA    ?= ./data
VERSION ?= $(shell git describe --always --dirty 2>/dev/null || echo dev)

.PHONY: run build test bench fuzz chaos vet fmt clean

build:
	$(GO) build -ldflags "-X main.version=$(VERSION)" -o $(BIN) ./cmd/oms

## run: single node, embedded NATS on 127.0.0.1:4222, HTTP on 127.0.0.1:8080 (internal 8081), data under
## ./data, simulators on and reporting through signed webhooks. Every setting also comes from its OMS_*
## variable (OMS_NATS_LISTEN, OMS_DATA_DIR, ...): nothing here overrides them.
run: build
	OMS_SIM_WEBHOOKS=$${OMS_SIM_WEBHOOKS:-true} $(BIN) serve

## test: the whole suite, race detector on; then the PostgreSQL yardstick's own module (examples/pgbaseline),
## against a throw-away PostgreSQL server
test:
	$(GO) vet ./...
	$(GO) test -race -count=1 -timeout 20m ./...
	cd examples/pgbaseline && $(GO) vet ./... && $(GO) test -race -count=1 -timeout 5m ./...

## fuzz: every fuzz target (go test -list '^Fuzz'), each for FUZZTIME; make test runs their seed
## corpora (testdata/fuzz) only. What a fuzzer finds is written to its package's testdata/fuzz.
FUZZTIME ?= 20s
fuzz:
	@for pkg in $$($(GO) list ./...); do \
		for t in $$($(GO) test -list '^Fuzz' $$pkg | grep '^Fuzz'); do \
			echo "== $$pkg $$t ($(FUZZTIME))"; \
			$(GO) test -run '^$$' -fuzz "^$$t$$" -fuzztime $(FUZZTIME) $$pkg || exit 1; \
		done; \
	done

## chaos: fault rounds under load against oms serve processes on 127.0.0.1 (about 6 minutes): kill -9 of one
## node, then on three nodes kill -9 of a random node and of the order stream's leader, SIGSTOP past the member
## timeout, a lost data dir; after each, the invariants checked from the streams. make test runs a short round.
chaos: build
	$(BIN) chaos

bench:
	$(GO) test -run '^$$' -bench . -benchmem ./...

fmt:
	gofmt -w .

clean:
	rm -rf bin $(DATA)
