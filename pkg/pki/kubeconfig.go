package pki

import (
	"crypto/x509"
	"errors"

	"k8s.io/client-go/tools/clientcmd"
	clientcmdapi "k8s.io/client-go/tools/clientcmd/api"
)

// Credentials are what a kubeconfig's user authenticates with: a client
// certificate or a bearer token.
type Credentials struct {
	Pair  *Pair
	Token string
}

// Kubeconfig returns a kubeconfig with one cluster, user and context, all
// named name, that reaches server (https://…) trusting caPEM and
// authenticating with creds. Everything is embedded, so the file stands on
// its own.
func Kubeconfig(name, server string, caPEM []byte, creds Credentials) ([]byte, error) {
	if creds.Pair == nil && creds.Token == "" {
		return nil, errors.New("pki: a kubeconfig needs a client certificate or a token")
	}
	cfg := clientcmdapi.NewConfig()
	cfg.Clusters[name] = &clientcmdapi.Cluster{Server: server, CertificateAuthorityData: caPEM}
	user := &clientcmdapi.AuthInfo{Token: creds.Token}
	if creds.Pair != nil {
		user.ClientCertificateData, user.ClientKeyData = creds.Pair.CertPEM, creds.Pair.KeyPEM
	}
	cfg.AuthInfos[name] = user
	cfg.Contexts[name] = &clientcmdapi.Context{Cluster: name, AuthInfo: name}
	cfg.CurrentContext = name
	return clientcmd.Write(*cfg)
}

// Identity is the user a verified client certificate names: CommonName is
// the user, Organizations are the groups.
func Identity(cert *x509.Certificate) (user string, groups []string) {
	return cert.Subject.CommonName, append([]string(nil), cert.Subject.Organization...)
}
