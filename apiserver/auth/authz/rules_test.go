package authz

import (
	"testing"

	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"

	"github.com/kubeish/kubeish/apiserver/auth/user"
	"github.com/kubeish/kubeish/apiserver/registry"
)

func res(verb, group, resource, sub, ns, name string) Attributes {
	return Attributes{Verb: verb, APIGroup: group, Resource: resource, Subresource: sub, Namespace: ns, Name: name, ResourceRequest: true}
}

func nonRes(verb, path string) Attributes { return Attributes{Verb: verb, Path: path} }

func TestRuleAllows(t *testing.T) {
	pods := rbacv1.PolicyRule{Verbs: []string{"get", "list"}, APIGroups: []string{""}, Resources: []string{"pods"}}
	for _, tc := range []struct {
		name string
		rule rbacv1.PolicyRule
		at   Attributes
		want bool
	}{
		{"exact", pods, res("get", "", "pods", "", "default", "p"), true},
		{"other verb", pods, res("delete", "", "pods", "", "default", "p"), false},
		{"other group", pods, res("get", "apps", "pods", "", "default", "p"), false},
		{"other resource", pods, res("get", "", "secrets", "", "default", "s"), false},
		{"subresource not granted by its resource", pods, res("get", "", "pods", "log", "default", "p"), false},
		{"subresource named", rbacv1.PolicyRule{Verbs: []string{"get"}, APIGroups: []string{""}, Resources: []string{"pods/log"}},
			res("get", "", "pods", "log", "default", "p"), true},
		{"subresource rule does not grant the resource", rbacv1.PolicyRule{Verbs: []string{"get"}, APIGroups: []string{""}, Resources: []string{"pods/log"}},
			res("get", "", "pods", "", "default", "p"), false},
		{"*/status", rbacv1.PolicyRule{Verbs: []string{"update"}, APIGroups: []string{"*"}, Resources: []string{"*/status"}},
			res("update", "apps", "deployments", "status", "default", "d"), true},
		{"*/status is not scale", rbacv1.PolicyRule{Verbs: []string{"update"}, APIGroups: []string{"*"}, Resources: []string{"*/status"}},
			res("update", "apps", "deployments", "scale", "default", "d"), false},
		{"all", rbacv1.PolicyRule{Verbs: []string{"*"}, APIGroups: []string{"*"}, Resources: []string{"*"}},
			res("deletecollection", "apps", "replicasets", "", "x", ""), true},
		{"* resource covers subresources", rbacv1.PolicyRule{Verbs: []string{"*"}, APIGroups: []string{"*"}, Resources: []string{"*"}},
			res("patch", "", "pods", "status", "x", "p"), true},
		{"resourceNames match", rbacv1.PolicyRule{Verbs: []string{"get"}, APIGroups: []string{""}, Resources: []string{"configmaps"}, ResourceNames: []string{"a"}},
			res("get", "", "configmaps", "", "default", "a"), true},
		{"resourceNames other", rbacv1.PolicyRule{Verbs: []string{"get"}, APIGroups: []string{""}, Resources: []string{"configmaps"}, ResourceNames: []string{"a"}},
			res("get", "", "configmaps", "", "default", "b"), false},
		{"resourceNames never a list", rbacv1.PolicyRule{Verbs: []string{"list"}, APIGroups: []string{""}, Resources: []string{"configmaps"}, ResourceNames: []string{"a"}},
			res("list", "", "configmaps", "", "default", ""), false},
		{"resource rule is not a URL", pods, nonRes("get", "/api"), false},
		{"url exact", rbacv1.PolicyRule{Verbs: []string{"get"}, NonResourceURLs: []string{"/healthz"}}, nonRes("get", "/healthz"), true},
		{"url not a prefix without *", rbacv1.PolicyRule{Verbs: []string{"get"}, NonResourceURLs: []string{"/api"}}, nonRes("get", "/api/v1"), false},
		{"url prefix", rbacv1.PolicyRule{Verbs: []string{"get"}, NonResourceURLs: []string{"/apis/*"}}, nonRes("get", "/apis/apps/v1"), true},
		{"url prefix is not the bare path", rbacv1.PolicyRule{Verbs: []string{"get"}, NonResourceURLs: []string{"/apis/*"}}, nonRes("get", "/apis"), false},
		{"url all", rbacv1.PolicyRule{Verbs: []string{"*"}, NonResourceURLs: []string{"*"}}, nonRes("post", "/anything"), true},
		{"url verb", rbacv1.PolicyRule{Verbs: []string{"get"}, NonResourceURLs: []string{"*"}}, nonRes("post", "/anything"), false},
		{"url rule is not a resource", rbacv1.PolicyRule{Verbs: []string{"*"}, NonResourceURLs: []string{"*"}}, res("get", "", "pods", "", "", ""), false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := RuleAllows(tc.at, &tc.rule); got != tc.want {
				t.Errorf("RuleAllows(%+v, %+v) = %v, want %v", tc.at, tc.rule, got, tc.want)
			}
		})
	}
}

func TestCovers(t *testing.T) {
	r := func(verbs, groups, resources, names []string) rbacv1.PolicyRule {
		return rbacv1.PolicyRule{Verbs: verbs, APIGroups: groups, Resources: resources, ResourceNames: names}
	}
	s := func(v ...string) []string { return v }
	for _, tc := range []struct {
		name       string
		owner, ask []rbacv1.PolicyRule
		want       bool
	}{
		{"same", []rbacv1.PolicyRule{r(s("get", "list"), s(""), s("pods"), nil)}, []rbacv1.PolicyRule{r(s("get"), s(""), s("pods"), nil)}, true},
		{"more verbs", []rbacv1.PolicyRule{r(s("get"), s(""), s("pods"), nil)}, []rbacv1.PolicyRule{r(s("get", "delete"), s(""), s("pods"), nil)}, false},
		{"split across rules", []rbacv1.PolicyRule{r(s("get"), s(""), s("pods"), nil), r(s("delete"), s(""), s("pods"), nil)},
			[]rbacv1.PolicyRule{r(s("get", "delete"), s(""), s("pods"), nil)}, true},
		{"star held", []rbacv1.PolicyRule{r(s("*"), s("*"), s("*"), nil)}, []rbacv1.PolicyRule{r(s("get"), s("apps"), s("deployments/scale"), s("x"))}, true},
		{"star asked, not held", []rbacv1.PolicyRule{r(s("get", "list", "watch"), s(""), s("pods", "services"), nil)},
			[]rbacv1.PolicyRule{r(s("get"), s(""), s("*"), nil)}, false},
		{"names held, all asked", []rbacv1.PolicyRule{r(s("get"), s(""), s("secrets"), s("a"))}, []rbacv1.PolicyRule{r(s("get"), s(""), s("secrets"), nil)}, false},
		{"names held, one asked", []rbacv1.PolicyRule{r(s("get"), s(""), s("secrets"), s("a", "b"))}, []rbacv1.PolicyRule{r(s("get"), s(""), s("secrets"), s("b"))}, true},
		{"*/status held", []rbacv1.PolicyRule{r(s("update"), s("apps"), s("*/status"), nil)}, []rbacv1.PolicyRule{r(s("update"), s("apps"), s("deployments/status"), nil)}, true},
		{"url prefix held", []rbacv1.PolicyRule{{Verbs: s("get"), NonResourceURLs: s("/apis/*")}}, []rbacv1.PolicyRule{{Verbs: s("get"), NonResourceURLs: s("/apis/apps", "/apis/x/*")}}, true},
		{"url not held", []rbacv1.PolicyRule{{Verbs: s("get"), NonResourceURLs: s("/api")}}, []rbacv1.PolicyRule{{Verbs: s("get"), NonResourceURLs: s("/metrics")}}, false},
		{"nothing asked", nil, nil, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, missing := Covers(tc.owner, tc.ask)
			if got != tc.want {
				t.Errorf("Covers = %v (missing %v), want %v", got, missing, tc.want)
			}
		})
	}
}

func TestPodReferences(t *testing.T) {
	ref := func(n string) corev1.LocalObjectReference { return corev1.LocalObjectReference{Name: n} }
	p := &corev1.Pod{Spec: corev1.PodSpec{
		ImagePullSecrets: []corev1.LocalObjectReference{ref("pull")},
		Volumes: []corev1.Volume{
			{VolumeSource: corev1.VolumeSource{Secret: &corev1.SecretVolumeSource{SecretName: "vol"}}},
			{VolumeSource: corev1.VolumeSource{ConfigMap: &corev1.ConfigMapVolumeSource{LocalObjectReference: ref("cm-vol")}}},
			{VolumeSource: corev1.VolumeSource{Projected: &corev1.ProjectedVolumeSource{Sources: []corev1.VolumeProjection{
				{Secret: &corev1.SecretProjection{LocalObjectReference: ref("proj")}},
				{ConfigMap: &corev1.ConfigMapProjection{LocalObjectReference: ref("cm-proj")}}}}}},
		},
		InitContainers: []corev1.Container{{EnvFrom: []corev1.EnvFromSource{{SecretRef: &corev1.SecretEnvSource{LocalObjectReference: ref("init-from")}}}}},
		Containers: []corev1.Container{{
			Env: []corev1.EnvVar{
				{ValueFrom: &corev1.EnvVarSource{SecretKeyRef: &corev1.SecretKeySelector{LocalObjectReference: ref("env")}}},
				{ValueFrom: &corev1.EnvVarSource{ConfigMapKeyRef: &corev1.ConfigMapKeySelector{LocalObjectReference: ref("cm-env")}}},
			},
			EnvFrom: []corev1.EnvFromSource{{ConfigMapRef: &corev1.ConfigMapEnvSource{LocalObjectReference: ref("cm-from")}}},
		}},
		EphemeralContainers: []corev1.EphemeralContainer{{EphemeralContainerCommon: corev1.EphemeralContainerCommon{
			EnvFrom: []corev1.EnvFromSource{{SecretRef: &corev1.SecretEnvSource{LocalObjectReference: ref("eph")}}}}}},
	}}
	want := map[string]bool{"pull": true, "vol": true, "proj": true, "init-from": true, "env": true, "eph": true}
	got := PodSecrets(p)
	if len(got) != len(want) {
		t.Errorf("PodSecrets = %v", got)
	}
	for _, n := range got {
		if !want[n] {
			t.Errorf("PodSecrets has %q", n)
		}
	}
	wantCM := map[string]bool{"cm-vol": true, "cm-proj": true, "cm-env": true, "cm-from": true}
	gotCM := PodConfigMaps(p)
	if len(gotCM) != len(wantCM) {
		t.Errorf("PodConfigMaps = %v", gotCM)
	}
	for _, n := range gotCM {
		if !wantCM[n] {
			t.Errorf("PodConfigMaps has %q", n)
		}
	}
}

func TestForbiddenMessage(t *testing.T) {
	alice := &user.Info{Name: "alice"}
	for _, tc := range []struct {
		at     Attributes
		reason string
		want   string
	}{
		{Attributes{User: alice, Verb: "get", Resource: "pods", Namespace: "default", Name: "x", ResourceRequest: true}, "",
			`pods "x" is forbidden: User "alice" cannot get resource "pods" in API group "" in the namespace "default"`},
		{Attributes{User: alice, Verb: "list", APIGroup: "apps", Resource: "deployments", ResourceRequest: true}, "",
			`deployments.apps is forbidden: User "alice" cannot list resource "deployments" in API group "apps" at the cluster scope`},
		{Attributes{User: alice, Verb: "update", Resource: "nodes", Subresource: "status", Name: "b", ResourceRequest: true}, `node "a" is not allowed to modify node "b"`,
			`nodes "b" is forbidden: User "alice" cannot update resource "nodes/status" in API group "" at the cluster scope: node "a" is not allowed to modify node "b"`},
		{Attributes{User: alice, Verb: "get", Path: "/metrics"}, "", `forbidden: User "alice" cannot get path "/metrics"`},
	} {
		if got := Forbidden(tc.at, tc.reason).Error(); got != tc.want {
			t.Errorf("got  %s\nwant %s", got, tc.want)
		}
	}
}

func TestNodeName(t *testing.T) {
	for _, tc := range []struct {
		u    *user.Info
		want string
		ok   bool
	}{
		{&user.Info{Name: "system:node:a", Groups: []string{user.NodesGroup}}, "a", true},
		{&user.Info{Name: "system:node:a"}, "", false},
		{&user.Info{Name: "alice", Groups: []string{user.NodesGroup}}, "", false},
		{&user.Info{Name: "system:node:", Groups: []string{user.NodesGroup}}, "", false},
		{nil, "", false},
	} {
		got, ok := NodeName(tc.u)
		if got != tc.want || ok != tc.ok {
			t.Errorf("NodeName(%+v) = %q, %v; want %q, %v", tc.u, got, ok, tc.want, tc.ok)
		}
	}
}

// TestBootstrapPolicy checks the built-in roles' promises: view writes
// nothing and reads no Secrets; edit does not touch RBAC; every role is
// valid for the escalation check's breakdown.
func TestBootstrapPolicy(t *testing.T) {
	roles := map[string][]rbacv1.PolicyRule{}
	for _, obj := range BootstrapPolicy(registry.NewSet()) {
		if r, ok := obj.(*rbacv1.ClusterRole); ok {
			roles[r.Name] = r.Rules
		}
	}
	allows := func(role string, at Attributes) bool {
		for i := range roles[role] {
			if RuleAllows(at, &roles[role][i]) {
				return true
			}
		}
		return false
	}
	for _, verb := range []string{"create", "update", "patch", "delete", "deletecollection"} {
		for _, r := range registry.NewSet().All() {
			if allows("view", res(verb, r.Group, r.Resource, "", "default", "x")) {
				t.Errorf("view may %s %s", verb, r.Resource)
			}
		}
	}
	for _, verb := range []string{"get", "list", "watch"} {
		if allows("view", res(verb, "", "secrets", "", "default", "s")) {
			t.Errorf("view may %s secrets", verb)
		}
		if !allows("view", res(verb, "apps", "deployments", "", "default", "d")) {
			t.Errorf("view may not %s deployments", verb)
		}
	}
	if allows("edit", res("create", rbacv1.GroupName, "rolebindings", "", "default", "")) {
		t.Error("edit may create rolebindings")
	}
	if !allows("admin", res("create", rbacv1.GroupName, "rolebindings", "", "default", "")) {
		t.Error("admin may not create rolebindings")
	}
	if !allows("cluster-admin", nonRes("get", "/debug/pprof/heap")) {
		t.Error("cluster-admin may not read /debug/pprof")
	}
	if allows("system:discovery", nonRes("get", "/metrics")) {
		t.Error("system:discovery reads /metrics")
	}
	if !allows(SchedulerUser, res("create", "", "pods", "binding", "default", "p")) {
		t.Error("the scheduler may not bind pods")
	}
	if allows(SchedulerUser, res("get", "", "secrets", "", "default", "s")) {
		t.Error("the scheduler reads secrets")
	}
	if !allows(ControllerUser, res("update", "", "namespaces", "finalize", "", "ns")) {
		t.Error("the controller may not finalize namespaces")
	}
}
