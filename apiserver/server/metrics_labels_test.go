package server_test

import (
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"

	"github.com/kubeish/kubeish/pkg/testenv"
)

// TestMetricLabelsBounded: made-up methods and subresources do not make
// new metric series; they count as "other".
func TestMetricLabelsBounded(t *testing.T) {
	env := testenv.Start(t)
	for i := 0; i < 20; i++ {
		for _, path := range []string{"/healthz", fmt.Sprintf("/api/v1/namespaces/default/pods/p/made-up-%d", i)} {
			req, err := http.NewRequest(fmt.Sprintf("MADEUP%d", i), env.URL+path, nil)
			if err != nil {
				t.Fatal(err)
			}
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
		}
	}
	resp, err := http.Get(env.URL + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if strings.Contains(string(body), "MADEUP") || strings.Contains(string(body), "made-up") {
		t.Fatal("request-chosen values became metric labels")
	}
	if !strings.Contains(string(body), `verb="other"`) {
		t.Fatal(`no verb="other" series`)
	}
}
