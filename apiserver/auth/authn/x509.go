package authn

import (
	"crypto/sha256"
	"crypto/x509"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/kubeish/kubeish/apiserver/auth/user"
	"github.com/kubeish/kubeish/pkg/pki"
)

// X509 authenticates requests by their TLS client certificate.
//
// The server asks for a certificate without verifying it in the handshake
// (tls.RequestClientCert), so that a refused certificate is answered with a
// 401 Status that says why rather than a handshake failure the client
// cannot explain. X509 verifies the chain here against the client CA, for
// client authentication.
//
// A verified chain is remembered (by its hash, until the leaf expires or
// for verifiedTTL, whichever is sooner), because verifying an ECDSA chain
// on every request of a busy client cost about a tenth of the apiserver's
// CPU under load; Kubernetes' x509 authenticator caches the same way.
type X509 struct {
	// Roots are the client CAs.
	Roots *x509.CertPool
	// Now is the verification time; nil means time.Now.
	Now func() time.Time

	mu       sync.Mutex
	verified map[[sha256.Size]byte]verifiedChain
}

type verifiedChain struct {
	user    *user.Info
	expires time.Time
}

const (
	verifiedTTL     = 5 * time.Minute
	verifiedEntries = 4096
)

// NewX509 returns an authenticator of certificates signed by roots.
func NewX509(roots *x509.CertPool) *X509 { return &X509{Roots: roots} }

// AuthenticateRequest implements Authenticator.
func (a *X509) AuthenticateRequest(r *http.Request) (*user.Info, bool, error) {
	if a == nil || a.Roots == nil || r.TLS == nil || len(r.TLS.PeerCertificates) == 0 {
		return nil, false, nil
	}
	certs := r.TLS.PeerCertificates
	now := time.Now()
	if a.Now != nil {
		now = a.Now()
	}
	h := sha256.New()
	for _, c := range certs {
		h.Write(c.Raw)
	}
	var key [sha256.Size]byte
	h.Sum(key[:0])
	a.mu.Lock()
	v, ok := a.verified[key]
	a.mu.Unlock()
	if ok && now.Before(v.expires) {
		u := *v.user
		u.Groups = append([]string(nil), v.user.Groups...)
		return &u, true, nil
	}
	opts := x509.VerifyOptions{
		Roots:     a.Roots,
		KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth},
	}
	opts.CurrentTime = now
	if len(certs) > 1 {
		opts.Intermediates = x509.NewCertPool()
		for _, c := range certs[1:] {
			opts.Intermediates.AddCert(c)
		}
	}
	leaf := certs[0]
	if _, err := leaf.Verify(opts); err != nil {
		return nil, false, fmt.Errorf("client certificate %q (serial %s): %w", leaf.Subject.CommonName, leaf.SerialNumber.Text(16), err)
	}
	name, groups := pki.Identity(leaf)
	if strings.TrimSpace(name) == "" {
		return nil, false, errors.New("client certificate has no common name (the user name)")
	}
	u := &user.Info{Name: name, Groups: groups}
	expires := now.Add(verifiedTTL)
	for _, c := range certs {
		if c.NotAfter.Before(expires) {
			expires = c.NotAfter
		}
	}
	a.mu.Lock()
	if a.verified == nil || len(a.verified) >= verifiedEntries {
		a.verified = make(map[[sha256.Size]byte]verifiedChain)
	}
	a.verified[key] = verifiedChain{user: &user.Info{Name: name, Groups: append([]string(nil), groups...)}, expires: expires}
	a.mu.Unlock()
	return u, true, nil
}
