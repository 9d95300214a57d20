//go:build e2e

package e2e

import (
	"encoding/json"
	"fmt"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"syscall"
	"time"

	"sigs.k8s.io/yaml"
)

// promAddr is where the test's Prometheus listens: loopback of the
// control-plane host, reached from the test through that host.
const promAddr = "127.0.0.1:9090"

// testPrometheus: Debian's Prometheus, run in the control-plane host with
// manifests/prometheus.yml (scraping every second instead of every 15 s),
// finds every component up, and its queries show the apiserver's request
// counts and every node agent's running pods.
func testPrometheus(c *realCluster) {
	t := c.t
	promBin, err := exec.LookPath("prometheus")
	if err != nil {
		t.Skip("needs prometheus on PATH (apt-get install prometheus)")
	}
	dir := t.TempDir() // removed after Prometheus is stopped (cleanups run last-in first-out)
	raw, err := os.ReadFile("../../manifests/prometheus.yml")
	if err != nil {
		t.Fatal(err)
	}
	var cfg map[string]any
	if err := yaml.Unmarshal(raw, &cfg); err != nil {
		t.Fatalf("manifests/prometheus.yml: %v", err)
	}
	cfg["global"] = map[string]any{"scrape_interval": "1s", "scrape_timeout": "1s", "evaluation_interval": "1s"}
	// The HTTPS jobs trust this cluster's CA instead of make up's.
	for _, sc := range cfg["scrape_configs"].([]any) {
		if tc, ok := sc.(map[string]any)["tls_config"].(map[string]any); ok {
			tc["ca_file"] = c.pki.caFile()
		}
	}
	out, err := yaml.Marshal(cfg)
	if err != nil {
		t.Fatal(err)
	}
	cfgFile := filepath.Join(dir, "prometheus.yml")
	if err := os.WriteFile(cfgFile, out, 0o644); err != nil {
		t.Fatal(err)
	}
	c.start("prometheus", c.cp, promBin, "--config.file", cfgFile, "--storage.tsdb.path", filepath.Join(dir, "data"),
		"--web.listen-address", promAddr, "--log.level", "warn")
	t.Cleanup(func() { _, _ = c.procs.kill("prometheus", syscall.SIGTERM) })

	want := []string{fmt.Sprintf("%s:%d", cpIP, apiPort), cpIP + ":10257", cpIP + ":10259"}
	for _, n := range c.nodes {
		want = append(want, fmt.Sprintf("%s:%d", n.ip, kubeletPort))
	}
	untilEvery(t, 500*time.Millisecond, 90*time.Second, fmt.Sprintf("every target up, among them %v", want), func() error {
		var targets struct {
			ActiveTargets []struct {
				Labels    map[string]string `json:"labels"`
				ScrapeURL string            `json:"scrapeUrl"`
				Health    string            `json:"health"`
				LastError string            `json:"lastError"`
			} `json:"activeTargets"`
		}
		if err := c.promAPI("targets?state=active", &targets); err != nil {
			if p := c.procs.get("prometheus"); p != nil && p.exited() {
				t.Fatalf("prometheus exited: %v\n%s", p.cmd.ProcessState, c.procs.logTail("prometheus", 20))
			}
			return err
		}
		seen := map[string]bool{}
		var down []string
		for _, tg := range targets.ActiveTargets {
			seen[tg.Labels["instance"]] = true
			if tg.Health != "up" {
				down = append(down, fmt.Sprintf("%s (%s): %s %s", tg.ScrapeURL, tg.Labels["job"], tg.Health, tg.LastError))
			}
		}
		var missing []string
		for _, w := range want {
			if !seen[w] {
				missing = append(missing, w)
			}
		}
		if len(down) > 0 || len(missing) > 0 {
			return fmt.Errorf("down: %v; not scraped: %v", down, missing)
		}
		return nil
	})

	// up is 1 everywhere; the apiserver counts requests; every node agent
	// reports its running pods.
	untilEvery(t, 500*time.Millisecond, 30*time.Second, "query results", func() error {
		up, err := c.promQuery("up")
		if err != nil {
			return err
		}
		for _, s := range up {
			if s.value != "1" {
				return fmt.Errorf("up{%v} = %s", s.labels, s.value)
			}
		}
		reqs, err := c.promQuery(`sum by (instance) (apiserver_request_total)`)
		if err != nil {
			return err
		}
		if len(reqs) != 1 || reqs[0].labels["instance"] != want[0] {
			return fmt.Errorf("apiserver_request_total by instance: %v, want one series from %s", reqs, want[0])
		}
		pods, err := c.promQuery(`kubelet_running_pods`)
		if err != nil {
			return err
		}
		var nodes []string
		for _, s := range pods {
			nodes = append(nodes, s.labels["instance"]+"="+s.value)
		}
		sort.Strings(nodes)
		if len(pods) != len(c.nodes) {
			return fmt.Errorf("kubelet_running_pods: %v, want one series per node", nodes)
		}
		t.Logf("up: %d targets; apiserver_request_total: %s; kubelet_running_pods: %v", len(up), reqs[0].value, nodes)
		return nil
	})
}

// promAPI GETs Prometheus' /api/v1/PATH from inside the control-plane host
// and decodes its data into v.
func (c *realCluster) promAPI(path string, v any) error {
	body, err := get(c.cp, "http://"+promAddr+"/api/v1/"+path)
	if err != nil {
		return err
	}
	var resp struct {
		Status string          `json:"status"`
		Error  string          `json:"error"`
		Data   json.RawMessage `json:"data"`
	}
	if err := json.Unmarshal([]byte(body), &resp); err != nil {
		return fmt.Errorf("prometheus answered %q: %w", body, err)
	}
	if resp.Status != "success" {
		return fmt.Errorf("prometheus: %s", resp.Error)
	}
	return json.Unmarshal(resp.Data, v)
}

type promSample struct {
	labels map[string]string
	value  string
}

func (s promSample) String() string { return fmt.Sprintf("%v=%s", s.labels, s.value) }

// promQuery runs an instant query.
func (c *realCluster) promQuery(q string) ([]promSample, error) {
	var data struct {
		Result []struct {
			Metric map[string]string `json:"metric"`
			Value  []any             `json:"value"`
		} `json:"result"`
	}
	if err := c.promAPI("query?query="+url.QueryEscape(q), &data); err != nil {
		return nil, err
	}
	var out []promSample
	for _, r := range data.Result {
		s := promSample{labels: r.Metric}
		if len(r.Value) == 2 {
			s.value = fmt.Sprint(r.Value[1])
		}
		out = append(out, s)
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("query %s: no series", q)
	}
	return out, nil
}
