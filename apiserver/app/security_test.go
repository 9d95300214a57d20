package app_test

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"go.uber.org/zap"
	"go.uber.org/zap/zaptest"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/clientcmd"

	"github.com/kubeish/kubeish/apiserver/app"
	"github.com/kubeish/kubeish/pkg/pki"
	"github.com/kubeish/kubeish/pkg/poll"
	"github.com/kubeish/kubeish/pkg/testenv"
)

// httpsClient trusts env's CA and presents pair when it is not nil.
func httpsClient(t *testing.T, env *testenv.Env, pair *pki.Pair) *http.Client {
	t.Helper()
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(env.CAPEM)
	tc := &tls.Config{RootCAs: pool}
	if pair != nil {
		c, err := pair.TLSCertificate()
		if err != nil {
			t.Fatal(err)
		}
		tc.Certificates = []tls.Certificate{c}
	}
	return &http.Client{Timeout: 30 * time.Second, Transport: &http.Transport{TLSClientConfig: tc}}
}

type answer struct {
	code int
	body []byte
}

func get(t *testing.T, c *http.Client, url, token string) answer {
	t.Helper()
	req, err := http.NewRequest("GET", url, nil)
	if err != nil {
		t.Fatal(err)
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := c.Do(req)
	if err != nil {
		t.Fatalf("GET %s: %v", url, err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	return answer{resp.StatusCode, body}
}

// status decodes a Status answer.
func status(t *testing.T, a answer) metav1.Status {
	t.Helper()
	var st metav1.Status
	if err := json.Unmarshal(a.body, &st); err != nil {
		t.Fatalf("answer %d %q is not a Status: %v", a.code, a.body, err)
	}
	return st
}

// want401 checks a 401 Status whose message contains msg.
func want401(t *testing.T, a answer, what, msg string) {
	t.Helper()
	if a.code != http.StatusUnauthorized {
		t.Fatalf("%s: got %d %s, want 401", what, a.code, a.body)
	}
	st := status(t, a)
	if st.Kind != "Status" || st.APIVersion != "v1" || st.Status != metav1.StatusFailure || st.Reason != metav1.StatusReasonUnauthorized ||
		st.Code != 401 || !strings.Contains(st.Message, msg) {
		t.Fatalf("%s: got Status %+v, want Unauthorized with a message containing %q", what, st, msg)
	}
}

func TestAnonymousRequests(t *testing.T) {
	tests := []struct {
		name    string
		metrics bool
		want    map[string]int
	}{
		{name: "default", want: map[string]int{
			"/healthz": 200, "/livez": 200, "/readyz": 200, "/version": 200,
			"/metrics": 401, "/api": 401, "/api/v1/pods": 401, "/api/v1/namespaces/default/secrets": 401, "/apis": 401,
			"/healthzz": 401, "/versions": 401, "/openapi/v3": 401,
		}},
		{name: "metrics-anonymous", metrics: true, want: map[string]int{"/metrics": 200, "/healthz": 200, "/api/v1/pods": 401}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			env := testenv.Start(t, func(o *app.Options) { o.Security.MetricsAnonymous = tt.metrics })
			c := httpsClient(t, env, nil)
			for path, code := range tt.want {
				a := get(t, c, env.SecureURL+path, "")
				if code == 401 {
					want401(t, a, path, "Unauthorized")
					// Exactly Kubernetes' answer.
					var m map[string]any
					if err := json.Unmarshal(a.body, &m); err != nil {
						t.Fatal(err)
					}
					if m["message"] != "Unauthorized" || m["reason"] != "Unauthorized" || m["code"] != float64(401) {
						t.Fatalf("%s: %s", path, a.body)
					}
					continue
				}
				if a.code != code {
					t.Errorf("%s: got %d %s, want %d", path, a.code, a.body, code)
				}
			}
		})
	}
}

func TestTokenAuthentication(t *testing.T) {
	file := filepath.Join(t.TempDir(), "tokens.csv")
	if err := os.WriteFile(file, []byte("# admins\nadmin-token,alice,1001,\"system:masters,dev\"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	env := testenv.Start(t, func(o *app.Options) { o.Security.TokenAuthFile = file })
	anon := httpsClient(t, env, nil)

	if a := get(t, anon, env.SecureURL+"/api/v1/namespaces", "admin-token"); a.code != http.StatusOK {
		t.Fatalf("token from the file: %d %s", a.code, a.body)
	}
	want401(t, get(t, anon, env.SecureURL+"/api/v1/namespaces", "wrong-token"), "wrong token", "invalid bearer token")
	// Bad credentials are refused even where anonymous requests may go.
	want401(t, get(t, anon, env.SecureURL+"/healthz", "wrong-token"), "wrong token on /healthz", "invalid bearer token")
	// A valid client certificate authenticates whatever the token says.
	pair, err := env.CA.Issue(pki.Spec{CommonName: "bob", Organizations: []string{pki.MastersGroup}, Usage: pki.Client})
	if err != nil {
		t.Fatal(err)
	}
	if a := get(t, httpsClient(t, env, pair), env.SecureURL+"/api/v1/namespaces", "wrong-token"); a.code != http.StatusOK {
		t.Fatalf("good certificate, wrong token: %d %s", a.code, a.body)
	}

	// client-go with the token.
	cfg := *env.AdminConfig(t)
	cfg.TLSClientConfig.CertData, cfg.TLSClientConfig.KeyData = nil, nil
	cfg.BearerToken = "admin-token"
	if _, err := kubernetes.NewForConfigOrDie(&cfg).CoreV1().Namespaces().Get(context.Background(), "default", metav1.GetOptions{}); err != nil {
		t.Fatalf("client-go with the token: %v", err)
	}
}

func TestMalformedTokenFileFailsStartup(t *testing.T) {
	file := filepath.Join(t.TempDir(), "tokens.csv")
	if err := os.WriteFile(file, []byte("# admins\nadmin-token,alice,1001\nsecret-token,bob\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	o := testenv.Options(t)
	o.Security.TokenAuthFile = file
	a, err := app.Start(context.Background(), o, zaptest.NewLogger(t, zaptest.Level(zap.WarnLevel)), nil)
	if err == nil {
		a.Close()
		t.Fatal("the apiserver started with a malformed token file")
	}
	if !strings.Contains(err.Error(), "line 3") || !strings.Contains(err.Error(), file) || strings.Contains(err.Error(), "secret-token") {
		t.Fatalf("error %q should name the file and line 3, and not the token", err)
	}
}

func TestClientCertificates(t *testing.T) {
	env := testenv.Start(t)
	other, err := pki.NewCA("other-ca")
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name    string
		signer  *pki.CA
		spec    pki.Spec
		wantMsg string // empty: authenticated
	}{
		{name: "good", signer: env.CA, spec: pki.Spec{CommonName: "alice", Organizations: []string{pki.MastersGroup}, Usage: pki.Client}},
		{name: "expired", signer: env.CA, spec: pki.Spec{CommonName: "alice", Organizations: []string{pki.MastersGroup}, Usage: pki.Client,
			NotBefore: time.Now().Add(-48 * time.Hour), Validity: time.Hour}, wantMsg: "x509: certificate has expired"},
		{name: "not yet valid", signer: env.CA, spec: pki.Spec{CommonName: "alice", Usage: pki.Client,
			NotBefore: time.Now().Add(time.Hour)}, wantMsg: "x509: certificate has expired or is not yet valid"},
		{name: "foreign CA", signer: other, spec: pki.Spec{CommonName: "alice", Organizations: []string{pki.MastersGroup}, Usage: pki.Client},
			wantMsg: "x509: certificate signed by unknown authority"},
		{name: "serving certificate", signer: env.CA, spec: pki.Spec{CommonName: "alice", Organizations: []string{pki.MastersGroup}, Usage: pki.Server},
			wantMsg: "incompatible key usage"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			pair, err := tt.signer.Issue(tt.spec)
			if err != nil {
				t.Fatal(err)
			}
			a := get(t, httpsClient(t, env, pair), env.SecureURL+"/api/v1/namespaces", "")
			if tt.wantMsg == "" {
				if a.code != http.StatusOK {
					t.Fatalf("got %d %s", a.code, a.body)
				}
				return
			}
			want401(t, a, tt.name, tt.wantMsg)
		})
	}
}

// TestClientGoOverHTTPS: a system:masters user with a client certificate,
// the test admin and the generated admin.kubeconfig all work with client-go.
func TestClientGoOverHTTPS(t *testing.T) {
	env := testenv.Start(t)
	ctx := context.Background()
	cs := kubernetes.NewForConfigOrDie(env.ConfigFor(t, "alice", pki.MastersGroup))
	if _, err := cs.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "alice"}}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	if _, err := cs.CoreV1().Pods("alice").List(ctx, metav1.ListOptions{}); err != nil {
		t.Fatal(err)
	}
	if _, err := kubernetes.NewForConfigOrDie(env.AdminConfig(t)).CoreV1().Pods("").List(ctx, metav1.ListOptions{}); err != nil {
		t.Fatal(err)
	}
	kc := filepath.Join(env.CertDir, app.AdminKubeconfigFile)
	cfg, err := clientcmd.BuildConfigFromFlags("", kc)
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Host != env.SecureURL {
		t.Fatalf("%s: server %s, want %s", kc, cfg.Host, env.SecureURL)
	}
	if _, err := kubernetes.NewForConfigOrDie(cfg).CoreV1().Namespaces().Get(ctx, "alice", metav1.GetOptions{}); err != nil {
		t.Fatalf("with %s: %v", kc, err)
	}
	// A watch over HTTP/2 streams.
	w, err := cs.CoreV1().Namespaces().Watch(ctx, metav1.ListOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer w.Stop()
	select {
	case ev := <-w.ResultChan():
		if ev.Object == nil {
			t.Fatal("empty watch event")
		}
	case <-time.After(30 * time.Second):
		t.Fatal("no watch event")
	}
}

func TestInsecureListenAddressIsLoopbackOnly(t *testing.T) {
	tests := []struct {
		addr string
		ok   bool
	}{
		{"", true},
		{"127.0.0.1:8080", true},
		{"[::1]:8080", true},
		{"localhost:8080", true},
		{"0.0.0.0:8080", false},
		{"[::]:8080", false},
		{"10.0.0.1:8080", false},
		{":8080", false},
		{"127.0.0.1", false},
	}
	for _, tt := range tests {
		o := app.NewOptions()
		o.InsecureListenAddress = tt.addr
		err := o.Validate()
		if (err == nil) != tt.ok {
			t.Errorf("--insecure-listen-address %q: err = %v, want ok %v", tt.addr, err, tt.ok)
		}
		if err != nil && tt.addr != "127.0.0.1" && !strings.Contains(err.Error(), "loopback") {
			t.Errorf("--insecure-listen-address %q: error %q does not say why", tt.addr, err)
		}
	}
	o := app.NewOptions()
	o.Security.TLSCertFile = "/some/cert"
	if err := o.Validate(); err == nil {
		t.Error("--tls-cert-file without --tls-private-key-file passed Validate")
	}
}

// servingCert returns the certificate the secure listener presents.
func servingCert(t *testing.T, url string) *x509.Certificate {
	t.Helper()
	conn, err := tls.Dial("tcp", strings.TrimPrefix(url, "https://"), &tls.Config{InsecureSkipVerify: true})
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	return conn.ConnectionState().PeerCertificates[0]
}

func TestGeneratedServingCertificate(t *testing.T) {
	dir := t.TempDir()
	sans := func(o *app.Options) {
		o.Security.TLSSANs = []string{"api.example.com", "192.0.2.10"}
		o.Security.KubeletInsecureHTTP = false
	}
	env := testenv.Start(t, testenv.WithDataDir(dir), sans)
	cert := servingCert(t, env.SecureURL)
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(env.CAPEM)
	for _, name := range []string{"127.0.0.1", "localhost", "kubernetes", "kubernetes.default.svc", "kubernetes.default.svc.cluster.local",
		"10.96.0.1", "api.example.com", "192.0.2.10"} {
		if _, err := cert.Verify(x509.VerifyOptions{Roots: pool, DNSName: name}); err != nil {
			t.Errorf("serving certificate for %s: %v", name, err)
		}
	}
	if _, err := cert.Verify(x509.VerifyOptions{Roots: pool, DNSName: "evil.example.com"}); err == nil {
		t.Error("the serving certificate verifies for evil.example.com")
	}
	for _, f := range []string{pki.CACertFile, pki.CAKeyFile, app.ServingCertFile, app.ServingKeyFile,
		app.KubeletClientCertFile, app.KubeletClientKeyFile, app.AdminKubeconfigFile} {
		if _, err := os.Stat(filepath.Join(env.CertDir, f)); err != nil {
			t.Errorf("cert dir: %v", err)
		}
	}
	if fi, err := os.Stat(filepath.Join(env.CertDir, pki.CAKeyFile)); err == nil && fi.Mode().Perm() != 0o600 {
		t.Errorf("ca.key mode %v", fi.Mode())
	}
	kubelet, err := pki.ReadCertificate(filepath.Join(env.CertDir, app.KubeletClientCertFile))
	if err != nil {
		t.Fatal(err)
	}
	// Only its name: node agents authorize it by that, and it is no admin.
	if u, g := pki.Identity(kubelet); u != pki.APIServerKubeletClientUser || len(g) != 0 {
		t.Errorf("kubelet client certificate is %s %v", u, g)
	}

	// A restart keeps the CA and the certificates.
	caPEM, certDir := env.CAPEM, env.CertDir
	env.Stop()
	env2 := testenv.Start(t, testenv.WithDataDir(dir), sans)
	if string(env2.CAPEM) != string(caPEM) {
		t.Fatal("the restarted apiserver has a new CA")
	}
	if again := servingCert(t, env2.SecureURL); !again.Equal(cert) {
		t.Fatal("the restarted apiserver serves a new certificate")
	}
	env2.Stop()

	// A new SAN makes a new leaf of the same CA.
	env3 := testenv.Start(t, testenv.WithDataDir(dir), func(o *app.Options) { o.Security.TLSSANs = []string{"new.example.com"} })
	renewed := servingCert(t, env3.SecureURL)
	if renewed.Equal(cert) || string(env3.CAPEM) != string(caPEM) {
		t.Fatal("a new --tls-san did not make a new leaf of the same CA")
	}
	if _, err := renewed.Verify(x509.VerifyOptions{Roots: pool, DNSName: "new.example.com"}); err != nil {
		t.Fatal(err)
	}
	env3.Stop()

	// A new CA (the old one deleted) makes new leaves and a new admin
	// kubeconfig.
	for _, f := range []string{pki.CACertFile, pki.CAKeyFile} {
		if err := os.Remove(filepath.Join(certDir, f)); err != nil {
			t.Fatal(err)
		}
	}
	env4 := testenv.Start(t, testenv.WithDataDir(dir), sans)
	if string(env4.CAPEM) == string(caPEM) {
		t.Fatal("no new CA")
	}
	newPool := x509.NewCertPool()
	newPool.AppendCertsFromPEM(env4.CAPEM)
	if _, err := servingCert(t, env4.SecureURL).Verify(x509.VerifyOptions{Roots: newPool, DNSName: "127.0.0.1"}); err != nil {
		t.Fatalf("serving certificate after a new CA: %v", err)
	}
	kubelet, err = pki.ReadCertificate(filepath.Join(env4.CertDir, app.KubeletClientCertFile))
	if err != nil {
		t.Fatal(err)
	}
	if err := kubelet.CheckSignatureFrom(env4.CA.Cert); err != nil {
		t.Fatalf("kubelet client certificate after a new CA: %v", err)
	}
	cfg, err := clientcmd.BuildConfigFromFlags("", filepath.Join(env4.CertDir, app.AdminKubeconfigFile))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := kubernetes.NewForConfigOrDie(cfg).CoreV1().Namespaces().Get(context.Background(), "default", metav1.GetOptions{}); err != nil {
		t.Fatalf("admin kubeconfig after a new CA: %v", err)
	}
}

// TestUserPKI: given serving, client CA and kubelet certificates, the
// apiserver generates nothing and serves the user's own.
func TestUserPKI(t *testing.T) {
	dir := t.TempDir()
	ca, err := pki.NewCA("my-ca")
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "my-ca.crt"), ca.CertPEM, 0o644); err != nil {
		t.Fatal(err)
	}
	serving, err := ca.Issue(pki.Spec{CommonName: "mine", IPs: []net.IP{net.IPv4(127, 0, 0, 1)}, Usage: pki.Server})
	if err != nil {
		t.Fatal(err)
	}
	kubelet, err := ca.Issue(pki.Spec{CommonName: "my-kubelet-client", Usage: pki.Client})
	if err != nil {
		t.Fatal(err)
	}
	if err := serving.Write(filepath.Join(dir, "serving.crt"), filepath.Join(dir, "serving.key")); err != nil {
		t.Fatal(err)
	}
	if err := kubelet.Write(filepath.Join(dir, "kubelet.crt"), filepath.Join(dir, "kubelet.key")); err != nil {
		t.Fatal(err)
	}
	certDir := filepath.Join(dir, "pki")
	env := testenv.Start(t, func(o *app.Options) {
		s := &o.Security
		s.CertDir = certDir
		s.TLSCertFile, s.TLSPrivateKeyFile = filepath.Join(dir, "serving.crt"), filepath.Join(dir, "serving.key")
		s.ClientCAFile = filepath.Join(dir, "my-ca.crt")
		s.KubeletInsecureHTTP = false
		s.KubeletClientCertificate, s.KubeletClientKey = filepath.Join(dir, "kubelet.crt"), filepath.Join(dir, "kubelet.key")
		s.KubeletCertificateAuthority = filepath.Join(dir, "my-ca.crt")
	})
	if env.CA != nil {
		t.Fatal("a CA was generated although every certificate was given")
	}
	if _, err := os.Stat(certDir); !os.IsNotExist(err) {
		t.Fatalf("cert dir: %v, want none", err)
	}
	if got := servingCert(t, env.SecureURL); got.Subject.CommonName != "mine" {
		t.Fatalf("serving %s", got.Subject.CommonName)
	}
	pair, err := ca.Issue(pki.Spec{CommonName: "alice", Organizations: []string{pki.MastersGroup}, Usage: pki.Client})
	if err != nil {
		t.Fatal(err)
	}
	env.CAPEM = ca.CertPEM
	if a := get(t, httpsClient(t, env, pair), env.SecureURL+"/api/v1/namespaces", ""); a.code != http.StatusOK {
		t.Fatalf("a certificate of the user's CA: %d %s", a.code, a.body)
	}
}

// TestNodeClientTLS: pods/log and the metrics scraper reach a node agent
// over HTTPS with the apiserver's kubelet client certificate, verifying the
// node's serving certificate against the cluster CA.
func TestNodeClientTLS(t *testing.T) {
	env := testenv.Start(t, func(o *app.Options) {
		o.Security.KubeletInsecureHTTP = false
		o.MetricResolution = 200 * time.Millisecond
	})
	ctx := context.Background()
	servingPair, err := env.CA.Issue(pki.Spec{CommonName: "system:node:node-1", IPs: []net.IP{net.IPv4(127, 0, 0, 1)}, Usage: pki.Server})
	if err != nil {
		t.Fatal(err)
	}
	servingTLS, err := servingPair.TLSCertificate()
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(env.CAPEM)
	var mu sync.Mutex
	callers := map[string]string{} // path → client certificate CN
	kubelet := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		callers[r.URL.Path] = r.TLS.PeerCertificates[0].Subject.CommonName
		mu.Unlock()
		switch r.URL.Path {
		case "/containerLogs/default/p/c":
			fmt.Fprint(w, "hello over TLS\n")
		case "/stats/summary":
			now := time.Now().UTC().Format(time.RFC3339Nano)
			fmt.Fprintf(w, `{"node":{"nodeName":"node-1","startTime":%q,"cpu":{"time":%q,"usageCoreNanoSeconds":1000000000},"memory":{"time":%q,"workingSetBytes":1048576}},"pods":[]}`, now, now, now)
		default:
			http.NotFound(w, r)
		}
	}))
	kubelet.TLS = &tls.Config{Certificates: []tls.Certificate{servingTLS}, ClientAuth: tls.RequireAndVerifyClientCert, ClientCAs: pool}
	kubelet.StartTLS()
	defer kubelet.Close()
	_, portS, _ := net.SplitHostPort(kubelet.Listener.Addr().String())
	port, _ := strconv.Atoi(portS)

	cs := kubernetes.NewForConfigOrDie(env.AdminConfig(t))
	node := &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: "node-1"}, Status: corev1.NodeStatus{
		Addresses:       []corev1.NodeAddress{{Type: corev1.NodeInternalIP, Address: "127.0.0.1"}},
		DaemonEndpoints: corev1.NodeDaemonEndpoints{KubeletEndpoint: corev1.DaemonEndpoint{Port: int32(port)}},
		Conditions:      []corev1.NodeCondition{{Type: corev1.NodeReady, Status: corev1.ConditionTrue}},
	}}
	if _, err := cs.CoreV1().Nodes().Create(ctx, node, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	pod := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: "p", Namespace: "default"}, Spec: corev1.PodSpec{
		NodeName: "node-1", Containers: []corev1.Container{{Name: "c", Image: "example/c:1"}}}}
	if _, err := cs.CoreV1().Pods("default").Create(ctx, pod, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	logs, err := cs.CoreV1().Pods("default").GetLogs("p", &corev1.PodLogOptions{}).DoRaw(ctx)
	if err != nil || string(logs) != "hello over TLS\n" {
		t.Fatalf("logs %q, %v", logs, err)
	}
	poll.Until(t, 30*time.Second, "the node's /stats/summary scraped over TLS", func() (bool, error) {
		mu.Lock()
		defer mu.Unlock()
		_, scraped := callers["/stats/summary"]
		return scraped, nil
	})
	mu.Lock()
	defer mu.Unlock()
	if cn := callers["/stats/summary"]; cn != pki.APIServerKubeletClientUser {
		t.Fatalf("the scraper presented %q", cn)
	}
	if cn := callers["/containerLogs/default/p/c"]; cn != pki.APIServerKubeletClientUser {
		t.Fatalf("the log proxy presented %q", cn)
	}
}

// TestSecureOnly: without the insecure listener the apiserver serves HTTPS
// only, and testenv's Client is the admin over it.
func TestSecureOnly(t *testing.T) {
	env := testenv.Start(t, func(o *app.Options) { o.InsecureListenAddress = "" })
	if env.InsecureURL != "" || !strings.HasPrefix(env.Config.Host, "https://") {
		t.Fatalf("insecure URL %q, client config %s", env.InsecureURL, env.Config.Host)
	}
	if _, err := env.Client.CoreV1().Namespaces().Get(context.Background(), "default", metav1.GetOptions{}); err != nil {
		t.Fatal(err)
	}
	// Plain HTTP to the secure port is no way in.
	resp, err := http.Get("http://" + strings.TrimPrefix(env.SecureURL, "https://") + "/api/v1/namespaces")
	if err == nil {
		resp.Body.Close()
		if resp.StatusCode == http.StatusOK {
			t.Fatal("plain HTTP on the secure port was served")
		}
	}
}
