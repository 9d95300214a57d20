package server_test

import (
	"bytes"
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/kubeish/kubeish/pkg/testenv"
)

// api is a small raw-HTTP client for one test apiserver: these tests check
// the wire protocol itself, so they do not go through client-go.
type api struct {
	t    testing.TB
	base string
	c    *http.Client
}

func newAPI(t testing.TB, e *testenv.Env) *api {
	return &api{t: t, base: e.URL, c: &http.Client{Timeout: 30 * time.Second}}
}

type response struct {
	code   int
	body   []byte
	header http.Header
}

func (r response) status(t testing.TB) metav1.Status {
	t.Helper()
	var s metav1.Status
	if err := json.Unmarshal(r.body, &s); err != nil || s.Kind != "Status" {
		t.Fatalf("response %d is not a Status: %s", r.code, r.body)
	}
	return s
}

func (r response) into(t testing.TB, v any) {
	t.Helper()
	if err := json.Unmarshal(r.body, v); err != nil {
		t.Fatalf("decoding %d response: %v: %s", r.code, err, r.body)
	}
}

// do sends one request; body may be a string, []byte, nil or any value to
// encode as JSON.
func (a *api) do(method, path, contentType string, body any, header ...string) response {
	a.t.Helper()
	var rd io.Reader
	switch b := body.(type) {
	case nil:
	case string:
		rd = strings.NewReader(b)
	case []byte:
		rd = bytes.NewReader(b)
	default:
		data, err := json.Marshal(b)
		if err != nil {
			a.t.Fatal(err)
		}
		rd = bytes.NewReader(data)
	}
	req, err := http.NewRequest(method, a.base+path, rd)
	if err != nil {
		a.t.Fatal(err)
	}
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	for i := 0; i+1 < len(header); i += 2 {
		req.Header.Set(header[i], header[i+1])
	}
	resp, err := a.c.Do(req)
	if err != nil {
		a.t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(resp.Body)
	if err != nil {
		a.t.Fatalf("%s %s: reading body: %v", method, path, err)
	}
	return response{code: resp.StatusCode, body: data, header: resp.Header}
}

// must sends a request and fails the test unless it answers want.
func (a *api) must(want int, method, path, contentType string, body any) response {
	a.t.Helper()
	r := a.do(method, path, contentType, body)
	if r.code != want {
		a.t.Fatalf("%s %s: got %d, want %d: %s", method, path, r.code, want, r.body)
	}
	return r
}

const (
	jsonType  = "application/json"
	yamlType  = "application/yaml"
	mergeType = "application/merge-patch+json"
	smpType   = "application/strategic-merge-patch+json"
	jpType    = "application/json-patch+json"
)
