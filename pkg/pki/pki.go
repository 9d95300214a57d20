// Package pki is the cluster's certificate authority: it makes a CA, issues
// serving and client certificates signed by it, and reads and writes them
// as PEM files. The apiserver uses it to set up a CA on first start, kctl
// (`kctl pki`) and hack/ to issue certificates and kubeconfigs for users,
// nodes and components. Everything is plain crypto/x509 with ECDSA P-256
// keys; a user's own PKI works too, since every consumer loads files.
//
// Identity follows Kubernetes: a client certificate's CommonName is the
// user name and its Organizations are the user's groups.
package pki

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"fmt"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"time"
)

// Default lifetimes: ten years for a CA, one year for a leaf, as kubeadm.
const (
	CAValidity   = 10 * 365 * 24 * time.Hour
	LeafValidity = 365 * 24 * time.Hour
)

// Well-known identities and file names.
const (
	// MastersGroup is the group that cluster-admin is bound to.
	MastersGroup = "system:masters"
	// NodesGroup is every node agent's group; its user is NodeUserPrefix+name.
	NodesGroup     = "system:nodes"
	NodeUserPrefix = "system:node:"
	// ControllerUser and SchedulerUser are the control-plane components.
	ControllerUser = "system:kube-controller-manager"
	SchedulerUser  = "system:kube-scheduler"
	// APIServerKubeletClientUser is the apiserver's identity towards node
	// agents (pods/log, /stats/summary).
	APIServerKubeletClientUser = "kube-apiserver-kubelet-client"

	CACertFile = "ca.crt"
	CAKeyFile  = "ca.key"
)

// CA is a certificate authority that can sign.
type CA struct {
	Cert *x509.Certificate
	Key  crypto.Signer
	// CertPEM is Cert encoded, as written to ca.crt.
	CertPEM []byte
}

// Usage says what a leaf certificate is for.
type Usage int

const (
	// Client certificates authenticate a user to a server.
	Client Usage = 1 << iota
	// Server certificates serve TLS for the names and IPs in the Spec.
	Server
)

// Spec describes a leaf certificate.
type Spec struct {
	CommonName    string
	Organizations []string
	DNSNames      []string
	IPs           []net.IP
	Usage         Usage
	// Validity defaults to LeafValidity; NotBefore is backdated a minute
	// against clock skew unless set.
	Validity  time.Duration
	NotBefore time.Time
}

// Pair is an issued certificate and its private key, PEM-encoded.
type Pair struct {
	CertPEM []byte
	KeyPEM  []byte
}

// NewCA makes a self-signed CA named cn.
func NewCA(cn string) (*CA, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, err
	}
	serial, err := newSerial()
	if err != nil {
		return nil, err
	}
	now := time.Now()
	tmpl := &x509.Certificate{
		SerialNumber:          serial,
		Subject:               pkix.Name{CommonName: cn},
		NotBefore:             now.Add(-time.Minute),
		NotAfter:              now.Add(CAValidity),
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign | x509.KeyUsageDigitalSignature,
		BasicConstraintsValid: true,
		IsCA:                  true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, key.Public(), key)
	if err != nil {
		return nil, err
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		return nil, err
	}
	return &CA{Cert: cert, Key: key, CertPEM: pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})}, nil
}

// Issue signs a new key pair for spec.
func (ca *CA) Issue(spec Spec) (*Pair, error) {
	if spec.CommonName == "" {
		return nil, errors.New("pki: a certificate needs a common name")
	}
	if spec.Usage == 0 {
		return nil, errors.New("pki: a certificate needs a usage (client, server or both)")
	}
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, err
	}
	serial, err := newSerial()
	if err != nil {
		return nil, err
	}
	notBefore := spec.NotBefore
	if notBefore.IsZero() {
		notBefore = time.Now().Add(-time.Minute)
	}
	validity := spec.Validity
	if validity == 0 {
		validity = LeafValidity
	}
	tmpl := &x509.Certificate{
		SerialNumber: serial,
		Subject:      pkix.Name{CommonName: spec.CommonName, Organization: spec.Organizations},
		NotBefore:    notBefore,
		NotAfter:     notBefore.Add(validity),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		DNSNames:     spec.DNSNames,
		IPAddresses:  spec.IPs,
	}
	if spec.Usage&Client != 0 {
		tmpl.ExtKeyUsage = append(tmpl.ExtKeyUsage, x509.ExtKeyUsageClientAuth)
	}
	if spec.Usage&Server != 0 {
		tmpl.ExtKeyUsage = append(tmpl.ExtKeyUsage, x509.ExtKeyUsageServerAuth)
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.Cert, key.Public(), ca.Key)
	if err != nil {
		return nil, err
	}
	keyDER, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		return nil, err
	}
	return &Pair{
		CertPEM: pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}),
		KeyPEM:  pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: keyDER}),
	}, nil
}

// TLSCertificate returns the pair for a tls.Config.
func (p *Pair) TLSCertificate() (tls.Certificate, error) {
	return tls.X509KeyPair(p.CertPEM, p.KeyPEM)
}

// Write writes the pair as certFile (0644) and keyFile (0600), creating
// their directories.
func (p *Pair) Write(certFile, keyFile string) error {
	if err := writeFile(certFile, p.CertPEM, 0o644); err != nil {
		return err
	}
	return writeFile(keyFile, p.KeyPEM, 0o600)
}

// Write writes the CA as dir/ca.crt and dir/ca.key.
func (ca *CA) Write(dir string) error {
	keyPEM, err := encodeKey(ca.Key)
	if err != nil {
		return err
	}
	return (&Pair{CertPEM: ca.CertPEM, KeyPEM: keyPEM}).Write(filepath.Join(dir, CACertFile), filepath.Join(dir, CAKeyFile))
}

// LoadCA reads a CA from a certificate and key file.
func LoadCA(certFile, keyFile string) (*CA, error) {
	certPEM, err := os.ReadFile(certFile)
	if err != nil {
		return nil, err
	}
	keyPEM, err := os.ReadFile(keyFile)
	if err != nil {
		return nil, err
	}
	pair, err := tls.X509KeyPair(certPEM, keyPEM)
	if err != nil {
		return nil, fmt.Errorf("pki: CA %s / %s: %w", certFile, keyFile, err)
	}
	cert, err := x509.ParseCertificate(pair.Certificate[0])
	if err != nil {
		return nil, err
	}
	if !cert.IsCA {
		return nil, fmt.Errorf("pki: %s is not a CA certificate", certFile)
	}
	signer, ok := pair.PrivateKey.(crypto.Signer)
	if !ok {
		return nil, fmt.Errorf("pki: %s is not a signing key", keyFile)
	}
	return &CA{Cert: cert, Key: signer, CertPEM: certPEM}, nil
}

// LoadOrCreateCA loads dir/ca.crt and dir/ca.key, or makes and writes a new
// CA named cn when neither exists. created says which happened.
func LoadOrCreateCA(dir, cn string) (ca *CA, created bool, err error) {
	certFile, keyFile := filepath.Join(dir, CACertFile), filepath.Join(dir, CAKeyFile)
	_, certErr := os.Stat(certFile)
	_, keyErr := os.Stat(keyFile)
	if certErr == nil || keyErr == nil {
		ca, err := LoadCA(certFile, keyFile)
		return ca, false, err
	}
	if ca, err = NewCA(cn); err != nil {
		return nil, false, err
	}
	return ca, true, ca.Write(dir)
}

// EnsurePair issues spec into certFile/keyFile unless both exist already and
// the certificate is still valid for at least a day; it reports whether it
// issued one. Existing files are never overwritten while valid, so a
// user's own certificates stay.
func (ca *CA) EnsurePair(certFile, keyFile string, spec Spec) (bool, error) {
	if cert, err := ReadCertificate(certFile); err == nil {
		if _, kerr := os.Stat(keyFile); kerr == nil && time.Until(cert.NotAfter) > 24*time.Hour {
			return false, nil
		}
	}
	pair, err := ca.Issue(spec)
	if err != nil {
		return false, err
	}
	return true, pair.Write(certFile, keyFile)
}

// ReadCertificate reads the first certificate of a PEM file.
func ReadCertificate(file string) (*x509.Certificate, error) {
	data, err := os.ReadFile(file)
	if err != nil {
		return nil, err
	}
	block, _ := pem.Decode(data)
	if block == nil || block.Type != "CERTIFICATE" {
		return nil, fmt.Errorf("pki: %s holds no PEM certificate", file)
	}
	return x509.ParseCertificate(block.Bytes)
}

// CertPool reads a PEM bundle of CA certificates.
func CertPool(file string) (*x509.CertPool, error) {
	data, err := os.ReadFile(file)
	if err != nil {
		return nil, err
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(data) {
		return nil, fmt.Errorf("pki: %s holds no PEM certificates", file)
	}
	return pool, nil
}

func encodeKey(k crypto.Signer) ([]byte, error) {
	if ec, ok := k.(*ecdsa.PrivateKey); ok {
		der, err := x509.MarshalECPrivateKey(ec)
		if err != nil {
			return nil, err
		}
		return pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: der}), nil
	}
	der, err := x509.MarshalPKCS8PrivateKey(k)
	if err != nil {
		return nil, err
	}
	return pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}), nil
}

func newSerial() (*big.Int, error) {
	return rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 127))
}

// writeFile writes atomically (temp file + rename) so a reader never sees
// half a key.
func writeFile(path string, data []byte, mode os.FileMode) error {
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return err
	}
	tmp, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".*")
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name())
	if err := tmp.Chmod(mode); err != nil {
		tmp.Close()
		return err
	}
	if _, err := tmp.Write(data); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	return os.Rename(tmp.Name(), path)
}
