package server_test

import (
	"context"
	"fmt"
	"net/http"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/kubeish/kubeish/pkg/testenv"
)

// TestPatchAmplificationRefused: a JSON patch whose copies double the
// object each time is refused with 413 instead of growing the apiserver's
// memory, and so is one with too many operations; nothing changes.
func TestPatchAmplificationRefused(t *testing.T) {
	env := testenv.Start(t)
	ctx := context.Background()
	cm := &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: "amp", Namespace: "default"}, Data: map[string]string{"k": strings.Repeat("x", 1000)}}
	if _, err := env.Client.CoreV1().ConfigMaps("default").Create(ctx, cm, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	// Each copy doubles: /metadata/annotations is copied into itself.
	doubling := []string{`{"op":"add","path":"/metadata/annotations","value":{}}`}
	for i := 0; i < 40; i++ {
		doubling = append(doubling, fmt.Sprintf(`{"op":"copy","from":"/metadata","path":"/metadata/annotations/m%d"}`, i))
	}
	many := make([]string, 10001)
	for i := range many {
		many[i] = `{"op":"test","path":"/metadata/name","value":"amp"}`
	}
	for name, ops := range map[string][]string{"doubling copies": doubling, "too many operations": many} {
		req, err := http.NewRequest(http.MethodPatch, env.URL+"/api/v1/namespaces/default/configmaps/amp", strings.NewReader("["+strings.Join(ops, ",")+"]"))
		if err != nil {
			t.Fatal(err)
		}
		req.Header.Set("Content-Type", "application/json-patch+json")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusRequestEntityTooLarge {
			t.Errorf("%s: %d, want 413", name, resp.StatusCode)
		}
	}
	got, err := env.Client.CoreV1().ConfigMaps("default").Get(ctx, "amp", metav1.GetOptions{})
	if err != nil || len(got.Annotations) != 0 {
		t.Fatalf("the configmap changed: %v %v", got.Annotations, err)
	}
}
