// Package testenv starts a real apiserver over a real embedded etcd inside
// a test: free ports, a temporary data dir, and everything stopped when the
// test ends. Tests talk to it over HTTP like any client.
package testenv

import (
	"context"
	"testing"

	"go.uber.org/zap"
	"go.uber.org/zap/zaptest"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"

	"github.com/kubeish/kubeish/apiserver/app"
)

// Env is a running apiserver.
type Env struct {
	*app.APIServer
	// Options it was started with; pass them to Restart-style tests.
	Options app.Options
	// Config is a client-go config for the server.
	Config *rest.Config
	// Client is a clientset for the server.
	Client kubernetes.Interface
}

// Option changes the apiserver's options before start.
type Option func(*app.Options)

// WithDataDir keeps etcd's data in dir (to restart over the same data).
func WithDataDir(dir string) Option { return func(o *app.Options) { o.DataDir = dir } }

// WithEtcd uses an existing etcd instead of an embedded one.
func WithEtcd(endpoints ...string) Option { return func(o *app.Options) { o.EtcdServers = endpoints } }

// Options returns the options a test apiserver starts with: loopback
// listen and etcd URLs on port 0, a temporary data dir.
func Options(t testing.TB) app.Options {
	o := *app.NewOptions()
	o.ListenAddress = "127.0.0.1:0"
	o.EtcdClientURL = "http://127.0.0.1:0"
	o.EtcdPeerURL = "http://127.0.0.1:0"
	o.DataDir = t.TempDir()
	o.ShutdownTimeout = 0
	return o
}

// Start runs an apiserver for the test and stops it at the test's end.
func Start(t testing.TB, opts ...Option) *Env {
	t.Helper()
	o := Options(t)
	for _, opt := range opts {
		opt(&o)
	}
	return StartWith(t, o)
}

// StartWith runs an apiserver with exactly o.
func StartWith(t testing.TB, o app.Options) *Env {
	t.Helper()
	log := zaptest.NewLogger(t, zaptest.Level(zap.WarnLevel))
	a, err := app.Start(context.Background(), o, log, nil)
	if err != nil {
		t.Fatalf("starting apiserver: %v", err)
	}
	e := &Env{APIServer: a, Options: o}
	t.Cleanup(func() { e.Stop() })
	e.Config = &rest.Config{Host: a.URL, QPS: -1}
	e.Client = kubernetes.NewForConfigOrDie(e.Config)
	return e
}

// Stop stops the apiserver (and its embedded etcd); it is safe to call twice.
func (e *Env) Stop() {
	if e.APIServer != nil {
		_ = e.APIServer.Close()
		e.APIServer = nil
	}
}
