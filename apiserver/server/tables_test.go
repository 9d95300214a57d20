package server_test

import (
	"bufio"
	"context"
	"encoding/json"
	"net/http"
	"strings"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/kubeish/kubeish/pkg/testenv"
)

const tableAccept = "application/json;as=Table;v=v1;g=meta.k8s.io,application/json"

func columnNames(t *metav1.Table) []string {
	var out []string
	for _, c := range t.ColumnDefinitions {
		out = append(out, c.Name)
	}
	return out
}

func TestTables(t *testing.T) {
	e := testenv.Start(t)
	a := newAPI(t, e)
	a.must(http.StatusCreated, "POST", "/api/v1/namespaces/default/pods", jsonType,
		`{"metadata":{"name":"web-1","labels":{"app":"web"}},"spec":{"containers":[{"name":"c","image":"example/web:1"}]}}`)
	a.must(http.StatusCreated, "POST", "/apis/apps/v1/namespaces/default/deployments", jsonType,
		`{"metadata":{"name":"web"},"spec":{"replicas":3,"selector":{"matchLabels":{"app":"web"}},"template":{"metadata":{"labels":{"app":"web"}},"spec":{"containers":[{"name":"c","image":"example/web:1"}]}}}}`)
	a.must(http.StatusCreated, "POST", "/api/v1/namespaces/default/services", jsonType,
		`{"metadata":{"name":"web"},"spec":{"selector":{"app":"web"},"ports":[{"port":80}]}}`)
	a.must(http.StatusCreated, "POST", "/apis/autoscaling/v2/namespaces/default/horizontalpodautoscalers", jsonType,
		`{"metadata":{"name":"web"},"spec":{"scaleTargetRef":{"apiVersion":"apps/v1","kind":"Deployment","name":"web"},"maxReplicas":5}}`)
	a.must(http.StatusCreated, "POST", "/apis/autoscaling/v2/namespaces/default/horizontalpodautoscalers", jsonType,
		`{"metadata":{"name":"mem"},"spec":{"scaleTargetRef":{"apiVersion":"apps/v1","kind":"ReplicaSet","name":"web"},"minReplicas":2,"maxReplicas":4,`+
			`"metrics":[{"type":"Resource","resource":{"name":"memory","target":{"type":"AverageValue","averageValue":"200Mi"}}},`+
			`{"type":"Resource","resource":{"name":"cpu","target":{"type":"Utilization","averageUtilization":50}}}]}}`)

	tests := []struct {
		name, path, include string
		columns             []string
		cells               []any // of the row named row
		row                 string
		object              string // kind of row.object, "" for none
	}{
		{name: "pod list", path: "/api/v1/namespaces/default/pods",
			columns: []string{"Name", "Ready", "Status", "Restarts", "Age", "IP", "Node", "Nominated Node", "Readiness Gates"},
			row:     "web-1", cells: []any{"web-1", "0/1", "Pending", "0"}, object: "PartialObjectMetadata"},
		{name: "pod get, full object", path: "/api/v1/namespaces/default/pods/web-1", include: "Object",
			columns: []string{"Name", "Ready", "Status", "Restarts", "Age", "IP", "Node", "Nominated Node", "Readiness Gates"},
			row:     "web-1", cells: []any{"web-1", "0/1", "Pending", "0"}, object: "Pod"},
		{name: "deployments across namespaces", path: "/apis/apps/v1/deployments", include: "None",
			columns: []string{"Name", "Ready", "Up-to-date", "Available", "Age", "Containers", "Images", "Selector"},
			row:     "web", cells: []any{"web", "0/3", float64(0), float64(0)}},
		{name: "services", path: "/api/v1/namespaces/default/services",
			columns: []string{"Name", "Type", "Cluster-IP", "External-IP", "Port(s)", "Age", "Selector"},
			row:     "web", cells: []any{"web", "ClusterIP"}, object: "PartialObjectMetadata"},
		{name: "autoscalers, defaulted target", path: "/apis/autoscaling/v2/namespaces/default/horizontalpodautoscalers",
			columns: []string{"Name", "Reference", "Targets", "MinPods", "MaxPods", "Replicas", "Age"},
			row:     "web", cells: []any{"web", "Deployment/web", "cpu: <unknown>/80%", "1", float64(5), float64(0)}, object: "PartialObjectMetadata"},
		{name: "autoscalers, average value", path: "/apis/autoscaling/v2/namespaces/default/horizontalpodautoscalers",
			columns: []string{"Name", "Reference", "Targets", "MinPods", "MaxPods", "Replicas", "Age"},
			row:     "mem", cells: []any{"mem", "ReplicaSet/web", "memory: <unknown>/200Mi, cpu: <unknown>/50%", "2", float64(4), float64(0)}, object: "PartialObjectMetadata"},
		{name: "namespaces", path: "/api/v1/namespaces",
			columns: []string{"Name", "Status", "Age"},
			row:     "kube-system", cells: []any{"kube-system", "Active"}, object: "PartialObjectMetadata"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			path := tc.path
			if tc.include != "" {
				path += "?includeObject=" + tc.include
			}
			r := a.do("GET", path, "", nil, "Accept", tableAccept)
			if r.code != http.StatusOK || !strings.HasPrefix(r.header.Get("Content-Type"), "application/json") {
				t.Fatalf("got %d %s: %s", r.code, r.header.Get("Content-Type"), r.body)
			}
			var table metav1.Table
			r.into(t, &table)
			if table.Kind != "Table" || table.APIVersion != "meta.k8s.io/v1" || table.ResourceVersion == "" {
				t.Fatalf("not a Table with a resourceVersion: %s", r.body)
			}
			if got := columnNames(&table); strings.Join(got, "|") != strings.Join(tc.columns, "|") {
				t.Fatalf("columns %q, want %q", got, tc.columns)
			}
			var row *metav1.TableRow
			for i := range table.Rows {
				if table.Rows[i].Cells[0] == tc.row {
					row = &table.Rows[i]
				}
			}
			if row == nil {
				t.Fatalf("no row %q in %s", tc.row, r.body)
			}
			if len(row.Cells) != len(tc.columns) {
				t.Fatalf("%d cells for %d columns", len(row.Cells), len(tc.columns))
			}
			for i, want := range tc.cells {
				if row.Cells[i] != want {
					t.Errorf("cell %s = %#v, want %#v", tc.columns[i], row.Cells[i], want)
				}
			}
			var obj struct {
				Kind     string            `json:"kind"`
				Metadata metav1.ObjectMeta `json:"metadata"`
			}
			if tc.object == "" {
				if len(row.Object.Raw) != 0 {
					t.Fatalf("includeObject=None sent an object: %s", row.Object.Raw)
				}
				return
			}
			if err := json.Unmarshal(row.Object.Raw, &obj); err != nil || obj.Kind != tc.object || obj.Metadata.Name != tc.row || obj.Metadata.Namespace == "" && strings.Contains(tc.path, "namespaces/") {
				t.Fatalf("row object %s, want a %s of %s", row.Object.Raw, tc.object, tc.row)
			}
		})
	}

	t.Run("wide columns have priority 1", func(t *testing.T) {
		var table metav1.Table
		a.do("GET", "/api/v1/namespaces/default/pods", "", nil, "Accept", tableAccept).into(t, &table)
		for _, c := range table.ColumnDefinitions {
			wide := c.Name == "IP" || c.Name == "Node" || c.Name == "Nominated Node" || c.Name == "Readiness Gates"
			if wide != (c.Priority == 1) {
				t.Errorf("column %s has priority %d", c.Name, c.Priority)
			}
		}
	})
	t.Run("bad includeObject", func(t *testing.T) {
		r := a.do("GET", "/api/v1/namespaces/default/pods?includeObject=All", "", nil, "Accept", tableAccept)
		if r.code != http.StatusBadRequest {
			t.Fatalf("got %d: %s", r.code, r.body)
		}
	})
	t.Run("protobuf tables fall back to JSON", func(t *testing.T) {
		r := a.do("GET", "/api/v1/namespaces/default/pods", "", nil, "Accept", "application/vnd.kubernetes.protobuf;as=Table;v=v1;g=meta.k8s.io,application/json")
		var list struct{ Kind string }
		r.into(t, &list)
		if list.Kind != "PodList" {
			t.Fatalf("got %s", r.body)
		}
	})
}

func TestWatchTable(t *testing.T) {
	e := testenv.Start(t)
	a := newAPI(t, e)
	cms := "/api/v1/namespaces/default/configmaps"
	first := createCM(a, "a", `"app":"x"`)

	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, "GET", a.base+cms+"?watch=true&resourceVersion="+first.ResourceVersion, nil)
	req.Header.Set("Accept", tableAccept)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("watch: %d", resp.StatusCode)
	}
	createCM(a, "b", `"app":"x"`)
	a.must(http.StatusOK, "PATCH", cms+"/b", mergeType, `{"data":{"k":"v","l":"w"}}`)

	sc := bufio.NewScanner(resp.Body)
	want := []struct {
		typ     string
		data    float64
		columns bool
	}{{"ADDED", 0, true}, {"MODIFIED", 2, false}}
	for _, w := range want {
		if !sc.Scan() {
			t.Fatalf("watch ended: %v", sc.Err())
		}
		var ev struct {
			Type   string       `json:"type"`
			Object metav1.Table `json:"object"`
		}
		if err := json.Unmarshal(sc.Bytes(), &ev); err != nil {
			t.Fatalf("%v: %s", err, sc.Bytes())
		}
		if ev.Type != w.typ || ev.Object.Kind != "Table" || len(ev.Object.Rows) != 1 {
			t.Fatalf("got %s", sc.Bytes())
		}
		if (len(ev.Object.ColumnDefinitions) > 0) != w.columns {
			t.Fatalf("columns sent %v, want %v: %s", len(ev.Object.ColumnDefinitions) > 0, w.columns, sc.Bytes())
		}
		if cells := ev.Object.Rows[0].Cells; cells[0] != "b" || cells[1] != w.data {
			t.Fatalf("cells %v, want b with %v data", cells, w.data)
		}
	}
}
