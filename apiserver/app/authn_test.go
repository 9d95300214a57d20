package app

import (
	"context"
	"crypto/tls"
	"encoding/json"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"testing"

	"go.uber.org/zap/zaptest"

	"github.com/kubeish/kubeish/apiserver/auth/user"
	"github.com/kubeish/kubeish/pkg/pki"
)

// TestAuthenticationFilterUser: the user the filter puts in the request's
// context, for each kind of credentials and listener.
func TestAuthenticationFilterUser(t *testing.T) {
	dir := t.TempDir()
	tokens := filepath.Join(dir, "tokens.csv")
	if err := os.WriteFile(tokens, []byte("bob-token,bob,7,\"ops\"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	o := *NewOptions()
	o.DataDir = dir
	o.Security.TokenAuthFile = tokens
	o.Security.KubeletInsecureHTTP = true
	log := zaptest.NewLogger(t)
	sec, err := loadSecurity(o, log)
	if err != nil {
		t.Fatal(err)
	}
	a := &APIServer{log: log, sec: sec}
	echo := a.withAuthentication(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_ = json.NewEncoder(w).Encode(user.From(r.Context()))
	}))

	secure := httptest.NewUnstartedServer(echo)
	secure.TLS = &tls.Config{ClientAuth: tls.RequestClientCert}
	secure.StartTLS()
	defer secure.Close()
	insecure := httptest.NewUnstartedServer(echo)
	insecure.Config.BaseContext = func(net.Listener) context.Context { return withInsecureListener(context.Background()) }
	insecure.Start()
	defer insecure.Close()
	plain := httptest.NewServer(echo) // plain HTTP without the insecure listener's mark
	defer plain.Close()

	alice, err := sec.ca.Issue(pki.Spec{CommonName: "alice", Organizations: []string{"dev", "qa"}, Usage: pki.Client})
	if err != nil {
		t.Fatal(err)
	}
	aliceTLS, err := alice.TLSCertificate()
	if err != nil {
		t.Fatal(err)
	}
	withCertTransport := secure.Client().Transport.(*http.Transport).Clone()
	withCertTransport.TLSClientConfig.Certificates = []tls.Certificate{aliceTLS}
	withCert := &http.Client{Transport: withCertTransport}

	tests := []struct {
		name   string
		client *http.Client
		url    string
		token  string
		want   *user.Info // nil: 401
	}{
		{name: "client certificate", client: withCert, url: secure.URL + "/api",
			want: &user.Info{Name: "alice", Groups: []string{"dev", "qa", user.AllAuthenticated}}},
		{name: "token", client: secure.Client(), url: secure.URL + "/api", token: "bob-token",
			want: &user.Info{Name: "bob", UID: "7", Groups: []string{"ops", user.AllAuthenticated}}},
		{name: "anonymous health check", client: secure.Client(), url: secure.URL + "/readyz/etcd",
			want: &user.Info{Name: user.Anonymous, Groups: []string{user.AllUnauthenticated}}},
		{name: "anonymous API request", client: secure.Client(), url: secure.URL + "/api"},
		{name: "anonymous metrics", client: secure.Client(), url: secure.URL + "/metrics"},
		{name: "insecure listener", client: insecure.Client(), url: insecure.URL + "/api/v1/secrets",
			want: &user.Info{Name: user.Unsecured, Groups: []string{user.MastersGroup, user.AllAuthenticated}}},
		{name: "insecure listener ignores credentials", client: insecure.Client(), url: insecure.URL + "/api", token: "wrong",
			want: &user.Info{Name: user.Unsecured, Groups: []string{user.MastersGroup, user.AllAuthenticated}}},
		{name: "plain HTTP elsewhere", client: plain.Client(), url: plain.URL + "/api"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			req, _ := http.NewRequest("GET", tt.url, nil)
			if tt.token != "" {
				req.Header.Set("Authorization", "Bearer "+tt.token)
			}
			resp, err := tt.client.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			if tt.want == nil {
				if resp.StatusCode != http.StatusUnauthorized {
					t.Fatalf("status %d, want 401", resp.StatusCode)
				}
				return
			}
			var got user.Info
			if err := json.NewDecoder(resp.Body).Decode(&got); err != nil || resp.StatusCode != http.StatusOK {
				t.Fatalf("status %d: %v", resp.StatusCode, err)
			}
			slices.Sort(got.Groups) // a certificate's organizations are a DER SET: sorted
			slices.Sort(tt.want.Groups)
			if !reflect.DeepEqual(&got, tt.want) {
				t.Fatalf("user %+v, want %+v", got, *tt.want)
			}
		})
	}
}
