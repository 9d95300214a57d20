package server_test

import (
	"encoding/json"
	"testing"

	"github.com/kubeish/kubeish/pkg/testenv"
)

// FuzzDecode sends arbitrary bodies of every content type to every write
// path of a real apiserver: whatever comes in, the server never panics and
// never answers 5xx, and every refusal is a Status.
//
//	go test ./apiserver/server -run '^$' -fuzz FuzzDecode -fuzztime 60s
func FuzzDecode(f *testing.F) {
	for _, k := range kinds {
		f.Add(uint8(0), uint8(0), []byte(withNameJSON(k.obj, "seed")))
	}
	f.Add(uint8(1), uint8(2), []byte(`{"metadata":{"labels":{"a":"b"}}}`))
	f.Add(uint8(3), uint8(4), []byte(`[{"op":"replace","path":"/spec","value":7}]`))
	f.Add(uint8(2), uint8(1), []byte("apiVersion: v1\nkind: Pod\nmetadata: {name: x}\nspec: {containers: [{name: c, image: 'i:1'}]}\n"))
	f.Add(uint8(5), uint8(0), []byte(`{"apiVersion":"autoscaling/v1","kind":"Scale","spec":{"replicas":-5}}`))

	e := testenv.Start(f)
	a := newAPI(f, e)
	contentTypes := []string{jsonType, yamlType, mergeType, smpType, jpType, "application/vnd.kubernetes.protobuf", ""}
	f.Fuzz(func(t *testing.T, target, ct uint8, body []byte) {
		a := &api{t: t, base: a.base, c: a.c}
		k := kinds[int(target)%len(kinds)]
		var method, path string
		switch target / 16 % 6 {
		case 0:
			method, path = "POST", k.path
		case 1:
			method, path = "PATCH", "/api/v1/namespaces/default/services/kubernetes"
		case 2:
			method, path = "PUT", k.path+"/seed"
		case 3:
			method, path = "PATCH", k.path+"/seed"
		case 4:
			method, path = "PUT", "/api/v1/namespaces/default/services/kubernetes/status"
		case 5:
			method, path = "PUT", "/apis/apps/v1/namespaces/default/deployments/seed/scale"
		}
		r := a.do(method, path, contentTypes[int(ct)%len(contentTypes)], body)
		if r.code >= 500 {
			t.Fatalf("%s %s answered %d: %s", method, path, r.code, r.body)
		}
		if r.code >= 400 {
			var s struct{ Kind string }
			if err := json.Unmarshal(r.body, &s); err != nil || s.Kind != "Status" {
				t.Fatalf("%s %s answered %d without a Status: %s", method, path, r.code, r.body)
			}
		}
	})
}

func withNameJSON(obj, name string) string {
	b, _ := json.Marshal(withName(obj, name, nil))
	return string(b)
}
