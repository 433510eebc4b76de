# oms: the two commands a new user needs are `make run` and `make test`.
GO      ?= go
BIN     ?= bin/oms
DATA    ?= ./data
VERSION ?= $(shell git describe --always --dirty 2>/dev/null || echo dev)

.PHONY: run build test bench vet fmt clean

build:
	$(GO) build -ldflags "-X main.version=$(VERSION)" -o $(BIN) ./cmd/oms

## run: single node, embedded NATS on 127.0.0.1:4222, HTTP on 127.0.0.1:8080 (internal 8081), data under
## ./data, simulators on and reporting through signed webhooks. Every setting also comes from its OMS_*
## variable (OMS_NATS_LISTEN, OMS_DATA_DIR, ...): nothing here overrides them.
run: build
	OMS_SIM_WEBHOOKS=$${OMS_SIM_WEBHOOKS:-true} $(BIN) serve

## test: the whole suite, race detector on
test:
	$(GO) vet ./...
	$(GO) test -race -count=1 -timeout 20m ./...

bench:
	$(GO) test -run '^$$' -bench . -benchmem ./...

fmt:
	gofmt -w .

clean:
	rm -rf bin $(DATA)
