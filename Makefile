# kubeish: `make up` runs a cluster, `make test` runs the tests.

GO       ?= go
BIN      := bin
DATA_DIR ?= $(CURDIR)/.data
BINARIES := $(patsubst %/main.go,%,$(wildcard */main.go))
TEST_TIMEOUT ?= 20m
BENCH    ?= .
BENCH_COUNT ?= 5

.PHONY: all build up test test-short test-kubectl vet fmt bench clean

all: build

build:
	@mkdir -p $(BIN)
	$(GO) build -o $(BIN)/ $(addprefix ./,$(BINARIES))

# up runs the control plane in the foreground on 127.0.0.1:6443 with its
# data in $(DATA_DIR); Ctrl-C stops it, the data stays for the next run.
up: build
	$(BIN)/apiserver --data-dir $(DATA_DIR)/apiserver \
		--etcd-listen-client-url http://127.0.0.1:0 --etcd-listen-peer-url http://127.0.0.1:0

vet:
	$(GO) vet ./...

fmt:
	@out=$$(gofmt -l $$(git ls-files '*.go')); if [ -n "$$out" ]; then echo "gofmt needed:"; echo "$$out"; exit 1; fi

test: fmt vet
	$(GO) test -race -timeout $(TEST_TIMEOUT) ./...

# test-short skips -race, for a quick loop while editing.
test-short:
	$(GO) test -timeout $(TEST_TIMEOUT) ./...

# The real kubectl, built from k8s.io/kubectl at the release pinned in
# hack/kubectl-compat/go.mod (its own module, so the main module does not
# depend on it). The go build cache makes rebuilds take seconds; the first
# build fetches the modules through the Go module proxy.
KUBECTL_VERSION ?= v1.37.2
KUBECTL_LDFLAGS := $(foreach p,k8s.io/component-base/version k8s.io/client-go/pkg/version,\
	-X $(p).gitVersion=$(KUBECTL_VERSION) -X $(p).gitMajor=1 -X $(p).gitMinor=37)

$(BIN)/kubectl: hack/kubectl-compat/go.mod hack/kubectl-compat/go.sum hack/kubectl-compat/cmd/kubectl/main.go
	@mkdir -p $(BIN)
	cd hack/kubectl-compat && $(GO) build -ldflags '$(KUBECTL_LDFLAGS)' -o $(CURDIR)/$(BIN)/kubectl ./cmd/kubectl

# test-kubectl runs the kubectl compatibility suite: the real kubectl
# against bin/apiserver on a free loopback port.
test-kubectl: build $(BIN)/kubectl
	cd hack/kubectl-compat && $(GO) vet ./... && \
		KUBECTL=$(CURDIR)/$(BIN)/kubectl KUBEISH_APISERVER=$(CURDIR)/$(BIN)/apiserver \
		$(GO) test -count=1 -timeout 10m ./...

# bench runs the Go benchmarks $(BENCH_COUNT) times; compare runs with benchstat.
bench:
	$(GO) test ./apiserver/server -run '^$$' -bench '$(BENCH)' -benchtime 2000x -count $(BENCH_COUNT)

clean:
	rm -rf $(BIN)
