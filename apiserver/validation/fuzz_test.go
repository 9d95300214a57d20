package validation

import (
	"encoding/json"
	"slices"
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	autoscalingv2 "k8s.io/api/autoscaling/v2"
	coordinationv1 "k8s.io/api/coordination/v1"
	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/util/validation/field"
)

// fuzzKinds are the kinds each fuzz input is decoded into.
var fuzzKinds = []func() runtime.Object{
	func() runtime.Object { return &corev1.Pod{} },
	func() runtime.Object { return &corev1.Service{} },
	func() runtime.Object { return &corev1.Node{} },
	func() runtime.Object { return &corev1.Endpoints{} },
	func() runtime.Object { return &corev1.Namespace{} },
	func() runtime.Object { return &corev1.ConfigMap{} },
	func() runtime.Object { return &corev1.Secret{} },
	func() runtime.Object { return &corev1.Event{} },
	func() runtime.Object { return &appsv1.Deployment{} },
	func() runtime.Object { return &appsv1.ReplicaSet{} },
	func() runtime.Object { return &coordinationv1.Lease{} },
	func() runtime.Object { return &discoveryv1.EndpointSlice{} },
	func() runtime.Object { return &autoscalingv2.HorizontalPodAutoscaler{} },
}

// FuzzValidate decodes arbitrary JSON into every kind and runs the whole
// API on it: nothing may panic, SetDefaults must be idempotent, and an
// update that changes nothing has no errors Validate does not have.
func FuzzValidate(f *testing.F) {
	for _, obj := range validObjects() {
		b, err := json.Marshal(obj)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	for _, s := range []string{
		`{"metadata":{"name":"x","namespace":"default"},"spec":{"containers":[{"name":"c","image":"echo:v1","ports":[{"containerPort":80}],"livenessProbe":{"httpGet":{"port":"http"}}}],"volumes":[{"name":"v","persistentVolumeClaim":{"claimName":"c"}}]}}`,
		`{"metadata":{"name":"x","namespace":"default"},"spec":{"type":"NodePort","clusterIP":"None","ports":[{"port":80,"nodePort":30000},{"port":80}],"sessionAffinity":"ClientIP"}}`,
		`{"metadata":{"name":"x"},"spec":{"selector":{"matchExpressions":[{"key":"a","operator":"In"}]},"strategy":{"rollingUpdate":{"maxSurge":"0%","maxUnavailable":0}},"template":{"spec":{"containers":[{}]}}}}`,
		`{"spec":{"metrics":[{"type":"Resource"},{"type":"Pods"}],"behavior":{"scaleUp":{"policies":[]}}}}`,
		`{"addressType":"IPv4","endpoints":[{"addresses":["::1"]}],"ports":[{"port":0}]}`,
		`{"subsets":[{"addresses":[{"ip":"0.0.0.0"}],"ports":[{},{}]}]}`,
		`{"type":"kubernetes.io/tls","stringData":{"tls.crt":"x"},"immutable":true}`,
		`{"spec":{"podCIDR":"10.0.0.0/8","podCIDRs":["fd00::/64","10.0.0.0/8"],"taints":[{"key":"a"},{"key":"a"}]}}`,
		`{"eventTime":"2024-01-01T00:00:00.000000Z","involvedObject":{}}`,
		`{}`, `null`, `[]`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		for _, newObj := range fuzzKinds {
			obj := newObj()
			if json.Unmarshal(data, obj) != nil {
				continue
			}
			raw := obj.DeepCopyObject()
			SetDefaults(obj)
			once := obj.DeepCopyObject()
			SetDefaults(once)
			if !equality.Semantic.DeepEqual(obj, once) {
				t.Errorf("%s: SetDefaults is not idempotent", kindOf(obj))
			}

			errs, _ := Validate(obj)
			render(errs)
			same, _ := ValidateUpdate(obj, obj.DeepCopyObject())
			render(same)
			for _, e := range messages(same) {
				if !slices.Contains(messages(errs), e) {
					t.Errorf("%s: updating to an equal object gives %q, which Validate does not", kindOf(obj), e)
				}
			}
			self, _ := ValidateUpdate(obj, obj)
			render(self)
			fromRaw, _ := ValidateUpdate(obj, raw)
			render(fromRaw)
			toRaw, _ := ValidateUpdate(raw, obj)
			render(toRaw)
			render(ValidateStatusUpdate(obj, raw))
			render(ValidateStatusUpdate(raw, obj))
		}
	})
}

// render formats every error, as the apiserver will.
func render(errs field.ErrorList) {
	_ = errs.ToAggregate()
	for _, e := range errs {
		_ = e.Error()
	}
}

func messages(errs field.ErrorList) []string {
	var out []string
	for _, e := range errs {
		out = append(out, e.Error())
	}
	return out
}
