package authn

import (
	"crypto/tls"
	"crypto/x509"
	"net/http"
	"testing"
	"time"

	"github.com/kubeish/kubeish/pkg/pki"
)

// TestX509CacheEndsWithTheCertificate: a remembered verification never
// outlives the certificate it was made for.
func TestX509CacheEndsWithTheCertificate(t *testing.T) {
	ca, err := pki.NewCA("test")
	if err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	pair, err := ca.Issue(pki.Spec{CommonName: "alice", Organizations: []string{"dev"}, Usage: pki.Client, NotBefore: start.Add(-time.Minute), Validity: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	kp, err := pair.TLSCertificate()
	if err != nil {
		t.Fatal(err)
	}
	leaf, err := x509.ParseCertificate(kp.Certificate[0])
	if err != nil {
		t.Fatal(err)
	}
	roots := x509.NewCertPool()
	roots.AddCert(ca.Cert)
	now := start
	a := &X509{Roots: roots, Now: func() time.Time { return now }}
	req := &http.Request{TLS: &tls.ConnectionState{PeerCertificates: []*x509.Certificate{leaf}}}

	for _, at := range []time.Duration{0, time.Minute, 58 * time.Minute} { // verified, then remembered
		now = start.Add(at)
		u, ok, err := a.AuthenticateRequest(req)
		if err != nil || !ok || u.Name != "alice" || len(u.Groups) != 1 || u.Groups[0] != "dev" {
			t.Fatalf("at +%s: %v %v %v", at, u, ok, err)
		}
		u.Groups[0] = "mutated" // callers may not change what is remembered
	}
	now = leaf.NotAfter.Add(time.Second)
	if _, ok, err := a.AuthenticateRequest(req); ok || err == nil {
		t.Fatalf("after the certificate expired: ok=%v err=%v, want refused", ok, err)
	}
}
