// Package bench measures the scheduler binary end to end: N Node objects
// and M pending pods through a real apiserver and etcd, then the scheduler
// started as its own process, timed until every pod is bound, with the
// process' CPU time and peak memory. It has only tests and benchmarks; see
// bench_test.go for how to run the large cases and take a profile.
package bench
