// Package api holds the API part of `make bench` as Go benchmarks: raw
// etcd puts, create/get/list/update of pods at 1, 16 and 64 clients, and
// the fan-out of one write to 1,000 pod watchers, all against the real
// apiserver and its embedded etcd started in-process by pkg/testenv and
// reached over plain HTTP on loopback. hack/bench runs it and reads the
// figures from the benchmark output:
//
//	go test ./hack/bench/api -run '^$' -bench . -benchtime 2000x -count 1
//
// BENCH_API_WATCHERS and BENCH_API_WATCH_WRITES size the fan-out (default
// 1,000 watchers, 30 writes).
package api
