package app_test

import (
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/kubeish/kubeish/apiserver/app"
	"github.com/kubeish/kubeish/pkg/testenv"
)

func withLimits(f func(*app.LimitOptions)) testenv.Option {
	return func(o *app.Options) {
		o.Limits = app.NewLimitOptions()
		f(&o.Limits)
	}
}

func limitGet(t *testing.T, c *http.Client, url string) (*http.Response, metav1.Status) {
	t.Helper()
	resp, err := c.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	var s metav1.Status
	if resp.StatusCode != http.StatusOK {
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if err := json.Unmarshal(body, &s); err != nil {
			t.Fatalf("%s: %d %s", url, resp.StatusCode, body)
		}
	}
	return resp, s
}

// TestRequestTimeoutAnswers504: a request that outlives --request-timeout
// answers 504 Timeout (here every store read does, with a timeout of 1ns),
// while health checks still answer.
func TestRequestTimeoutAnswers504(t *testing.T) {
	e := testenv.Start(t, withLimits(func(l *app.LimitOptions) { l.RequestTimeout = time.Nanosecond }))
	c := &http.Client{Timeout: 10 * time.Second}
	resp, s := limitGet(t, c, e.URL+"/api/v1/namespaces/default/configmaps/any")
	if resp.StatusCode != http.StatusGatewayTimeout || s.Reason != metav1.StatusReasonTimeout {
		t.Fatalf("got %d %s: %s", resp.StatusCode, s.Reason, s.Message)
	}
	resp, _ = limitGet(t, c, e.URL+"/healthz")
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("healthz: %d", resp.StatusCode)
	}
}

// TestWatchLimitsOverHTTP: a user's watches beyond --max-watches-per-user
// answer 429 with Retry-After, and each watch ends after
// --min-request-timeout (randomised up to twice it).
func TestWatchLimitsOverHTTP(t *testing.T) {
	e := testenv.Start(t, withLimits(func(l *app.LimitOptions) {
		l.MaxWatchesPerUser = 2
		l.MinRequestTimeout = time.Second
	}))
	c := &http.Client{Timeout: 30 * time.Second}
	const watch = "/api/v1/namespaces/default/configmaps?watch=true&resourceVersion=0"
	start := time.Now()
	var open []*http.Response
	for range 2 {
		resp, s := limitGet(t, c, e.URL+watch)
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("watch: %d %s", resp.StatusCode, s.Message)
		}
		open = append(open, resp)
	}
	resp, s := limitGet(t, c, e.URL+watch)
	if resp.StatusCode != http.StatusTooManyRequests || s.Reason != metav1.StatusReasonTooManyRequests || resp.Header.Get("Retry-After") != "1" {
		t.Fatalf("third watch: %d %s %q", resp.StatusCode, s.Reason, resp.Header.Get("Retry-After"))
	}
	for _, r := range open {
		_, _ = io.Copy(io.Discard, r.Body) // until the server ends it
		r.Body.Close()
	}
	if took := time.Since(start); took < time.Second || took > 5*time.Second {
		t.Fatalf("watches with --min-request-timeout 1s lasted %s", took)
	}
	// Ended watches free their places.
	resp, s = limitGet(t, c, e.URL+watch+"&timeoutSeconds=1")
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("watch after the others ended: %d %s", resp.StatusCode, s.Message)
	}
	resp.Body.Close()
}

// TestSlowBodyCutOff: a client that sends a request's headers and then
// dribbles (or withholds) its body is cut off at --request-timeout rather
// than holding a handler and an in-flight slot for ever.
func TestSlowBodyCutOff(t *testing.T) {
	e := testenv.Start(t, withLimits(func(l *app.LimitOptions) { l.RequestTimeout = time.Second }))
	host := strings.TrimPrefix(e.URL, "http://")
	conn, err := net.Dial("tcp", host)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	start := time.Now()
	fmt.Fprintf(conn, "POST /api/v1/namespaces/default/configmaps HTTP/1.1\r\nHost: %s\r\nContent-Type: application/json\r\nContent-Length: 1000\r\n\r\n{\"apiVersion\":", host)
	_ = conn.SetReadDeadline(time.Now().Add(20 * time.Second))
	answer, _ := io.ReadAll(conn) // until the server closes
	if took := time.Since(start); took > 10*time.Second {
		t.Fatalf("the server waited %s for the body", took)
	}
	status, _, _ := strings.Cut(string(answer), "\r\n")
	t.Logf("cut off after %s: %q", time.Since(start).Round(time.Millisecond), status)
	if strings.Contains(status, " 5") && !strings.Contains(status, " 504 ") {
		t.Fatalf("answered %q", status)
	}
}
