package app_test

import (
	"bytes"
	"context"
	"encoding/base64"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"go.uber.org/zap"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/kubeish/kubeish/apiserver/app"
	"github.com/kubeish/kubeish/pkg/testenv"
)

func encKeyFile(t *testing.T, lines ...string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "keys")
	if err := os.WriteFile(p, []byte(strings.Join(lines, "\n")+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

func encKey(fill byte) string {
	return base64.StdEncoding.EncodeToString(bytes.Repeat([]byte{fill}, 32))
}

func withEncryptionKeys(path string) testenv.Option {
	return func(o *app.Options) { o.EncryptionKeyFile = path }
}

func rawEtcd(t *testing.T, e *testenv.Env, key string) []byte {
	t.Helper()
	resp, err := e.EtcdClient.Get(context.Background(), key)
	if err != nil || len(resp.Kvs) != 1 {
		t.Fatalf("etcd get %s: %v, %d keys", key, err, len(resp.Kvs))
	}
	return resp.Kvs[0].Value
}

// TestSecretsEncryptedAtRest: a Secret written through the API is stored
// encrypted (neither its data nor the data's base64 appear in etcd), reads
// back decoded, a no-op update does not rewrite it, and ConfigMaps stay
// plain.
func TestSecretsEncryptedAtRest(t *testing.T) {
	e := testenv.Start(t, withEncryptionKeys(encKeyFile(t, "# test keys", "k1:"+encKey(1))))
	ctx := context.Background()
	const secret = "correct-horse-battery-staple"
	s, err := e.Client.CoreV1().Secrets("default").Create(ctx, &corev1.Secret{
		ObjectMeta: metav1.ObjectMeta{Name: "db"},
		Data:       map[string][]byte{"password": []byte(secret)},
		StringData: map[string]string{"user": "admin-" + secret},
	}, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	stored := rawEtcd(t, e, "/registry/secrets/default/db")
	if !bytes.HasPrefix(stored, []byte("k8s:enc:aesgcm:v1:k1:")) {
		t.Fatalf("stored Secret does not start with the encryption prefix: %q", stored[:min(len(stored), 40)])
	}
	for _, leak := range []string{secret, base64.StdEncoding.EncodeToString([]byte(secret)), "password", `"kind"`} {
		if bytes.Contains(stored, []byte(leak)) {
			t.Fatalf("stored Secret contains %q", leak)
		}
	}
	got, err := e.Client.CoreV1().Secrets("default").Get(ctx, "db", metav1.GetOptions{})
	if err != nil || string(got.Data["password"]) != secret {
		t.Fatalf("get: %v %q", err, got.Data)
	}
	list, err := e.Client.CoreV1().Secrets("").List(ctx, metav1.ListOptions{})
	if err != nil || len(list.Items) == 0 {
		t.Fatalf("list: %v", err)
	}

	// Writing it back unchanged is no change: same bytes, same revision.
	again, err := e.Client.CoreV1().Secrets("default").Update(ctx, got, metav1.UpdateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if again.ResourceVersion != s.ResourceVersion || !bytes.Equal(rawEtcd(t, e, "/registry/secrets/default/db"), stored) {
		t.Fatalf("a no-op update rewrote the Secret: rv %s -> %s", s.ResourceVersion, again.ResourceVersion)
	}
	got.Data["password"] = []byte("new-" + secret)
	if _, err := e.Client.CoreV1().Secrets("default").Update(ctx, got, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	if now := rawEtcd(t, e, "/registry/secrets/default/db"); bytes.Equal(now, stored) || bytes.Contains(now, []byte(secret)) {
		t.Fatal("the updated Secret is not newly encrypted")
	}

	if _, err := e.Client.CoreV1().ConfigMaps("default").Create(ctx, &corev1.ConfigMap{
		ObjectMeta: metav1.ObjectMeta{Name: "plain"}, Data: map[string]string{"k": "visible-value"},
	}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	if cm := rawEtcd(t, e, "/registry/configmaps/default/plain"); !bytes.Contains(cm, []byte("visible-value")) {
		t.Fatalf("ConfigMap not stored plain: %q", cm)
	}
}

// TestEncryptionOnExistingData: Secrets stored before encryption was turned
// on still read, and are encrypted when next written; after rotating to a
// new first key the old key's Secrets still read; with the key missing the
// apiserver refuses those Secrets with 503 ServiceUnavailable naming the
// key (its configuration, not the data, is at fault), and with other
// material under the key's name with 500 InternalError (storage altered).
func TestEncryptionOnExistingData(t *testing.T) {
	dir := t.TempDir()
	ctx := context.Background()
	restart := func(e *testenv.Env, opts ...testenv.Option) *testenv.Env {
		if e != nil {
			e.Stop()
		}
		return testenv.Start(t, append([]testenv.Option{testenv.WithDataDir(dir)}, opts...)...)
	}
	e := restart(nil)
	if _, err := e.Client.CoreV1().Secrets("default").Create(ctx, &corev1.Secret{
		ObjectMeta: metav1.ObjectMeta{Name: "old"}, StringData: map[string]string{"v": "before"},
	}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}

	e = restart(e, withEncryptionKeys(encKeyFile(t, "k1:"+encKey(1))))
	s, err := e.Client.CoreV1().Secrets("default").Get(ctx, "old", metav1.GetOptions{})
	if err != nil || string(s.Data["v"]) != "before" {
		t.Fatalf("plain Secret after turning encryption on: %v", err)
	}
	s.Data["v"] = []byte("after")
	if _, err := e.Client.CoreV1().Secrets("default").Update(ctx, s, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	if v := rawEtcd(t, e, "/registry/secrets/default/old"); !bytes.HasPrefix(v, []byte("k8s:enc:aesgcm:v1:k1:")) {
		t.Fatal("rewritten Secret is not encrypted")
	}

	// Rotation: k2 first, k1 still there.
	e = restart(e, withEncryptionKeys(encKeyFile(t, "k2:"+encKey(2), "k1:"+encKey(1))))
	s, err = e.Client.CoreV1().Secrets("default").Get(ctx, "old", metav1.GetOptions{})
	if err != nil || string(s.Data["v"]) != "after" {
		t.Fatalf("after rotation: %v", err)
	}
	// Rewriting it unchanged (the README's `kubectl replace`) moves it to k2.
	if _, err := e.Client.CoreV1().Secrets("default").Update(ctx, s, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	if v := rawEtcd(t, e, "/registry/secrets/default/old"); !bytes.HasPrefix(v, []byte("k8s:enc:aesgcm:v1:k2:")) {
		t.Fatal("a Secret rewritten after rotation is not under the new first key")
	}
	// Back under k1 for the cases below, which drop or replace k1.
	e = restart(e, withEncryptionKeys(encKeyFile(t, "k1:"+encKey(1), "k2:"+encKey(2))))
	if s, err = e.Client.CoreV1().Secrets("default").Get(ctx, "old", metav1.GetOptions{}); err != nil {
		t.Fatal(err)
	}
	if _, err := e.Client.CoreV1().Secrets("default").Update(ctx, s, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}

	for _, tc := range []struct {
		name   string
		opts   []testenv.Option
		code   int32
		reason metav1.StatusReason
		msg    string
	}{
		{name: "key dropped", opts: []testenv.Option{withEncryptionKeys(encKeyFile(t, "k2:"+encKey(2)))},
			code: http.StatusServiceUnavailable, reason: metav1.StatusReasonServiceUnavailable, msg: `key "k1"`},
		{name: "no key file", code: http.StatusServiceUnavailable, reason: metav1.StatusReasonServiceUnavailable, msg: "--encryption-key-file"},
		{name: "other material", opts: []testenv.Option{withEncryptionKeys(encKeyFile(t, "k1:"+encKey(9)))},
			code: http.StatusInternalServerError, reason: metav1.StatusReasonInternalError, msg: "message authentication failed"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e = restart(e, tc.opts...)
			_, err := e.Client.CoreV1().Secrets("default").Get(ctx, "old", metav1.GetOptions{})
			var se apierrors.APIStatus
			if !asStatus(err, &se) || se.Status().Code != tc.code || se.Status().Reason != tc.reason || !strings.Contains(se.Status().Message, tc.msg) {
				t.Fatalf("get: %v", err)
			}
			if strings.Contains(err.Error(), "after") {
				t.Fatalf("error shows the Secret's data: %v", err)
			}
			// Everything else serves on.
			if _, err := e.Client.CoreV1().ConfigMaps("default").List(ctx, metav1.ListOptions{}); err != nil {
				t.Fatal(err)
			}
		})
	}
}

func asStatus(err error, se *apierrors.APIStatus) bool {
	if err == nil {
		return false
	}
	s, ok := err.(apierrors.APIStatus)
	*se = s
	return ok
}

// TestBadKeyFileFailsStartup: the apiserver does not start over a key file
// it cannot use, and says why.
func TestBadKeyFileFailsStartup(t *testing.T) {
	for _, tc := range []struct {
		name, file, want string
	}{
		{"missing", filepath.Join(t.TempDir(), "nope"), "no such file"},
		{"short key", encKeyFile(t, "k1:"+base64.StdEncoding.EncodeToString([]byte("short"))), `key "k1" is 5 bytes, want 32`},
		{"empty", encKeyFile(t, "# no keys yet"), "holds no keys"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			o := testenv.Options(t)
			o.EncryptionKeyFile = tc.file
			a, err := app.Start(context.Background(), o, zap.NewNop(), nil)
			if err == nil {
				a.Close()
				t.Fatal("started")
			}
			if !strings.Contains(err.Error(), tc.want) || !strings.Contains(err.Error(), "encryption key file") {
				t.Fatalf("error %q, want one containing %q", err, tc.want)
			}
		})
	}
}

// TestSwappedSecretsRefused: two encrypted Secrets whose values are swapped
// in etcd (by someone who can write etcd but has no key) are not served
// under each other's names: a read is an error, not the other's data.
func TestSwappedSecretsRefused(t *testing.T) {
	e := testenv.Start(t, withEncryptionKeys(encKeyFile(t, "k1:"+encKey(1))))
	ctx := context.Background()
	for _, name := range []string{"a", "b"} {
		if _, err := e.Client.CoreV1().Secrets("default").Create(ctx, &corev1.Secret{
			ObjectMeta: metav1.ObjectMeta{Name: name}, Data: map[string][]byte{"v": []byte("secret-of-" + name)},
		}, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	a, b := rawEtcd(t, e, "/registry/secrets/default/a"), rawEtcd(t, e, "/registry/secrets/default/b")
	if _, err := e.EtcdClient.Put(ctx, "/registry/secrets/default/a", string(b)); err != nil {
		t.Fatal(err)
	}
	if _, err := e.EtcdClient.Put(ctx, "/registry/secrets/default/b", string(a)); err != nil {
		t.Fatal(err)
	}
	got, err := e.Client.CoreV1().Secrets("default").Get(ctx, "a", metav1.GetOptions{})
	if err == nil {
		t.Fatalf("secret a after the swap: %q, want an error", got.Data["v"])
	}
	if !apierrors.IsInternalError(err) {
		t.Fatalf("secret a after the swap: %v, want InternalError (corrupted storage)", err)
	}
	// The rest of the API keeps working (the watch cache saw the swap too).
	cm, err := e.Client.CoreV1().ConfigMaps("default").Create(ctx, &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: "after-swap"}}, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := e.Client.CoreV1().ConfigMaps("default").List(ctx, metav1.ListOptions{ResourceVersion: cm.ResourceVersion, ResourceVersionMatch: metav1.ResourceVersionMatchNotOlderThan}); err != nil {
		t.Fatalf("a cached list after the swap: %v", err)
	}
	// A list of Secrets says which key is corrupted, as Kubernetes does.
	if _, err := e.Client.CoreV1().Secrets("default").List(ctx, metav1.ListOptions{}); !apierrors.IsInternalError(err) ||
		!strings.Contains(err.Error(), "/registry/secrets/default/a") {
		t.Fatalf("a secrets list after the swap: %v, want InternalError naming the key", err)
	}
}
