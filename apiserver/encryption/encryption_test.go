package encryption_test

import (
	"bytes"
	"encoding/base64"
	"errors"
	"strings"
	"testing"

	"github.com/kubeish/kubeish/apiserver/encryption"
)

func b64(fill byte, n int) string {
	return base64.StdEncoding.EncodeToString(bytes.Repeat([]byte{fill}, n))
}

func TestParse(t *testing.T) {
	for _, tc := range []struct {
		name    string
		file    string
		primary string
		err     string
	}{
		{name: "one key", file: "k1:" + b64(1, 32) + "\n", primary: "k1"},
		{name: "comments and blanks", file: "# keys\n\n  k2:" + b64(2, 32) + "  \nk1:" + b64(1, 32) + "\n", primary: "k2"},
		{name: "empty", file: "# nothing\n", err: "holds no keys"},
		{name: "no colon", file: b64(1, 32), err: "line 1"},
		{name: "no name", file: ":" + b64(1, 32), err: "line 1"},
		{name: "not base64", file: "k1:not*base64", err: `line 1: key "k1" is not base64`},
		{name: "short key", file: "k1:" + b64(1, 16), err: "is 16 bytes, want 32"},
		{name: "twice", file: "k1:" + b64(1, 32) + "\nk1:" + b64(2, 32), err: "line 2: key name \"k1\" appears twice"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			k, err := encryption.Parse([]byte(tc.file))
			if tc.err != "" {
				if err == nil || !strings.Contains(err.Error(), tc.err) {
					t.Fatalf("error %v, want one containing %q", err, tc.err)
				}
				if strings.Contains(err.Error(), b64(1, 32)) || strings.Contains(err.Error(), b64(1, 16)) {
					t.Fatalf("error shows the key: %v", err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if k.Primary() != tc.primary {
				t.Fatalf("primary %q, want %q", k.Primary(), tc.primary)
			}
		})
	}
}

func TestRoundTripAndRotation(t *testing.T) {
	old, err := encryption.Parse([]byte("old:" + b64(1, 32)))
	if err != nil {
		t.Fatal(err)
	}
	rotated, err := encryption.Parse([]byte("new:" + b64(2, 32) + "\nold:" + b64(1, 32)))
	if err != nil {
		t.Fatal(err)
	}
	plain := []byte(`{"data":{"password":"hunter2"}}`)
	enc, err := old.Encrypt(plain, nil)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.HasPrefix(enc, []byte("k8s:enc:aesgcm:v1:old:")) || bytes.Contains(enc, []byte("hunter2")) {
		t.Fatalf("encrypted value %q", enc)
	}
	if again, _ := old.Encrypt(plain, nil); bytes.Equal(again, enc) {
		t.Fatal("two encryptions of one value are equal: the nonce is not random")
	}
	// After rotation the new key encrypts and the old one still decrypts.
	for _, k := range []*encryption.Keys{old, rotated} {
		got, err := k.Decrypt(enc, nil)
		if err != nil || !bytes.Equal(got, plain) {
			t.Fatalf("decrypt: %q, %v", got, err)
		}
	}
	enc2, _ := rotated.Encrypt(plain, nil)
	if encryption.KeyName(enc2) != "new" {
		t.Fatalf("rotated key file encrypts with %q", encryption.KeyName(enc2))
	}
	// The old key alone cannot read what the new one wrote.
	if _, err := old.Decrypt(enc2, nil); !errors.Is(err, encryption.ErrUnknownKey) || !strings.Contains(err.Error(), `"new"`) {
		t.Fatalf("decrypt with a missing key: %v", err)
	}
	// The same name with other material, or an altered value, fails
	// authentication.
	other, _ := encryption.Parse([]byte("old:" + b64(3, 32)))
	if _, err := other.Decrypt(enc, nil); !errors.Is(err, encryption.ErrDecrypt) {
		t.Fatalf("decrypt with the wrong material: %v", err)
	}
	tampered := bytes.Clone(enc)
	tampered[len(tampered)-1] ^= 1
	if _, err := old.Decrypt(tampered, nil); !errors.Is(err, encryption.ErrDecrypt) {
		t.Fatalf("decrypt of an altered value: %v", err)
	}
	if _, err := old.Decrypt([]byte("k8s:enc:aesgcm:v1:old:short"), nil); !errors.Is(err, encryption.ErrMalformed) {
		t.Fatalf("decrypt of a cut value: %v", err)
	}
	// Additional data must match.
	bound, _ := old.Encrypt(plain, []byte("/registry/secrets/a/b"))
	if _, err := old.Decrypt(bound, []byte("/registry/secrets/a/c")); !errors.Is(err, encryption.ErrDecrypt) {
		t.Fatalf("decrypt with other additional data: %v", err)
	}
	if encryption.IsEncrypted(plain) || encryption.KeyName(plain) != "" {
		t.Fatal("plain JSON taken for an encrypted value")
	}
}
