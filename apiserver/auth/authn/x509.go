package authn

import (
	"crypto/x509"
	"errors"
	"fmt"
	"net/http"
	"strings"
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
type X509 struct {
	// Roots are the client CAs.
	Roots *x509.CertPool
	// Now is the verification time; nil means time.Now.
	Now func() time.Time
}

// NewX509 returns an authenticator of certificates signed by roots.
func NewX509(roots *x509.CertPool) *X509 { return &X509{Roots: roots} }

// AuthenticateRequest implements Authenticator.
func (a *X509) AuthenticateRequest(r *http.Request) (*user.Info, bool, error) {
	if a == nil || a.Roots == nil || r.TLS == nil || len(r.TLS.PeerCertificates) == 0 {
		return nil, false, nil
	}
	certs := r.TLS.PeerCertificates
	opts := x509.VerifyOptions{
		Roots:     a.Roots,
		KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth},
	}
	if a.Now != nil {
		opts.CurrentTime = a.Now()
	}
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
	return &user.Info{Name: name, Groups: groups}, true, nil
}
