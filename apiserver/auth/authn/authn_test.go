package authn

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"net/http"
	"net/http/httptest"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/kubeish/kubeish/apiserver/auth/user"
	"github.com/kubeish/kubeish/pkg/pki"
)

func TestParseTokenFile(t *testing.T) {
	tests := []struct {
		name    string
		file    string
		want    map[string]user.Info
		wantErr string
	}{
		{name: "empty", file: "", want: map[string]user.Info{}},
		{
			name: "users, groups, comments and blank lines",
			file: "# token,user,uid,groups\n\nabc,alice,1001,\"system:masters,dev\"\n  \ndef,bob,1002\n ghi , carol , 1003 , \" ops , , qa \",ignored\n",
			want: map[string]user.Info{
				"abc": {Name: "alice", UID: "1001", Groups: []string{"system:masters", "dev"}},
				"def": {Name: "bob", UID: "1002"},
				"ghi": {Name: "carol", UID: "1003", Groups: []string{"ops", "qa"}},
			},
		},
		{name: "empty uid", file: "abc,alice,\n", want: map[string]user.Info{"abc": {Name: "alice"}}},
		{name: "too few columns", file: "# c\nabc,alice\n", wantErr: "line 2: needs at least 3 columns"},
		{name: "empty token", file: ",alice,1\n", wantErr: "line 1: empty token"},
		{name: "empty user", file: "abc,,1\n", wantErr: "line 1: empty user name"},
		{name: "token with a space", file: "a b,alice,1\n", wantErr: "line 1: a token may not contain spaces"},
		{name: "duplicate token", file: "abc,alice,1\n\nabc,bob,2\n", wantErr: "line 3: the same token as line 1"},
		{name: "unterminated quote", file: "abc,alice,1\nabc2,bob,2,\"dev\n", wantErr: "line 2:"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tf, err := ParseTokenFile(strings.NewReader(tt.file))
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("err = %v, want one containing %q", err, tt.wantErr)
				}
				if strings.Contains(err.Error(), "abc") {
					t.Fatalf("error %q shows the token", err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			got := map[string]user.Info{}
			for tok, u := range tf.tokens {
				got[tok] = *u
			}
			if !reflect.DeepEqual(got, tt.want) {
				t.Fatalf("tokens = %+v, want %+v", got, tt.want)
			}
		})
	}
}

func TestTokenAuthenticate(t *testing.T) {
	tf, err := ParseTokenFile(strings.NewReader("good,alice,1,dev\n"))
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		header  string
		want    string
		ok      bool
		wantErr error
	}{
		{header: "", ok: false},
		{header: "Basic Zm9vOmJhcg==", ok: false},
		{header: "Bearer good", want: "alice", ok: true},
		{header: "bearer good", want: "alice", ok: true},
		{header: "Bearer wrong", wantErr: ErrInvalidToken},
		{header: "Bearer", ok: false},
	}
	for _, tt := range tests {
		r := httptest.NewRequest("GET", "/api", nil)
		if tt.header != "" {
			r.Header.Set("Authorization", tt.header)
		}
		u, ok, err := tf.AuthenticateRequest(r)
		if !errors.Is(err, tt.wantErr) || ok != tt.ok || ok && u.Name != tt.want {
			t.Errorf("%q: got %+v %v %v, want %q %v %v", tt.header, u, ok, err, tt.want, tt.ok, tt.wantErr)
		}
	}
}

func TestUnion(t *testing.T) {
	ca, err := pki.NewCA("test-ca")
	if err != nil {
		t.Fatal(err)
	}
	other, err := pki.NewCA("other-ca")
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	pool.AddCert(ca.Cert)
	tf, err := ParseTokenFile(strings.NewReader("good,alice,1,dev\n"))
	if err != nil {
		t.Fatal(err)
	}
	a := Union(NewX509(pool), tf)

	cert := func(signer *pki.CA, spec pki.Spec) *x509.Certificate {
		t.Helper()
		pair, err := signer.Issue(spec)
		if err != nil {
			t.Fatal(err)
		}
		tc, err := pair.TLSCertificate()
		if err != nil {
			t.Fatal(err)
		}
		c, err := x509.ParseCertificate(tc.Certificate[0])
		if err != nil {
			t.Fatal(err)
		}
		return c
	}
	bob := cert(ca, pki.Spec{CommonName: "bob", Organizations: []string{"system:masters"}, Usage: pki.Client})
	tests := []struct {
		name       string
		cert       *x509.Certificate
		token      string
		wantUser   string
		wantGroups []string
		wantErr    string
	}{
		{name: "nothing"},
		{name: "certificate", cert: bob, wantUser: "bob", wantGroups: []string{"system:masters", user.AllAuthenticated}},
		{name: "token", token: "good", wantUser: "alice", wantGroups: []string{"dev", user.AllAuthenticated}},
		{name: "good certificate wins over a bad token", cert: bob, token: "bad", wantUser: "bob", wantGroups: []string{"system:masters", user.AllAuthenticated}},
		{name: "bad token", token: "bad", wantErr: "invalid bearer token"},
		{name: "expired", cert: cert(ca, pki.Spec{CommonName: "old", Usage: pki.Client, NotBefore: time.Now().Add(-2 * time.Hour), Validity: time.Hour}),
			wantErr: "x509: certificate has expired"},
		{name: "foreign CA", cert: cert(other, pki.Spec{CommonName: "mallory", Usage: pki.Client}), wantErr: "x509: certificate signed by unknown authority"},
		{name: "serving certificate", cert: cert(ca, pki.Spec{CommonName: "srv", Usage: pki.Server}), wantErr: "x509: certificate specifies an incompatible key usage"},
		{name: "no common name", cert: cert(ca, pki.Spec{CommonName: " ", Usage: pki.Client}), wantErr: "no common name"},
		{name: "bad certificate and a good token", cert: cert(other, pki.Spec{CommonName: "mallory", Usage: pki.Client}), token: "good",
			wantUser: "alice", wantGroups: []string{"dev", user.AllAuthenticated}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := httptest.NewRequest("GET", "/api", nil)
			if tt.cert != nil {
				r.TLS = &tls.ConnectionState{PeerCertificates: []*x509.Certificate{tt.cert}}
			}
			if tt.token != "" {
				r.Header.Set("Authorization", "Bearer "+tt.token)
			}
			u, ok, err := a.AuthenticateRequest(r)
			if tt.wantErr != "" {
				if ok || err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("got %+v %v %v, want error %q", u, ok, err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if tt.wantUser == "" {
				if ok {
					t.Fatalf("got user %+v for a request without credentials", u)
				}
				return
			}
			if !ok || u.Name != tt.wantUser || !reflect.DeepEqual(u.Groups, tt.wantGroups) {
				t.Fatalf("got %+v %v, want %s %v", u, ok, tt.wantUser, tt.wantGroups)
			}
		})
	}
}

func TestAnonymous(t *testing.T) {
	u := Anonymous()
	if u.Name != user.Anonymous || !u.InGroup(user.AllUnauthenticated) || u.InGroup(user.AllAuthenticated) {
		t.Fatalf("anonymous = %+v", u)
	}
	var _ Authenticator = Func(func(*http.Request) (*user.Info, bool, error) { return nil, false, nil })
}
