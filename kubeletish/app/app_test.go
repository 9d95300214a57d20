package app

import (
	"strings"
	"testing"

	"github.com/spf13/pflag"
)

func TestValidateServing(t *testing.T) {
	base := []string{"--node-name", "n1", "--node-ip", "10.0.0.2"}
	tls := []string{"--tls-cert-file", "k.crt", "--tls-private-key-file", "k.key", "--client-ca-file", "ca.crt"}
	for _, tc := range []struct {
		name string
		args []string
		// wantErr is part of the error; "" wants none.
		wantErr string
	}{
		{"nothing: refused, naming the flags", nil, "needs --tls-cert-file, --tls-private-key-file and --client-ca-file (or --insecure-serving"},
		{"TLS", tls, ""},
		{"TLS without client CAs", tls[:4], "--client-ca-file"},
		{"insecure", []string{"--insecure-serving"}, ""},
		{"insecure and TLS", append([]string{"--insecure-serving"}, tls...), "--insecure-serving serves plain HTTP"},
		{"no authorized users", append([]string{"--authorized-users="}, tls...), "--authorized-users is empty"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			o := NewOptions()
			fs := pflag.NewFlagSet("kubeletish", pflag.ContinueOnError)
			o.AddFlags(fs)
			if err := fs.Parse(append(append([]string{}, base...), tc.args...)); err != nil {
				t.Fatal(err)
			}
			err := o.Validate()
			if tc.wantErr == "" && err != nil || tc.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tc.wantErr)) {
				t.Errorf("Validate() = %v, want %q", err, tc.wantErr)
			}
		})
	}
}

func TestAuthorizedUsersDefault(t *testing.T) {
	if got := NewOptions().AuthorizedUsers; len(got) != 1 || got[0] != "kube-apiserver-kubelet-client" {
		t.Errorf("--authorized-users defaults to %q, want the apiserver's kubelet client", got)
	}
}
