package server

import (
	"bytes"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"os"
	"slices"
	"sync"
)

// TLSConfig is the agent's serving TLS: the certificate in certFile and
// keyFile, TLS 1.2 or later, and client certificates requested but not
// verified in the handshake: WithAuth verifies them, so that a caller with
// a bad certificate (or none) gets a 401 saying why rather than a failed
// handshake, and the health checks stay anonymous. The files are read
// again whenever they change, so renewed certificates need no restart.
func TLSConfig(certFile, keyFile string) (*tls.Config, error) {
	pair, err := newReloading(func(b [][]byte) (*tls.Certificate, error) {
		c, err := tls.X509KeyPair(b[0], b[1])
		if err != nil {
			return nil, fmt.Errorf("--tls-cert-file %s, --tls-private-key-file %s: %w", certFile, keyFile, err)
		}
		return &c, nil
	}, certFile, keyFile)
	if err != nil {
		return nil, err
	}
	return &tls.Config{
		MinVersion: tls.VersionTLS12,
		ClientAuth: tls.RequestClientCert,
		GetCertificate: func(*tls.ClientHelloInfo) (*tls.Certificate, error) {
			return pair.get()
		},
	}, nil
}

// ClientCAFile returns the CA bundle in file for AuthConfig.ClientCAs,
// read again whenever the file changes. It fails at once when the file
// is unreadable or holds no certificate.
func ClientCAFile(file string) (func() (*x509.CertPool, error), error) {
	pool, err := newReloading(func(b [][]byte) (*x509.CertPool, error) {
		p := x509.NewCertPool()
		if !p.AppendCertsFromPEM(b[0]) {
			return nil, fmt.Errorf("--client-ca-file %s holds no PEM certificate", file)
		}
		return p, nil
	}, file)
	if err != nil {
		return nil, err
	}
	return pool.get, nil
}

// reloading is a value parsed from files, parsed again when their
// content changes (files are small: comparing them is cheaper and surer
// than comparing modification times).
type reloading[T any] struct {
	files []string
	parse func([][]byte) (T, error)

	mu   sync.Mutex
	data [][]byte
	val  T
}

func newReloading[T any](parse func([][]byte) (T, error), files ...string) (*reloading[T], error) {
	r := &reloading[T]{files: files, parse: parse}
	data, err := r.read()
	if err != nil {
		return nil, err
	}
	if r.val, err = parse(data); err != nil {
		return nil, err
	}
	r.data = data
	return r, nil
}

func (r *reloading[T]) read() ([][]byte, error) {
	data := make([][]byte, len(r.files))
	for i, f := range r.files {
		b, err := os.ReadFile(f)
		if err != nil {
			return nil, err
		}
		data[i] = b
	}
	return data, nil
}

// get returns the value of the files now. While they are unreadable or
// do not parse (a renewal half written: the certificate new, its key not
// yet), it keeps returning the last good value.
func (r *reloading[T]) get() (T, error) {
	data, err := r.read()
	r.mu.Lock()
	defer r.mu.Unlock()
	if err != nil || slices.EqualFunc(data, r.data, bytes.Equal) {
		return r.val, nil
	}
	if v, err := r.parse(data); err == nil {
		r.val, r.data = v, data
	}
	return r.val, nil
}
