package server

import (
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"time"

	"go.uber.org/zap"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/kubeish/kubeish/pkg/pki"
)

// AuthConfig says who may call the agent's API (the kubelet's
// --client-ca-file authentication, with a fixed authorization in place of
// its webhook).
type AuthConfig struct {
	// NodeName is named in refusals.
	NodeName string
	// ClientCAs returns the CAs that sign callers' client certificates
	// (ClientCAFile reads them from a file, again whenever it changes).
	ClientCAs func() (*x509.CertPool, error)
	// AuthorizedUsers are the certificate common names allowed every
	// endpoint; so is any member of the system:masters group.
	AuthorizedUsers []string
	// MetricsAnonymous lets callers without a certificate read /metrics
	// and /metrics/cadvisor (a Prometheus without a client certificate).
	MetricsAnonymous bool
	// Log gets a debug line per refused request (nil: none).
	Log *zap.Logger
	// Now is the clock certificates are checked against (nil: time.Now).
	Now func() time.Time
}

// anonymousPaths are served to anyone: what a supervisor or a load
// balancer probes.
var anonymousPaths = map[string]bool{"/healthz": true, "/livez": true, "/readyz": true}

// metricsPaths are anonymous with MetricsAnonymous.
var metricsPaths = map[string]bool{"/metrics": true, "/metrics/cadvisor": true}

// WithAuth wraps the agent's handler so that, apart from the health
// checks (and the metrics with MetricsAnonymous), only an authorized
// caller reaches it: one whose client certificate chains to a client CA,
// is valid now, is meant for client authentication, and names an
// authorized user or a member of system:masters. Anyone else gets a
// Status: 401 Unauthorized without a good certificate, saying what is
// wrong with it; 403 Forbidden with one, naming the user. Everything not
// known to be anonymous needs a caller, so a path added later is
// protected by default.
//
// The TLS listener must request client certificates without verifying
// them (TLSConfig does): verification is here, so a bad certificate gets
// an answer rather than a failed handshake.
func WithAuth(next http.Handler, cfg AuthConfig) http.Handler {
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.Log == nil {
		cfg.Log = zap.NewNop()
	}
	return &authHandler{next: next, cfg: cfg}
}

type authHandler struct {
	next http.Handler
	cfg  AuthConfig
}

func (a *authHandler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if anonymousPaths[r.URL.Path] || (a.cfg.MetricsAnonymous && metricsPaths[r.URL.Path]) {
		a.next.ServeHTTP(w, r)
		return
	}
	name, groups, err := a.authenticate(r)
	if err != nil {
		a.cfg.Log.Debug("refused: unauthenticated", zap.String("path", r.URL.Path), zap.String("remote", r.RemoteAddr), zap.Error(err))
		writeStatus(w, metav1.Status{Status: metav1.StatusFailure, Code: http.StatusUnauthorized,
			Reason: metav1.StatusReasonUnauthorized, Message: "Unauthorized: " + err.Error()})
		return
	}
	if !slices.Contains(a.cfg.AuthorizedUsers, name) && !slices.Contains(groups, pki.MastersGroup) {
		verb, sub := attributes(r)
		a.cfg.Log.Debug("refused: forbidden", zap.String("path", r.URL.Path), zap.String("user", name), zap.Strings("groups", groups))
		writeStatus(w, metav1.Status{Status: metav1.StatusFailure, Code: http.StatusForbidden, Reason: metav1.StatusReasonForbidden,
			Details: &metav1.StatusDetails{Name: a.cfg.NodeName, Kind: "nodes"},
			Message: fmt.Sprintf("nodes %q is forbidden: user %q (groups %q) cannot %s nodes/%s: the node agent's API is for %s and the %s group",
				a.cfg.NodeName, name, groups, verb, sub, strings.Join(a.cfg.AuthorizedUsers, ", "), pki.MastersGroup)})
		return
	}
	a.next.ServeHTTP(w, r)
}

// authenticate returns the user and groups of the request's verified
// client certificate.
func (a *authHandler) authenticate(r *http.Request) (string, []string, error) {
	if r.TLS == nil || len(r.TLS.PeerCertificates) == 0 {
		return "", nil, errors.New("no client certificate")
	}
	roots, err := a.cfg.ClientCAs()
	if err != nil {
		return "", nil, fmt.Errorf("client CAs unavailable: %w", err)
	}
	certs := r.TLS.PeerCertificates
	inter := x509.NewCertPool()
	for _, c := range certs[1:] {
		inter.AddCert(c)
	}
	if _, err := certs[0].Verify(x509.VerifyOptions{Roots: roots, Intermediates: inter, CurrentTime: a.cfg.Now(),
		KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}}); err != nil {
		return "", nil, fmt.Errorf("client certificate %q: %w", certs[0].Subject.CommonName, err)
	}
	name, groups := pki.Identity(certs[0])
	if name == "" {
		return "", nil, errors.New("client certificate has no common name (the user name)")
	}
	return name, groups, nil
}

// attributes are the verb and the nodes subresource a request is, as the
// kubelet names them for its authorization.
func attributes(r *http.Request) (verb, subresource string) {
	switch r.Method {
	case http.MethodGet, http.MethodHead:
		verb = "get"
	case http.MethodPost:
		verb = "create"
	case http.MethodPut:
		verb = "update"
	case http.MethodPatch:
		verb = "patch"
	case http.MethodDelete:
		verb = "delete"
	default:
		verb = strings.ToLower(r.Method)
	}
	switch p := r.URL.Path; {
	case p == "/stats" || strings.HasPrefix(p, "/stats/"):
		subresource = "stats"
	case p == "/metrics" || strings.HasPrefix(p, "/metrics/"):
		subresource = "metrics"
	case p == "/logs" || strings.HasPrefix(p, "/logs/"):
		subresource = "log"
	default: // /containerLogs, /debug/pprof, …
		subresource = "proxy"
	}
	return verb, subresource
}

func writeStatus(w http.ResponseWriter, s metav1.Status) {
	s.TypeMeta = metav1.TypeMeta{Kind: "Status", APIVersion: "v1"}
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(int(s.Code))
	_ = json.NewEncoder(w).Encode(s)
}
