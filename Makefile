# kubeish: `make up` runs a cluster, `make test` runs the tests.

GO       ?= go
BIN      := bin
DATA_DIR ?= $(CURDIR)/.data
BINARIES := $(patsubst %/main.go,%,$(wildcard */main.go))
TEST_TIMEOUT ?= 20m
BENCH    ?= .
BENCH_COUNT ?= 5

.PHONY: all build up down shell test test-short test-kubectl test-load e2e test-e2e vet fmt bench bench-apiserver bench-controller bench-scheduler bench-scheduler-large bench-kubeletish bench-proxy bench-scale bench-scale-30k bench-smoke clean

all: build

build:
	@mkdir -p $(BIN)
	$(GO) build -o $(BIN)/ $(addprefix ./,$(BINARIES))

# up runs a local cluster in the foreground (hack/local-up.sh: the hosts of
# DESIGN.md's local topology as network namespaces, apiserver on
# 127.0.0.1:6443, a "kubeish" context in the kubeconfig); Ctrl-C stops it.
# Needs root. NODES=3 for three nodes.
NODES ?= 1
up:
	NODES=$(NODES) DATA_DIR=$(DATA_DIR) BIN=$(CURDIR)/$(BIN) hack/local-up.sh up

# down cleans up after a cluster that did not stop cleanly.
down:
	DATA_DIR=$(DATA_DIR) BIN=$(CURDIR)/$(BIN) hack/local-up.sh down

# shell opens a shell on a simulated host: make shell NODE=node-1 (or kubeish-cp).
NODE ?= node-1
shell:
	hack/local-up.sh shell $(NODE)

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
		KUBECTL=$(CURDIR)/$(BIN)/kubectl KUBEISH_APISERVER=$(CURDIR)/$(BIN)/apiserver KCTL=$(CURDIR)/$(BIN)/kctl \
		$(GO) test -count=1 -timeout 10m ./...

# test-load: 200 clients (each its own client certificate) for 60 s against
# bin/apiserver, with slow and idle watchers and a health probe every 50 ms:
# fails on any 5xx but 429, a probe unanswered or >1% over 100 ms, memory
# growing without bound, or an idle watch ended. KUBEISH_LOAD_DURATION
# changes the length.
KUBEISH_LOAD_DURATION ?= 60s
test-load: build
	KUBEISH_LOAD_DURATION=$(KUBEISH_LOAD_DURATION) KUBEISH_APISERVER=$(CURDIR)/$(BIN)/apiserver \
		$(GO) test ./hack/loadtest -run TestLoad -count=1 -v -timeout 10m

# e2e (alias test-e2e) runs the end-to-end suite as root: the real binaries
# as separate processes, three-node clusters of the local topology in network
# namespaces of the test's own (hack/e2e). E2E_ARTIFACTS=DIR keeps the logs
# of failed tests.
e2e:
	$(GO) test -tags e2e -count=1 -timeout 15m -v ./hack/e2e/

test-e2e: e2e

# bench: every figure of the issue in one run (under 15 minutes on 2
# cores): raw etcd and API at 1/16/64 clients, watch fan-out to 1,000
# watchers, the scheduler on 1,000 and 5,000 nodes, a Deployment of 3,000 on
# 1,000 hollow nodes, the steady state at 30,000 pods, real containerd pod
# startup (root only, else skipped with the reason). Prints one table and
# writes it as JSON to $(BENCH_JSON). The bench-* targets below run one part
# each with more repetitions.
BENCH_JSON ?= bench.json
bench:
	$(GO) run ./hack/bench --out $(BENCH_JSON)

bench-apiserver:
	$(GO) test ./hack/bench/api -run '^$$' -bench '$(BENCH)' -benchtime 2000x -count $(BENCH_COUNT)
	$(GO) test ./apiserver/server -run '^$$' -bench WatchCache -count $(BENCH_COUNT)

bench-controller:
	$(GO) test ./controller/app/ -run '^$$' -bench . -benchtime 1x -count $(BENCH_COUNT)
	$(GO) test ./controller/replicaset/ -run '^$$' -bench . -count $(BENCH_COUNT)

bench-scheduler:
	$(GO) test ./scheduler/bench -run '^$$' -bench . -benchtime 1x -count 3

# bench-scheduler-large: 1,000 and 5,000 nodes with 10,000 pods each.
bench-scheduler-large:
	SCHED_BENCH_LARGE=1 $(GO) test ./scheduler/bench -run '^$$' -bench . -benchtime 1x -count 3 -timeout 30m

# bench-kubeletish: pod startup (created → Running through a watch) for 30
# pods on one real node (containerd, runc, CNI), and the agent's CPU and
# RSS. Needs root.
bench-kubeletish:
	$(GO) test ./kubeletish/ -run '^$$' -bench BenchmarkPodStartup -benchtime 1x -count 3 -timeout 15m

# bench-proxy: rule render and iptables-restore sync for 1,000 Services ×
# 10 endpoints, and requests per second through a ClusterIP against the
# same pod's IP. Needs root.
bench-proxy:
	$(GO) test ./kubeletish/proxy/ -run '^$$' -bench . -benchtime 1x -count 3 -timeout 20m

# bench-scale: end to end on 1,000 hollow nodes (kubeletish hollow: the
# real node agent code over a runtime that runs nothing; no root): a
# Deployment of 3,000 replicas to Running/Ready, then CPU and RSS of every
# process over 30 s; prints a table, writes JSON to $(BENCH_OUT).
BENCH_OUT ?= bench-scale.json
bench-scale:
	$(GO) run ./hack/bench/scale --nodes 1000 --replicas 3000 --out $(BENCH_OUT)

# bench-scale-30k: the same, scaled to 30,000 pods before the window (~7 min).
bench-scale-30k:
	$(GO) run ./hack/bench/scale --nodes 1000 --replicas 3000 --steady-replicas 30000 --out $(BENCH_OUT)

# bench-smoke: the same driver at small sizes, under 2 minutes (CI runs it
# so that the benchmark never rots; its figures are printed, never asserted).
bench-smoke:
	$(GO) run ./hack/bench --smoke --out $(BENCH_JSON)

clean:
	rm -rf $(BIN)
