// Package testenv starts a real apiserver over a real embedded etcd inside
// a test: free ports, a temporary data dir, and everything stopped when the
// test ends. It serves both listeners: the plain-HTTP development one on
// loopback, where every request is system:unsecured (URL, Config, Client:
// most tests), and the HTTPS one with authentication (SecureURL,
// ConfigFor: tests of who may do what). Node agents are reached over plain
// HTTP (--kubelet-insecure-http), as tests' fake kubelets are.
package testenv

import (
	"context"
	"path/filepath"
	"testing"

	"go.uber.org/zap"
	"go.uber.org/zap/zaptest"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"

	"github.com/kubeish/kubeish/apiserver/app"
	"github.com/kubeish/kubeish/pkg/pki"
)

// Env is a running apiserver.
type Env struct {
	*app.APIServer
	// Options it was started with; pass them to Restart-style tests.
	Options app.Options
	// URL is the plain-HTTP listener, where every request is
	// system:unsecured (system:masters); it shadows APIServer.URL.
	URL string
	// Config is a client-go config for URL (or, when the options turned
	// the insecure listener off, AdminConfig).
	Config *rest.Config
	// Client is a clientset for Config.
	Client kubernetes.Interface
	// SecureURL is the HTTPS listener, with authentication.
	SecureURL string
	// CA is the cluster CA in the apiserver's cert dir (nil when the
	// options gave every certificate); CAPEM is its certificate.
	CA    *pki.CA
	CAPEM []byte
}

// Option changes the apiserver's options before start.
type Option func(*app.Options)

// WithDataDir keeps etcd's data in dir (to restart over the same data).
func WithDataDir(dir string) Option { return func(o *app.Options) { o.DataDir = dir } }

// WithEtcd uses an existing etcd instead of an embedded one.
func WithEtcd(endpoints ...string) Option { return func(o *app.Options) { o.EtcdServers = endpoints } }

// Options returns the options a test apiserver starts with: loopback
// secure, insecure and etcd listeners on port 0, a temporary data dir
// (certificates in its pki/), node agents over plain HTTP.
func Options(t testing.TB) app.Options {
	o := *app.NewOptions()
	o.ListenAddress = "127.0.0.1:0"
	o.InsecureListenAddress = "127.0.0.1:0"
	o.Security.KubeletInsecureHTTP = true
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
	e := &Env{APIServer: a, Options: o, URL: a.InsecureURL, SecureURL: a.URL}
	t.Cleanup(func() { e.Stop() })
	if ca, err := pki.LoadCA(filepath.Join(a.CertDir, pki.CACertFile), filepath.Join(a.CertDir, pki.CAKeyFile)); err == nil {
		e.CA, e.CAPEM = ca, ca.CertPEM
	}
	switch {
	case e.URL != "":
		e.Config = &rest.Config{Host: e.URL, QPS: -1}
	case e.CA != nil: // no insecure listener: the admin over HTTPS
		e.Config = e.AdminConfig(t)
	}
	if e.Config != nil {
		e.Client = kubernetes.NewForConfigOrDie(e.Config)
	}
	return e
}

// ConfigFor issues a client certificate for userName in groups, signed by
// the cluster CA, and returns an HTTPS client-go config that presents it
// and trusts the CA.
func (e *Env) ConfigFor(t testing.TB, userName string, groups ...string) *rest.Config {
	t.Helper()
	if e.CA == nil {
		t.Fatal("testenv: the apiserver has no cluster CA in its cert dir")
	}
	pair, err := e.CA.Issue(pki.Spec{CommonName: userName, Organizations: groups, Usage: pki.Client})
	if err != nil {
		t.Fatalf("issuing a client certificate for %s: %v", userName, err)
	}
	return &rest.Config{
		Host: e.SecureURL, QPS: -1,
		TLSClientConfig: rest.TLSClientConfig{CAData: e.CAPEM, CertData: pair.CertPEM, KeyData: pair.KeyPEM},
	}
}

// AdminConfig is ConfigFor kubernetes-admin in system:masters.
func (e *Env) AdminConfig(t testing.TB) *rest.Config {
	t.Helper()
	return e.ConfigFor(t, app.AdminUser, pki.MastersGroup)
}

// Stop stops the apiserver (and its embedded etcd); it is safe to call twice.
func (e *Env) Stop() {
	if e.APIServer != nil {
		_ = e.APIServer.Close()
		e.APIServer = nil
	}
}
