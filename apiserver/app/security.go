package app

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/spf13/pflag"
	"go.uber.org/zap"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/client-go/tools/clientcmd"

	"github.com/kubeish/kubeish/apiserver/auth/authn"
	"github.com/kubeish/kubeish/apiserver/auth/user"
	"github.com/kubeish/kubeish/pkg/pki"
)

// Files the apiserver generates in --cert-dir when no certificate of the
// kind is given.
const (
	// CAName is the CommonName of a generated cluster CA.
	CAName = "kubeish-ca"
	// ServingCertFile and ServingKeyFile are the generated serving pair.
	ServingCertFile = "apiserver.crt"
	ServingKeyFile  = "apiserver.key"
	// KubeletClientCertFile and KubeletClientKeyFile are the generated
	// client pair the apiserver presents to node agents.
	KubeletClientCertFile = "apiserver-kubelet-client.crt"
	KubeletClientKeyFile  = "apiserver-kubelet-client.key"
	// AdminKubeconfigFile is a kubeconfig of user kubernetes-admin (group
	// system:masters) with an embedded client certificate.
	AdminKubeconfigFile = "admin.kubeconfig"
	// AdminUser is the user of AdminKubeconfigFile.
	AdminUser = "kubernetes-admin"
)

// SecurityOptions are the TLS, authentication and node-client flags.
type SecurityOptions struct {
	// TLSCertFile and TLSPrivateKeyFile are the serving pair; when empty a
	// pair signed by the cluster CA is generated in CertDir.
	TLSCertFile       string
	TLSPrivateKeyFile string
	// ClientCAFile verifies client certificates; empty means CertDir's
	// ca.crt when the cluster CA lives there.
	ClientCAFile string
	// CertDir holds the generated CA, certificates and admin kubeconfig;
	// empty means <data-dir>/pki.
	CertDir string
	// TLSSANs are extra names and IPs of the generated serving certificate.
	TLSSANs []string
	// TokenAuthFile is a static token CSV (token,user,uid,"g1,g2").
	TokenAuthFile string
	// MetricsAnonymous lets requests without credentials reach /metrics.
	MetricsAnonymous bool

	// KubeletClientCertificate and KubeletClientKey are the client pair
	// presented to node agents; empty means the generated
	// apiserver-kubelet-client pair.
	KubeletClientCertificate string
	KubeletClientKey         string
	// KubeletCertificateAuthority verifies node agents' serving
	// certificates; empty means the cluster CA (or the system roots when
	// there is none).
	KubeletCertificateAuthority string
	// KubeletInsecureHTTP talks plain HTTP to node agents (development and
	// tests only).
	KubeletInsecureHTTP bool
}

// AddFlags registers the security flags.
func (o *SecurityOptions) AddFlags(fs *pflag.FlagSet) {
	fs.StringVar(&o.TLSCertFile, "tls-cert-file", o.TLSCertFile, "PEM serving certificate of --listen-address; when empty one signed by the cluster CA is generated in --cert-dir (apiserver.crt)")
	fs.StringVar(&o.TLSPrivateKeyFile, "tls-private-key-file", o.TLSPrivateKeyFile, "PEM private key of --tls-cert-file")
	fs.StringVar(&o.ClientCAFile, "client-ca-file", o.ClientCAFile, "PEM CA bundle that signs client certificates (CN = user, O = groups); default --cert-dir's ca.crt when the cluster CA is there")
	fs.StringVar(&o.CertDir, "cert-dir", o.CertDir, "directory of the cluster CA and the certificates and admin.kubeconfig generated on first start (default <data-dir>/pki)")
	fs.StringSliceVar(&o.TLSSANs, "tls-san", o.TLSSANs, "extra DNS name or IP of the generated serving certificate (repeatable); the advertise address, 127.0.0.1, localhost, kubernetes.default.svc… and the Service kubernetes' ClusterIP are always in it")
	fs.StringVar(&o.TokenAuthFile, "token-auth-file", o.TokenAuthFile, "static bearer tokens, CSV lines token,user,uid,\"group1,group2\" (# comments); a malformed file fails startup")
	fs.BoolVar(&o.MetricsAnonymous, "metrics-anonymous", o.MetricsAnonymous, "let requests without credentials read /metrics (/healthz, /livez, /readyz and /version always may)")
	fs.StringVar(&o.KubeletClientCertificate, "kubelet-client-certificate", o.KubeletClientCertificate, "PEM client certificate presented to node agents (pods/log, /stats/summary); default the generated --cert-dir/apiserver-kubelet-client.crt")
	fs.StringVar(&o.KubeletClientKey, "kubelet-client-key", o.KubeletClientKey, "PEM private key of --kubelet-client-certificate")
	fs.StringVar(&o.KubeletCertificateAuthority, "kubelet-certificate-authority", o.KubeletCertificateAuthority, "PEM CA bundle that verifies node agents' serving certificates; default the cluster CA (--cert-dir's ca.crt)")
	fs.BoolVar(&o.KubeletInsecureHTTP, "kubelet-insecure-http", o.KubeletInsecureHTTP, "talk plain HTTP, without a client certificate, to node agents (development and tests only)")
}

// Validate checks the security flags that need no I/O.
func (o *SecurityOptions) Validate() error {
	if (o.TLSCertFile == "") != (o.TLSPrivateKeyFile == "") {
		return errors.New("--tls-cert-file and --tls-private-key-file go together")
	}
	if (o.KubeletClientCertificate == "") != (o.KubeletClientKey == "") {
		return errors.New("--kubelet-client-certificate and --kubelet-client-key go together")
	}
	for _, san := range o.TLSSANs {
		if san == "" || strings.ContainsAny(san, " \t/:") && net.ParseIP(san) == nil {
			return fmt.Errorf("--tls-san %q is neither an IP nor a DNS name", san)
		}
	}
	return nil
}

// certDir is where generated certificates go.
func (o *Options) certDir() string {
	if o.Security.CertDir != "" {
		return o.Security.CertDir
	}
	return filepath.Join(o.DataDir, "pki")
}

// security is what the security options amount to once files are read.
type security struct {
	opts SecurityOptions
	dir  string
	// ca is the cluster CA in dir, nil when every certificate was given.
	ca *pki.CA
	// clientCAs verify client certificates; nil accepts none.
	clientCAs *x509.CertPool
	authn     authn.Authenticator
	// kubeletTLS is the node client's TLS; nil with --kubelet-insecure-http.
	kubeletTLS *tls.Config
}

// loadSecurity reads (or generates) everything that does not depend on the
// listener: the cluster CA, the token file, the client CA, the node
// client's certificate. It runs before etcd starts, so a bad file fails
// startup at once.
func loadSecurity(o Options, log *zap.Logger) (*security, error) {
	so := o.Security
	s := &security{opts: so, dir: o.certDir()}
	needKubeletClient := !so.KubeletInsecureHTTP && so.KubeletClientCertificate == ""
	if so.TLSCertFile == "" || needKubeletClient {
		ca, created, err := pki.LoadOrCreateCA(s.dir, CAName)
		if err != nil {
			return nil, fmt.Errorf("cluster CA in %s: %w", s.dir, err)
		}
		if created {
			log.Info("generated the cluster CA", zap.String("cert", filepath.Join(s.dir, pki.CACertFile)),
				zap.String("key", filepath.Join(s.dir, pki.CAKeyFile)))
		}
		s.ca = ca
	}

	switch {
	case so.ClientCAFile != "":
		pool, err := pki.CertPool(so.ClientCAFile)
		if err != nil {
			return nil, fmt.Errorf("--client-ca-file: %w", err)
		}
		s.clientCAs = pool
	case s.ca != nil:
		s.clientCAs = x509.NewCertPool()
		s.clientCAs.AddCert(s.ca.Cert)
	default:
		log.Warn("no --client-ca-file: client certificates are not accepted")
	}
	var tokens *authn.TokenFile
	if so.TokenAuthFile != "" {
		var err error
		if tokens, err = authn.LoadTokenFile(so.TokenAuthFile); err != nil {
			return nil, fmt.Errorf("--token-auth-file: %w", err)
		}
		log.Info("bearer tokens loaded", zap.String("file", so.TokenAuthFile), zap.Int("tokens", tokens.Len()))
	}
	var auths []authn.Authenticator
	if s.clientCAs != nil {
		auths = append(auths, authn.NewX509(s.clientCAs))
	}
	if tokens != nil {
		auths = append(auths, tokens)
	}
	s.authn = authn.Union(auths...)

	if !so.KubeletInsecureHTTP {
		tc, err := s.kubeletClientTLS(log)
		if err != nil {
			return nil, err
		}
		s.kubeletTLS = tc
	}
	return s, nil
}

// kubeletClientTLS is the TLS of requests to node agents: the apiserver's
// client certificate, node serving certificates verified by the kubelet CA.
func (s *security) kubeletClientTLS(log *zap.Logger) (*tls.Config, error) {
	so := s.opts
	certFile, keyFile := so.KubeletClientCertificate, so.KubeletClientKey
	if certFile == "" {
		certFile, keyFile = filepath.Join(s.dir, KubeletClientCertFile), filepath.Join(s.dir, KubeletClientKeyFile)
		// Not in system:masters: node agents accept it by its name, and a
		// credential the apiserver sends to addresses nodes publish must
		// not be worth more than that.
		spec := pki.Spec{CommonName: pki.APIServerKubeletClientUser, Usage: pki.Client}
		if err := s.ensureLeaf("kubelet client certificate", certFile, keyFile, spec, log); err != nil {
			return nil, err
		}
	}
	cert, err := tls.LoadX509KeyPair(certFile, keyFile)
	if err != nil {
		return nil, fmt.Errorf("kubelet client certificate %s: %w", certFile, err)
	}
	tc := &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12}
	switch {
	case so.KubeletCertificateAuthority != "":
		if tc.RootCAs, err = pki.CertPool(so.KubeletCertificateAuthority); err != nil {
			return nil, fmt.Errorf("--kubelet-certificate-authority: %w", err)
		}
	case s.ca != nil:
		tc.RootCAs = x509.NewCertPool()
		tc.RootCAs.AddCert(s.ca.Cert)
	}
	return tc, nil
}

// nodeScheme is how node agents are reached.
func (s *security) nodeScheme() string {
	if s.kubeletTLS == nil {
		return "http"
	}
	return "https"
}

// nodeTransport is an HTTP transport to node agents.
func (s *security) nodeTransport() *http.Transport {
	t := &http.Transport{
		Proxy:               nil,
		DialContext:         (&net.Dialer{Timeout: 10 * time.Second, KeepAlive: 30 * time.Second}).DialContext,
		TLSHandshakeTimeout: 10 * time.Second,
	}
	if s.kubeletTLS != nil {
		t.TLSClientConfig = s.kubeletTLS.Clone()
	}
	return t
}

// servingTLS loads or generates the serving certificate for the secure
// listener and, with a cluster CA, writes the admin kubeconfig when it is
// missing. advertise is the address published for the Service kubernetes,
// listenIP the secure listener's IP, port its port.
func (s *security) servingTLS(o Options, advertise, listenIP net.IP, port int, firstServiceIP string, log *zap.Logger) (*tls.Config, error) {
	certFile, keyFile := s.opts.TLSCertFile, s.opts.TLSPrivateKeyFile
	if certFile == "" {
		certFile, keyFile = filepath.Join(s.dir, ServingCertFile), filepath.Join(s.dir, ServingKeyFile)
		spec := servingSpec(s.opts.TLSSANs, advertise, listenIP, firstServiceIP)
		if err := s.ensureLeaf("serving certificate", certFile, keyFile, spec, log); err != nil {
			return nil, err
		}
	}
	cert, err := tls.LoadX509KeyPair(certFile, keyFile)
	if err != nil {
		return nil, fmt.Errorf("serving certificate %s: %w", certFile, err)
	}
	if s.ca != nil {
		host := "127.0.0.1"
		if o.AdvertiseAddress != "" {
			host = advertise.String()
		}
		server := "https://" + net.JoinHostPort(host, fmt.Sprint(port))
		if err := s.ensureAdminKubeconfig(server, log); err != nil {
			return nil, err
		}
	}
	return &tls.Config{
		Certificates: []tls.Certificate{cert},
		// Ask for a client certificate but verify it in the authentication
		// filter, so a refused one gets a 401 that says why.
		// No ClientCAs hint either: Go's client (and others) would then
		// withhold a certificate of another CA, and the 401 could not say
		// that the CA was the problem.
		ClientAuth: tls.RequestClientCert,
		MinVersion: tls.VersionTLS12,
	}, nil
}

// servingSpec is the generated serving certificate: the extra SANs, the
// advertise and listen addresses, loopback, the in-cluster names of the
// Service kubernetes and its ClusterIP.
func servingSpec(extra []string, advertise, listenIP net.IP, firstServiceIP string) pki.Spec {
	spec := pki.Spec{CommonName: "kube-apiserver", Usage: pki.Server}
	addIP := func(ip net.IP) {
		if ip == nil || ip.IsUnspecified() || slices.ContainsFunc(spec.IPs, ip.Equal) {
			return
		}
		spec.IPs = append(spec.IPs, ip)
	}
	addDNS := func(n string) {
		if !slices.Contains(spec.DNSNames, n) {
			spec.DNSNames = append(spec.DNSNames, n)
		}
	}
	for _, san := range extra {
		if ip := net.ParseIP(san); ip != nil {
			addIP(ip)
		} else {
			addDNS(san)
		}
	}
	addIP(advertise)
	addIP(listenIP)
	addIP(net.IPv4(127, 0, 0, 1))
	addIP(net.ParseIP(firstServiceIP))
	for _, n := range []string{"localhost", "kubernetes", "kubernetes.default", "kubernetes.default.svc", "kubernetes.default.svc.cluster.local"} {
		addDNS(n)
	}
	return spec
}

// ensureLeaf keeps a certificate the apiserver generated in its cert dir
// while it is valid for a day more, signed by the cluster CA and names
// every SAN of spec; otherwise it issues spec anew. So a new --tls-san, a
// deleted leaf or a new CA take effect on restart. (A user's own
// certificates are given by flags and never touched.)
func (s *security) ensureLeaf(what, certFile, keyFile string, spec pki.Spec, log *zap.Logger) error {
	if cert, err := pki.ReadCertificate(certFile); err == nil {
		_, keyErr := os.Stat(keyFile)
		if keyErr == nil && time.Until(cert.NotAfter) > 24*time.Hour && cert.CheckSignatureFrom(s.ca.Cert) == nil && coversSANs(cert, spec) &&
			cert.Subject.CommonName == spec.CommonName && slices.Equal(cert.Subject.Organization, spec.Organizations) {
			return nil
		}
	}
	pair, err := s.ca.Issue(spec)
	if err != nil {
		return fmt.Errorf("%s: %w", what, err)
	}
	if err := pair.Write(certFile, keyFile); err != nil {
		return fmt.Errorf("%s: %w", what, err)
	}
	log.Info("generated the "+what, zap.String("cert", certFile), zap.String("key", keyFile),
		zap.Strings("dnsNames", spec.DNSNames), zap.Any("ips", spec.IPs))
	return nil
}

func coversSANs(cert *x509.Certificate, spec pki.Spec) bool {
	for _, n := range spec.DNSNames {
		if !slices.Contains(cert.DNSNames, n) {
			return false
		}
	}
	for _, ip := range spec.IPs {
		if !slices.ContainsFunc(cert.IPAddresses, ip.Equal) {
			return false
		}
	}
	return true
}

// ensureAdminKubeconfig writes admin.kubeconfig (kubernetes-admin in
// system:masters) unless it exists and trusts the cluster CA.
func (s *security) ensureAdminKubeconfig(server string, log *zap.Logger) error {
	file := filepath.Join(s.dir, AdminKubeconfigFile)
	if kc, err := clientcmd.LoadFromFile(file); err == nil {
		for _, c := range kc.Clusters {
			if bytes.Equal(c.CertificateAuthorityData, s.ca.CertPEM) {
				log.Info("admin kubeconfig", zap.String("file", file))
				return nil
			}
		}
	}
	pair, err := s.ca.Issue(pki.Spec{CommonName: AdminUser, Organizations: []string{pki.MastersGroup}, Usage: pki.Client})
	if err != nil {
		return fmt.Errorf("admin kubeconfig: %w", err)
	}
	data, err := pki.Kubeconfig("kubeish", server, s.ca.CertPEM, pki.Credentials{Pair: pair})
	if err != nil {
		return fmt.Errorf("admin kubeconfig: %w", err)
	}
	if err := os.WriteFile(file, data, 0o600); err != nil {
		return fmt.Errorf("admin kubeconfig: %w", err)
	}
	log.Info("generated the admin kubeconfig", zap.String("file", file), zap.String("server", server))
	return nil
}

// insecureListenerKey marks the context of connections accepted on the
// plain-HTTP --insecure-listen-address.
type insecureListenerKey struct{}

func withInsecureListener(ctx context.Context) context.Context {
	return context.WithValue(ctx, insecureListenerKey{}, true)
}

func fromInsecureListener(ctx context.Context) bool {
	v, _ := ctx.Value(insecureListenerKey{}).(bool)
	return v
}

// unsecuredUser is every request on the insecure listener, as on
// Kubernetes' old insecure port.
func unsecuredUser() *user.Info {
	return &user.Info{Name: user.Unsecured, Groups: []string{user.MastersGroup, user.AllAuthenticated}}
}

// withAuthentication puts the request's user in its context, or answers
// 401: on the insecure listener every request is system:unsecured; on the
// secure one a valid client certificate or bearer token names the user,
// invalid credentials are refused saying why, and a request without any
// is anonymous (system:anonymous, group system:unauthenticated) on the
// public paths only.
func (a *APIServer) withAuthentication(h http.Handler) http.Handler {
	log := a.log.Named("authn")
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.TLS == nil && fromInsecureListener(r.Context()) {
			h.ServeHTTP(w, r.WithContext(user.With(r.Context(), unsecuredUser())))
			return
		}
		if r.TLS == nil || a.sec == nil {
			// Only the insecure listener serves plain HTTP; anything else
			// reaching here is a wiring mistake, refused rather than trusted.
			writeUnauthorized(w, "Unauthorized")
			return
		}
		u, ok, err := a.sec.authn.AuthenticateRequest(r)
		switch {
		case ok:
		case err != nil:
			reason := strings.ReplaceAll(err.Error(), "\n", "; ")
			log.Debug("authentication failed", zap.String("path", r.URL.Path), zap.String("remote", r.RemoteAddr), zap.String("reason", reason))
			writeUnauthorized(w, "Unauthorized: "+reason)
			return
		case anonymousAllowed(r.URL.Path, a.sec.opts.MetricsAnonymous):
			u = authn.Anonymous()
		default:
			writeUnauthorized(w, "Unauthorized")
			return
		}
		h.ServeHTTP(w, r.WithContext(user.With(r.Context(), u)))
	})
}

// anonymousAllowed reports whether a request without credentials may reach
// path: the health checks and their subpaths, /version, and /metrics when
// allowed.
func anonymousAllowed(path string, metrics bool) bool {
	for _, p := range []string{"/healthz", "/livez", "/readyz"} {
		if path == p || strings.HasPrefix(path, p+"/") {
			return true
		}
	}
	return path == "/version" || path == "/version/" || metrics && path == "/metrics"
}

// writeUnauthorized answers a 401 Status.
func writeUnauthorized(w http.ResponseWriter, msg string) {
	st := apierrors.NewUnauthorized(msg).ErrStatus
	st.Kind, st.APIVersion = "Status", "v1"
	body, _ := json.Marshal(st)
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(http.StatusUnauthorized)
	_, _ = w.Write(append(body, '\n'))
}
