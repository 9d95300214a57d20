package app

import (
	"crypto/sha256"
	"errors"
	"fmt"
	"sync"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/runtime"

	"github.com/kubeish/kubeish/apiserver/encryption"
	"github.com/kubeish/kubeish/apiserver/storage"
)

// storageCodec wraps the objects' codec with encryption at rest for Secrets
// when keyFile is set (see apiserver/encryption for the format and key
// rotation). A key file that cannot be read or parsed fails startup.
//
// Without a key file the codec still recognises encrypted values, so that
// an apiserver started without the file answers a clear error for them
// rather than a JSON syntax error.
func storageCodec(c storage.Codec, keyFile string) (storage.Codec, error) {
	ec := &encryptingCodec{inner: c, known: map[[sha256.Size]byte][]byte{}}
	if keyFile != "" {
		keys, err := encryption.LoadFile(keyFile)
		if err != nil {
			return nil, err
		}
		ec.keys = keys
	}
	return ec, nil
}

// encryptingCodec encrypts Secrets with AES-256-GCM on the way to etcd and
// decrypts any encrypted value on the way back; other kinds, and Secrets
// stored before encryption was turned on, stay plain and decode as before.
//
// The codec does not know the etcd key of the value it encodes (the store's
// Codec interface carries only the object), so no additional data is
// authenticated; instead the store checks every decoded object against the
// key it was read from (storage.ErrCorrupt), and the name and namespace
// are inside the authenticated ciphertext: a value moved to another key by
// someone who can write etcd is refused, never served under that name.
type encryptingCodec struct {
	inner storage.Codec
	keys  *encryption.Keys // nil: no key file

	// known maps the digest of a Secret's plain encoding to the encrypted
	// value last read or written for it, so that writing a Secret back
	// unchanged produces the stored bytes again: the store skips a write
	// whose bytes equal the stored ones, and a fresh nonce would make every
	// no-op update a new revision and a MODIFIED event. Reusing a stored
	// value reuses no nonce for different data.
	mu         sync.Mutex
	known      map[[sha256.Size]byte][]byte
	knownBytes int
}

// The known map's bounds: small Secrets (as almost all are) are remembered
// up to knownMaxBytes in all, then the map starts over.
const (
	knownMaxValue = 64 << 10
	knownMaxBytes = 16 << 20
)

// Encode encodes obj and encrypts it when it is a Secret and a key file is
// set.
func (c *encryptingCodec) Encode(obj runtime.Object) ([]byte, error) {
	data, err := c.inner.Encode(obj)
	if err != nil || c.keys == nil {
		return data, err
	}
	if _, ok := obj.(*corev1.Secret); !ok {
		return data, nil
	}
	sum := sha256.Sum256(data)
	c.mu.Lock()
	enc, ok := c.known[sum]
	c.mu.Unlock()
	if ok && encryption.KeyName(enc) == c.keys.Primary() {
		return enc, nil
	}
	enc, err = c.keys.Encrypt(data, nil)
	if err != nil {
		return nil, err
	}
	c.remember(sum, enc)
	return enc, nil
}

// Decode decrypts data when it is encrypted, then decodes it into into.
func (c *encryptingCodec) Decode(data []byte, into runtime.Object) error {
	if !encryption.IsEncrypted(data) {
		return c.inner.Decode(data, into)
	}
	if c.keys == nil {
		return apierrors.NewServiceUnavailable(fmt.Sprintf(
			"a stored object is encrypted (key %q) and the apiserver was started without --encryption-key-file", encryption.KeyName(data)))
	}
	plain, err := c.keys.Decrypt(data, nil)
	switch {
	case errors.Is(err, encryption.ErrUnknownKey):
		// Configuration, not data: the operator dropped a key too early or
		// passed the wrong file. The object is intact and serves again
		// once the key is back.
		return apierrors.NewServiceUnavailable(fmt.Sprintf("a stored object is %v; restart the apiserver with that key in --encryption-key-file", err))
	case err != nil:
		// The key of that name does not open it: the value (or the key's
		// material) was altered. Corrupted storage.
		return apierrors.NewInternalError(fmt.Errorf("a stored object's %w", err))
	}
	if err := c.inner.Decode(plain, into); err != nil {
		return err
	}
	if _, ok := into.(*corev1.Secret); ok && len(data) <= knownMaxValue {
		c.remember(sha256.Sum256(plain), data)
	}
	return nil
}

func (c *encryptingCodec) remember(sum [sha256.Size]byte, enc []byte) {
	if len(enc) > knownMaxValue {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if _, ok := c.known[sum]; ok {
		return
	}
	if c.knownBytes+len(enc) > knownMaxBytes {
		clear(c.known)
		c.knownBytes = 0
	}
	c.known[sum] = enc
	c.knownBytes += len(enc)
}
