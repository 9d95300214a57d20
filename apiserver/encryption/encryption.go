// Package encryption encrypts stored values at rest with AES-256-GCM, in
// the shape of Kubernetes' aesgcm provider: an encrypted value is the prefix
// "k8s:enc:aesgcm:v1:<key name>:" followed by a random 12-byte nonce and the
// sealed data (with GCM's 16-byte tag). Values without the prefix are
// plain, so encryption can be turned on over existing data.
//
// Keys come from a key file, one key a line as "name:base64(32 bytes)",
// blank lines and lines starting with # ignored. The first key encrypts;
// every key decrypts. Rotation: add the new key as the first line and
// restart, rewrite every Secret (read and update each one, e.g.
// `kctl get secrets -A -o yaml | kctl replace -f -`), then drop the old
// key and restart again.
package encryption

import (
	"bufio"
	"bytes"
	"crypto/aes"
	"crypto/cipher"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"os"
	"strings"
)

// Prefix starts every value this package encrypted; the key's name and a
// colon follow it.
const Prefix = "k8s:enc:aesgcm:v1:"

// KeySize is the length of an AES-256 key.
const KeySize = 32

const nonceSize = 12

// Errors Decrypt returns, wrapped with the key's name.
var (
	// ErrUnknownKey: the value was encrypted with a key the key file does
	// not hold (it was dropped too early, or this is the wrong file).
	ErrUnknownKey = errors.New("encrypted with a key that is not in the key file")
	// ErrDecrypt: the key of that name does not open the value: the key's
	// material changed under the same name, or the value was altered.
	ErrDecrypt = errors.New("cannot be decrypted (message authentication failed)")
	// ErrMalformed: the value has the prefix but is cut short.
	ErrMalformed = errors.New("is not a well-formed encrypted value")
)

// key is one named AES-256-GCM key.
type key struct {
	name string
	aead cipher.AEAD
}

// Keys encrypt with the first key and decrypt with any. It is safe for
// concurrent use.
type Keys struct {
	keys []key
}

// LoadFile reads a key file.
func LoadFile(path string) (*Keys, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("encryption key file: %w", err)
	}
	k, err := Parse(data)
	if err != nil {
		return nil, fmt.Errorf("encryption key file %s: %w", path, err)
	}
	return k, nil
}

// Parse reads keys in the key file's format. Errors name the line, never
// the key's material.
func Parse(data []byte) (*Keys, error) {
	k := &Keys{}
	seen := map[string]bool{}
	sc := bufio.NewScanner(bytes.NewReader(data))
	for n := 1; sc.Scan(); n++ {
		line := strings.TrimSpace(sc.Text())
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		name, b64, ok := strings.Cut(line, ":")
		name, b64 = strings.TrimSpace(name), strings.TrimSpace(b64)
		if !ok || name == "" {
			return nil, fmt.Errorf("line %d: want name:base64-of-32-bytes", n)
		}
		if strings.ContainsAny(name, " \t") {
			return nil, fmt.Errorf("line %d: key name %q has spaces", n, name)
		}
		if seen[name] {
			return nil, fmt.Errorf("line %d: key name %q appears twice", n, name)
		}
		seen[name] = true
		secret, err := base64.StdEncoding.DecodeString(b64)
		if err != nil {
			return nil, fmt.Errorf("line %d: key %q is not base64", n, name)
		}
		if len(secret) != KeySize {
			return nil, fmt.Errorf("line %d: key %q is %d bytes, want %d (AES-256; make one with `head -c 32 /dev/urandom | base64`)", n, name, len(secret), KeySize)
		}
		block, err := aes.NewCipher(secret)
		if err != nil {
			return nil, fmt.Errorf("line %d: key %q: %w", n, name, err)
		}
		aead, err := cipher.NewGCM(block)
		if err != nil {
			return nil, fmt.Errorf("line %d: key %q: %w", n, name, err)
		}
		k.keys = append(k.keys, key{name: name, aead: aead})
	}
	if err := sc.Err(); err != nil {
		return nil, err
	}
	if len(k.keys) == 0 {
		return nil, errors.New("holds no keys (want lines like name:base64-of-32-bytes)")
	}
	return k, nil
}

// Primary is the name of the key that encrypts.
func (k *Keys) Primary() string { return k.keys[0].name }

// Encrypt seals plain with the first key and a fresh random nonce.
// additionalData is authenticated but not stored; Decrypt must be given the
// same.
func (k *Keys) Encrypt(plain, additionalData []byte) ([]byte, error) {
	use := k.keys[0]
	head := Prefix + use.name + ":"
	out := make([]byte, len(head)+nonceSize, len(head)+nonceSize+len(plain)+use.aead.Overhead())
	copy(out, head)
	nonce := out[len(head):]
	if _, err := rand.Read(nonce); err != nil {
		return nil, fmt.Errorf("encryption nonce: %w", err)
	}
	return use.aead.Seal(out, nonce, plain, additionalData), nil
}

// IsEncrypted reports whether data starts with Prefix.
func IsEncrypted(data []byte) bool { return bytes.HasPrefix(data, []byte(Prefix)) }

// KeyName returns the name of the key data was encrypted with, or "" when
// data is not an encrypted value.
func KeyName(data []byte) string {
	if !IsEncrypted(data) {
		return ""
	}
	name, _, ok := bytes.Cut(data[len(Prefix):], []byte(":"))
	if !ok {
		return ""
	}
	return string(name)
}

// Decrypt opens an encrypted value. The error wraps ErrUnknownKey,
// ErrDecrypt or ErrMalformed and names the key.
func (k *Keys) Decrypt(data, additionalData []byte) ([]byte, error) {
	if !IsEncrypted(data) {
		return nil, fmt.Errorf("value %w: no %s prefix", ErrMalformed, Prefix)
	}
	name, rest, ok := bytes.Cut(data[len(Prefix):], []byte(":"))
	if !ok {
		return nil, fmt.Errorf("value %w: no key name", ErrMalformed)
	}
	for _, use := range k.keys {
		if use.name != string(name) {
			continue
		}
		if len(rest) < nonceSize+use.aead.Overhead() {
			return nil, fmt.Errorf("value under key %q %w: %d bytes", name, ErrMalformed, len(rest))
		}
		plain, err := use.aead.Open(nil, rest[:nonceSize], rest[nonceSize:], additionalData)
		if err != nil {
			return nil, fmt.Errorf("value under key %q %w", name, ErrDecrypt)
		}
		return plain, nil
	}
	return nil, fmt.Errorf("value %w: key %q", ErrUnknownKey, name)
}
